/**
 * The server's command key (public half) and this agent's id, as enrollment installs them:
 *
 *   stateDir/control/              0755 root:root
 *   stateDir/control/server-command.pub   0644 root  raw Ed25519 public key, base64
 *   stateDir/control/agent-id              0644 root  the agent id
 *   stateDir/control/snapshots/    0700 root  remediation snapshots (copies of /etc/shadow & co)
 *
 * Neither file is secret, but only root may change them. Control (root) and Monitor (its own
 * user) both read them to verify signed commands; Monitor can read nothing else in the
 * directory, because the snapshots directory is root-only.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { KeyObject } from "node:crypto";
import { publicKeyFromBase64 } from "../../src/ingest/frame/commands.ts";

export function commandKeyPaths(stateDir: string) {
  const dir = join(stateDir, "control");
  return { dir, publicKey: join(dir, "server-command.pub"), agentId: join(dir, "agent-id"), snapshots: join(dir, "snapshots") };
}

export interface CommandTrust {
  key: KeyObject;
  agentId: number;
}

/** The installed key and agent id; undefined when either is missing or unreadable (every command is then refused). */
export function readCommandTrust(stateDir: string): CommandTrust | undefined {
  const p = commandKeyPaths(stateDir);
  const key = readCommandKey(stateDir);
  if (!key) return undefined;
  try {
    const agentId = Number(readFileSync(p.agentId, "utf8").trim());
    if (!Number.isInteger(agentId) || agentId <= 0) return undefined;
    return { key, agentId };
  } catch {
    return undefined;
  }
}

/** The installed key alone; undefined when it is missing or unreadable. */
export function readCommandKey(stateDir: string): KeyObject | undefined {
  try {
    return publicKeyFromBase64(readFileSync(commandKeyPaths(stateDir).publicKey, "utf8"));
  } catch {
    return undefined;
  }
}
