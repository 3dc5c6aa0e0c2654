/**
 * The Control process: the only one that keeps root, and so the only one allowed to change the
 * system. It accepts a command only when (1) it arrives on its socket, which only Platform can
 * reach, (2) it is signed with the server's command key (Ed25519, installed at enrollment in
 * stateDir/control/server-command.pub) over its canonical encoding (src/ingest/frame/commands.ts),
 * (3) it names this agent, is not older than five minutes and was not seen before, and (4) its
 * action is on the allow-list: "ping" (changes nothing), "cis.remediate" and "cis.rollback"
 * (agent/control/remediate/, snapshots first, exact rollback), "service.list", "service.status"
 * and "service.action" (agent/control/services/: systemctl, every call with a timeout), and the
 * file operations `file.*` (agent/control/files/: path policy, race-free resolution, snapshot and
 * rollback), and the backup jobs `backup.*` (agent/control/backups/: the job's destination and
 * repository password travel inside the signed command only). Everything else is refused, and so is everything while no key is installed.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { KeyObject } from "node:crypto";
import { agentPaths, type AgentConfig } from "../config.ts";
import { readCommandTrust } from "../identity/command-key.ts";
import { listenIpc, type Message } from "../ipc/socket.ts";
import { createNonceSet, verifyCommand } from "../../src/ingest/frame/commands.ts";
import { createControlSecurityHandler } from "./remediate/index.ts";
import { createServiceHandler, SERVICE_ACTIONS } from "./services/index.ts";
import { createControlFilesHandler, FILE_ACTIONS } from "./files/index.ts";
import { createOutput, type OutputSink } from "./output.ts";
import { BACKUP_ACTIONS, createBackupHandler } from "./backups/index.ts";
import { join } from "node:path";

const SECURITY_ACTIONS = new Set(["cis.remediate", "cis.rollback"]);
export const ALLOWED_ACTIONS: ReadonlySet<string> = new Set(["ping", ...SECURITY_ACTIONS, ...SERVICE_ACTIONS, ...FILE_ACTIONS, ...BACKUP_ACTIONS]);
/** Commands that run asynchronously with their output streamed back. */
const STREAMED_ACTIONS: ReadonlySet<string> = new Set([...SERVICE_ACTIONS, ...BACKUP_ACTIONS]);

export interface CommandCheckerOptions {
  key: KeyObject | undefined;
  agentId: number;
  now?: () => number;
  /** Runs remediation commands (the remediator checks the signature itself too). */
  security?: (signed: unknown) => unknown;
  /** Runs file commands (checks the signature itself too). */
  files?: (signed: unknown) => unknown;
}

/** Handles one {t: "command", command: <signed command>} request from Platform. */
export function createCommandChecker(o: CommandCheckerOptions) {
  const seen = createNonceSet();
  return (m: Message): Message => {
    if (m.t !== "command") return { t: "error", message: "unknown request" };
    if (!o.key) return { t: "result", result: { ok: false, error: "no server command key is installed; every command is refused" } };
    const signed = m.command as Record<string, unknown> | undefined;
    const action = typeof signed?.action === "string" ? signed.action : "";
    if (SECURITY_ACTIONS.has(action) && o.security) return { t: "result", result: o.security(signed) };
    if (FILE_ACTIONS.has(action) && o.files) return { t: "result", result: o.files(signed) };
    const v = verifyCommand(signed, { publicKey: o.key, agentId: o.agentId, allow: new Set(["ping"]), seen, now: o.now?.() });
    if (!v.ok) return { t: "result", result: { ok: false, error: v.reason } };
    return { t: "result", result: { ok: true, result: "pong" } };
  };
}

/**
 * Control's request handler: service.* commands are verified here (same checks, allow-list
 * SERVICE_ACTIONS) and run by `services`, asynchronously, their output sent back as
 * `{t: "progress", chunk}` messages before the result (agent/control/output.ts); every other
 * request goes to the checker.
 */
type Streamed = (action: string, args: Record<string, unknown>, out: OutputSink) => Promise<unknown>;
export function createControlHandler(o: CommandCheckerOptions & { services: Streamed; backups?: Streamed }) {
  const check = createCommandChecker(o);
  const seen = createNonceSet();
  return async (m: Message, progress: (p: Message) => void = () => {}): Promise<Message> => {
    const signed = m.command as Record<string, unknown> | undefined;
    const action = typeof signed?.action === "string" ? signed.action : "";
    if (m.t !== "command" || !o.key || !STREAMED_ACTIONS.has(action)) return check(m);
    const v = verifyCommand(signed, { publicKey: o.key, agentId: o.agentId, allow: STREAMED_ACTIONS, seen, now: o.now?.() });
    if (!v.ok) return { t: "result", result: { ok: false, error: v.reason } };
    const run = BACKUP_ACTIONS.has(v.command.action) ? o.backups : o.services;
    if (!run) return { t: "result", result: { ok: false, error: `${v.command.action} is not available on this agent` } };
    // a backup reports every 2 s for hours: more chunks than a service operation
    const out = createOutput((chunk) => progress({ chunk }), BACKUP_ACTIONS.has(v.command.action) ? { flushMs: 1000, maxChunks: 490 } : {});
    try {
      return { t: "result", result: await run(v.command.action, v.command.args, out) };
    } finally {
      out.close();
    }
  };
}

export async function runControl(c: AgentConfig): Promise<() => Promise<void>> {
  const p = agentPaths(c);
  mkdirSync(dirname(p.controlSocket), { recursive: true });
  const trust = readCommandTrust(c.stateDir);
  const key = trust?.key;
  const agentId = trust?.agentId ?? 0;
  const security = key ? createControlSecurityHandler({ root: c.root, stateDir: c.stateDir, agentId }) : undefined;
  const files = key ? createControlFilesHandler({ root: c.root, stateDir: c.stateDir, runDir: c.runDir, agentId }) : undefined;
  const server = listenIpc(p.controlSocket, createControlHandler({ key, agentId, security, files, services: createServiceHandler(),
    backups: createBackupHandler({ dumpDir: join(c.stateDir, "control", "backup-dumps") }) }));
  return async () => server.stop();
}
