/**
 * The privilege split on disk: service users, directories and who owns them.
 *
 *   process    runs as                 may read/write
 *   Platform   servermind-platform     stateDir/platform (0700: identity, secret, spool)
 *   Collector  servermind-collector    stateDir/collector (0700: log offsets), reads /proc, /sys, logs
 *                                      (groups adm, systemd-journal when they exist)
 *   Monitor    servermind-monitor      stateDir/monitor (0700: baselines), read-only elsewhere
 *   Control    root                    the only process allowed to change the system
 *
 *   runDir/collector/platform.sock  dir 0750 servermind-platform:servermind-collector
 *   runDir/monitor/platform.sock    dir 0750 servermind-platform:servermind-monitor
 *   runDir/control/control.sock     dir 0750 root:servermind-platform
 *   runDir/monitor-commands/monitor.sock  dir 0750 servermind-monitor:servermind-platform
 *   stateDir/control                0755 root (the server command key and agent id, readable by
 *                                   Monitor; its snapshots/ subdirectory is 0700 root)
 * A socket can be opened only by someone who can search its directory, so each socket is
 * reachable by its server, its one intended client, and root.
 */
import { chmodSync, chownSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { agentPaths, type AgentConfig } from "../config.ts";
import { commandKeyPaths } from "../identity/command-key.ts";

export const USERS = {
  platform: "servermind-platform",
  collector: "servermind-collector",
  monitor: "servermind-monitor",
} as const;

/** Extra groups that give read access to logs without any write right. */
export const READ_GROUPS: Record<string, string[]> = {
  collector: ["adm", "systemd-journal"],
  monitor: ["adm", "systemd-journal"],
};

export interface Account {
  uid: number;
  gid: number;
}

export function lookupUser(name: string, passwd = "/etc/passwd"): Account | undefined {
  for (const line of readFileSync(passwd, "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

function groupExists(name: string): boolean {
  return readFileSync("/etc/group", "utf8").split("\n").some((l) => l.split(":")[0] === name);
}

/** Creates the system users once (as install.sh does); needs root. */
export function ensureUsers(): Record<keyof typeof USERS, Account> {
  const out = {} as Record<keyof typeof USERS, Account>;
  for (const [role, name] of Object.entries(USERS) as Array<[keyof typeof USERS, string]>) {
    if (!lookupUser(name)) {
      const p = Bun.spawnSync(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name], { stderr: "pipe" });
      if (p.exitCode !== 0) throw new Error(`useradd ${name} failed: ${p.stderr.toString().trim()}`);
    }
    out[role] = lookupUser(name)!;
  }
  return out;
}

export function readGroupsOf(role: string): string[] {
  return (READ_GROUPS[role] ?? []).filter(groupExists);
}

function dir(path: string, mode: number, uid: number, gid: number) {
  mkdirSync(path, { recursive: true, mode });
  chownSync(path, uid, gid);
  chmodSync(path, mode);
}

/** Creates every directory with its owner and mode. As non-root, only creates them. */
export function prepareLayout(c: AgentConfig, users?: Record<keyof typeof USERS, Account>) {
  const p = agentPaths(c);
  const root = users !== undefined;
  const own = (path: string, mode: number, uid: number, gid: number) => (root ? dir(path, mode, uid, gid) : mkdirSync(path, { recursive: true, mode }));
  const u = users ?? { platform: { uid: 0, gid: 0 }, collector: { uid: 0, gid: 0 }, monitor: { uid: 0, gid: 0 } };
  own(c.stateDir, 0o755, 0, 0);
  own(p.platformDir, 0o700, u.platform.uid, u.platform.gid);
  own(p.collectorDir, 0o700, u.collector.uid, u.collector.gid);
  own(join(c.stateDir, "monitor"), 0o700, u.monitor.uid, u.monitor.gid);
  own(c.runDir, 0o755, 0, 0);
  own(dirname(p.collectorSocket), 0o750, u.platform.uid, u.collector.gid);
  own(dirname(p.monitorSocket), 0o750, u.platform.uid, u.monitor.gid);
  own(dirname(p.controlSocket), 0o750, 0, u.platform.gid);
  own(dirname(p.monitorCommandSocket), 0o750, u.monitor.uid, u.platform.gid);
  const k = commandKeyPaths(c.stateDir);
  own(k.dir, 0o755, 0, 0);
  own(k.snapshots, 0o700, 0, 0);
}
