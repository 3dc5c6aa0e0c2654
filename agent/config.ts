/**
 * Agent configuration: where state lives, how often to collect, which transport limits apply.
 * Every value comes from an environment variable (documented in docs/agent.md) and is checked
 * here, so a typo fails at start with a message naming the variable.
 */
import { join, resolve } from "node:path";

export const AGENT_VERSION = "0.1.0";

export interface AgentConfig {
  /** `agent.stateDir`: identity, spool and status files (SERVERMIND_AGENT_DIR). */
  stateDir: string;
  /** `agent.runDir`: Unix sockets between the processes (SERVERMIND_AGENT_RUN_DIR). */
  runDir: string;
  /** `collect.intervalMs`: metrics interval (SERVERMIND_AGENT_INTERVAL_MS, default 10 s). */
  intervalMs: number;
  /** `collect.inventoryMs`: inventory snapshot interval (SERVERMIND_AGENT_INVENTORY_MS). */
  inventoryMs: number;
  /** `collect.logsMs`: how often collected log lines are flushed as one batch (SERVERMIND_AGENT_LOGS_MS). */
  logsMs: number;
  /** `collect.root`: root under which /proc, /sys, /etc and /var are read (SERVERMIND_AGENT_ROOT, tests). */
  root: string;
  /** `collect.logFiles`: files or directories to follow (SERVERMIND_AGENT_LOG_FILES, comma separated). */
  logFiles: string[];
  /** `collect.journald`: follow journalctl when present (SERVERMIND_AGENT_JOURNALD). */
  journald: boolean;
  /**
   * `collect.journalDir`: read the journal files in this directory instead of the system journal
   * (SERVERMIND_AGENT_JOURNAL_DIR; e.g. the host's journal mounted into a container).
   */
  journalDir: string | undefined;
  /** `spool.maxBytes`: bound of the spool on disk (SERVERMIND_AGENT_SPOOL_BYTES). */
  spoolMaxBytes: number;
  /** `ship.replayPerSecond`: frames per second at most while replaying a backlog (SERVERMIND_AGENT_REPLAY_RATE). */
  replayPerSecond: number;
  /** `ship.maxFramesPerRequest`: frames in one POST or WebSocket message (SERVERMIND_AGENT_FRAMES_PER_REQUEST). */
  maxFramesPerRequest: number;
  /** `ship.transport`: "auto" (HTTP/3 then WSS), "http3", "http2", "wss" (SERVERMIND_AGENT_TRANSPORT). */
  transport: "auto" | "http3" | "http2" | "wss";
  /** `ship.quicProbeMs`: how long to stay on WSS before trying HTTP/3 again (SERVERMIND_AGENT_QUIC_PROBE_MS). */
  quicProbeMs: number;
  /** `ship.requestTimeoutMs`: one request or ack wait, at most (SERVERMIND_AGENT_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs: number;
  /** `monitor.watchFiles`: files whose integrity Monitor reports (SERVERMIND_AGENT_WATCH_FILES, comma separated). */
  watchFiles: string[];
  /** `supervisor.dropPrivileges`: when root, run processes as the service users (SERVERMIND_AGENT_DROP_PRIVILEGES). */
  dropPrivileges: boolean;
  /**
   * `monitor.security`: file integrity monitoring of the system paths (inotify + rescans) and
   * scheduled CIS scans in Monitor (SERVERMIND_AGENT_SECURITY, default on).
   */
  security: boolean;
  /**
   * `supervisor.jit`: the processes that keep JavaScriptCore's JIT (SERVERMIND_AGENT_JIT, comma
   * separated: platform, collector, monitor, control; default none). The others run with the
   * interpreter only (BUN_JSC_useJIT=0), which saves each 4-8 MB of RSS at the agent's load;
   * LZ4 and msgpack are then ~30x slower, so a host shipping megabytes of logs a second names
   * platform,collector here.
   */
  jitRoles: string[];
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name}=${JSON.stringify(raw)} is not a whole number from ${min} to ${max}`);
  return v;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`${name}=${JSON.stringify(raw)} is not a boolean (use true or false)`);
}

const TRANSPORTS = ["auto", "http3", "http2", "wss"] as const;
export const ROLES = ["platform", "control", "monitor", "collector"] as const;

function roles(env: Env, name: string): string[] {
  const list = (env[name] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (const r of list) if (!(ROLES as readonly string[]).includes(r)) throw new Error(`${name}: ${JSON.stringify(r)} is not one of ${ROLES.join(", ")}`);
  return list;
}

/** Files Monitor watches by default: accounts, privileges and remote access. */
export const DEFAULT_WATCH_FILES = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/sudoers", "/etc/ssh/sshd_config", "/root/.ssh/authorized_keys"];

export function loadAgentConfig(env: Env = process.env): AgentConfig {
  const transport = (env.SERVERMIND_AGENT_TRANSPORT || "auto") as AgentConfig["transport"];
  if (!TRANSPORTS.includes(transport)) throw new Error(`SERVERMIND_AGENT_TRANSPORT=${JSON.stringify(transport)} is not one of ${TRANSPORTS.join(", ")}`);
  const root = resolve(env.SERVERMIND_AGENT_ROOT || "/");
  return {
    stateDir: resolve(env.SERVERMIND_AGENT_DIR || "/var/lib/servermind-agent"),
    runDir: resolve(env.SERVERMIND_AGENT_RUN_DIR || "/run/servermind-agent"),
    intervalMs: int(env, "SERVERMIND_AGENT_INTERVAL_MS", 10_000, 100, 3_600_000),
    inventoryMs: int(env, "SERVERMIND_AGENT_INVENTORY_MS", 3_600_000, 1000, 86_400_000),
    logsMs: int(env, "SERVERMIND_AGENT_LOGS_MS", 5_000, 100, 600_000),
    root,
    logFiles: (env.SERVERMIND_AGENT_LOG_FILES ?? join(root, "var/log")).split(",").map((s) => s.trim()).filter(Boolean),
    journald: bool(env, "SERVERMIND_AGENT_JOURNALD", true),
    journalDir: env.SERVERMIND_AGENT_JOURNAL_DIR ? resolve(env.SERVERMIND_AGENT_JOURNAL_DIR) : undefined,
    spoolMaxBytes: int(env, "SERVERMIND_AGENT_SPOOL_BYTES", 256 << 20, 64 << 10, 64 * 2 ** 30),
    replayPerSecond: int(env, "SERVERMIND_AGENT_REPLAY_RATE", 50, 1, 100_000),
    maxFramesPerRequest: int(env, "SERVERMIND_AGENT_FRAMES_PER_REQUEST", 32, 1, 1000),
    transport,
    quicProbeMs: int(env, "SERVERMIND_AGENT_QUIC_PROBE_MS", 300_000, 1000, 86_400_000),
    requestTimeoutMs: int(env, "SERVERMIND_AGENT_REQUEST_TIMEOUT_MS", 15_000, 100, 600_000),
    watchFiles: env.SERVERMIND_AGENT_WATCH_FILES
      ? env.SERVERMIND_AGENT_WATCH_FILES.split(",").map((s) => s.trim()).filter(Boolean)
      : DEFAULT_WATCH_FILES,
    dropPrivileges: bool(env, "SERVERMIND_AGENT_DROP_PRIVILEGES", true),
    security: bool(env, "SERVERMIND_AGENT_SECURITY", true),
    jitRoles: roles(env, "SERVERMIND_AGENT_JIT"),
  };
}

/** Where each piece of state lives; the supervisor creates the directories with their owners. */
export function agentPaths(c: Pick<AgentConfig, "stateDir" | "runDir">) {
  const platformDir = join(c.stateDir, "platform");
  return {
    platformDir,
    identityDb: join(platformDir, "identity.db"),
    secretFile: join(platformDir, "machine.secret"),
    spoolDb: join(platformDir, "spool.db"),
    collectorDir: join(c.stateDir, "collector"),
    /** Written by Platform (its directory, so root or the Platform user reads it). */
    statusFile: join(platformDir, "status.json"),
    monitorDir: join(c.stateDir, "monitor"),
    supervisorFile: join(c.stateDir, "supervisor.json"),
    /** Collector -> Platform; the directory's group is the Collector's, so no one else can reach it. */
    collectorSocket: join(c.runDir, "collector", "platform.sock"),
    monitorSocket: join(c.runDir, "monitor", "platform.sock"),
    /** Platform -> Control (signed commands). */
    controlSocket: join(c.runDir, "control", "control.sock"),
    /** Platform -> Monitor (signed `cis.scan` commands); Monitor serves, only Platform may connect. */
    monitorCommandSocket: join(c.runDir, "monitor-commands", "monitor.sock"),
  };
}
