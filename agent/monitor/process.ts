/**
 * The Monitor process: read-only security observations, reported as security events through
 * Platform. It checks a short list of critical files every interval (SHA-256, mode, owner) and,
 * unless `monitor.security` is off, runs the security monitor: real-time file integrity
 * monitoring of the system paths and CIS scans, on a schedule and on a signed `cis.scan` command
 * (agent/monitor/security-monitor.ts). Monitor never changes the system.
 *
 * Commands reach Monitor on its own socket (runDir/monitor-commands/monitor.sock, whose directory
 * only Platform may search). Monitor verifies each one itself with the server command key and
 * the agent id installed at enrollment (agent/identity/command-key.ts): Platform only routes.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { replaceFile } from "../state-file.ts";
import { join } from "node:path";
import { packSecurity } from "../../src/ingest/frame/encode.ts";
import { FrameKind, type SecurityEvent } from "../../src/ingest/frame/frame.ts";
import { agentPaths, type AgentConfig } from "../config.ts";
import { createOutbox } from "../collect/outbox.ts";
import { readCommandTrust } from "../identity/command-key.ts";
import { listenIpc, type Message } from "../ipc/socket.ts";
import { startSecurityMonitor } from "./security-monitor.ts";

const CRITICAL = /shadow|sudoers|authorized_keys/;

export interface FileFacts {
  sha256: string | null;
  mode: number | null;
  uid: number | null;
}

export function factsOf(path: string): FileFacts {
  let mode: number | null = null;
  let uid: number | null = null;
  try {
    const st = statSync(path);
    mode = st.mode & 0o7777;
    uid = st.uid;
  } catch {
    return { sha256: null, mode: null, uid: null };
  }
  try {
    return { sha256: createHash("sha256").update(readFileSync(path)).digest("hex"), mode, uid };
  } catch {
    return { sha256: null, mode, uid }; // exists but this user may not read it
  }
}

/** Compares `files` (absolute, read under `root`) with the baseline: one event per change; updates the baseline. */
export function checkFiles(root: string, files: string[], baseline: Record<string, FileFacts>, now: number): SecurityEvent[] {
  const events: SecurityEvent[] = [];
  for (const file of files) {
    const cur = factsOf(join(root, file));
    const old = baseline[file];
    baseline[file] = cur;
    if (!old) continue;
    if (old.sha256 !== cur.sha256 || old.mode !== cur.mode || old.uid !== cur.uid) {
      const type = cur.mode === null ? "file.removed" : old.mode === null ? "file.created" : "file.changed";
      events.push({ ts: now, type, severity: CRITICAL.test(file) ? 7 : 5, path: file, data: { before: old, after: cur } as unknown as Record<string, unknown> });
    }
  }
  return events;
}

export async function runMonitor(c: AgentConfig): Promise<() => Promise<void>> {
  const p = agentPaths(c);
  const baselineFile = join(p.monitorDir, "file-baseline.json");
  let baseline: Record<string, FileFacts> = {};
  try {
    baseline = JSON.parse(readFileSync(baselineFile, "utf8"));
  } catch {
    baseline = {};
  }
  const outbox = createOutbox({ socketPath: p.monitorSocket, log: (m) => console.error(`monitor: ${m}`) });
  const tick = () => {
    const events = checkFiles(c.root, c.watchFiles, baseline, Date.now());
    const save = () => {
      replaceFile(baselineFile, JSON.stringify(baseline));
    };
    if (events.length) outbox.push({ kind: FrameKind.SecurityEvents, items: events.length, createdMs: Date.now(), body: packSecurity({ events }), commit: save });
    else save();
  };
  tick();
  const timer = setInterval(tick, c.intervalMs);
  const trust = readCommandTrust(c.stateDir);
  if (!trust) console.error("monitor: no server command key installed; cis.scan commands will be refused");
  const security = c.security
    ? await startSecurityMonitor({
        root: c.root,
        stateDir: join(p.monitorDir, "security"),
        agentId: trust?.agentId ?? 0,
        commandKey: trust?.key,
        emit: (events) => {
          for (let i = 0; i < events.length; i += 500) {
            const part = events.slice(i, i + 500);
            outbox.push({ kind: FrameKind.SecurityEvents, items: part.length, createdMs: Date.now(), body: packSecurity({ events: part }) });
          }
        },
      }).catch((e) => {
        console.error(`monitor: security monitor did not start: ${e instanceof Error ? e.message : e}`);
        return undefined;
      })
    : undefined;
  const commands = listenIpc(p.monitorCommandSocket, createMonitorCommandHandler(security));
  return async () => {
    commands.stop();
    clearInterval(timer);
    await security?.stop();
    await outbox.flush(2000);
    outbox.close();
  };
}

/**
 * Handles one {t: "command", command: <signed command>} request from Platform. The security
 * monitor verifies the signature, the agent id, freshness, the nonce and the allow-list
 * (`cis.scan` only); the answer is the scan summary, the results go out as a `cis.scan` event.
 */
export function createMonitorCommandHandler(security: { handleCommand(signed: unknown): unknown } | undefined) {
  return (m: Message): Message => {
    if (m.t !== "command") return { t: "error", message: "unknown request" };
    if (!security) return { t: "result", result: { ok: false, error: "the security monitor is not running on this agent (monitor.security is off or it failed to start)" } };
    return { t: "result", result: security.handleCommand(m.command) };
  };
}
