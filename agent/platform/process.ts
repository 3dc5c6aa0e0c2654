/**
 * The Platform process: the only holder of the identity (key, pin) and the network. It receives
 * batches from the Collector and Monitor over their sockets, writes each to the spool before
 * answering, and ships the spool to the server. Writes its status for `servermind-agent status`.
 */
import { readFileSync } from "node:fs";
import { replaceFile } from "../state-file.ts";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import { agentPaths, AGENT_VERSION, type AgentConfig } from "../config.ts";
import { privateKeyOf } from "../identity/enroll.ts";
import { createIdentityStore } from "../identity/store.ts";
import { connectIpc, listenIpc, type IpcClient, type Message } from "../ipc/socket.ts";
import { pemFingerprint, pinnedTls } from "../ship/pin.ts";
import { createShipper } from "../ship/shipper.ts";
import { createSpool } from "../spool/spool.ts";
import { encodeFrame, packMap } from "../../src/ingest/frame/encode.ts";
import { startCommandChannel } from "./command-channel.ts";

/**
 * Which process a server command goes to, by action. Anything not listed goes to Control.
 * Routing is not a check: the receiving process verifies the signature, the agent id, freshness,
 * the nonce and its own allow-list (Monitor: `cis.scan`; Control: `ping`, `cis.remediate`,
 * `cis.rollback`), so a misrouted command is refused, never run.
 */
export const COMMAND_ROUTES: Readonly<Record<string, "monitor">> = {
  "cis.scan": "monitor", // read-only: Monitor scans and ships the results as a `cis.scan` event
};
export type CommandTarget = "control" | "monitor";
/** How long Platform waits for Control's answer: a backup job runs for hours, everything else a minute. */
export const commandTimeoutMs = (action: unknown): number => (typeof action === "string" && action.startsWith("backup.") ? 24 * 3600_000 : 60_000);
export const commandTarget = (action: unknown): CommandTarget => (typeof action === "string" && Object.hasOwn(COMMAND_ROUTES, action) ? COMMAND_ROUTES[action]! : "control");

const ACCEPTED_KINDS: Record<string, Set<number>> = {
  collector: new Set([FrameKind.Metrics, FrameKind.Logs, FrameKind.Inventory]),
  monitor: new Set([FrameKind.SecurityEvents]),
};

export async function runPlatform(c: AgentConfig): Promise<() => Promise<void>> {
  const p = agentPaths(c);
  const store = createIdentityStore({ dbPath: p.identityDb, secretPath: p.secretFile });
  const identity = store.load();
  store.close();
  if (!identity) throw new Error(`not enrolled: run "servermind-agent enroll --server URL --token TOKEN" first`);
  if (pemFingerprint(identity.serverCertPem) !== identity.fingerprint) throw new Error("the pinned certificate does not match its fingerprint: the identity is damaged; re-enroll");
  const spool = createSpool({ path: p.spoolDb, maxBytes: c.spoolMaxBytes });
  const startedAt = Date.now();
  const processes = (): Record<string, string> => {
    try {
      const s = JSON.parse(readFileSync(p.supervisorFile, "utf8")) as { processes: Array<{ name: string; state: string }> };
      return Object.fromEntries(s.processes.map((x) => [x.name, x.state === "running" ? "ok" : x.state]));
    } catch {
      return { platform: "ok" };
    }
  };
  const shipper = createShipper({
    spool, agentId: identity.agentId, key: privateKeyOf(identity), serverUrl: identity.serverUrl,
    tls: pinnedTls(identity.serverCertPem, identity.fingerprint), fingerprint: identity.fingerprint, transport: c.transport,
    maxFramesPerRequest: c.maxFramesPerRequest, replayPerSecond: c.replayPerSecond, quicProbeMs: c.quicProbeMs,
    requestTimeoutMs: c.requestTimeoutMs, heartbeatMs: Math.max(c.intervalMs, 10_000), version: AGENT_VERSION,
    heartbeat: () => {
      const st = shipper.status();
      return { uptime: (Date.now() - startedAt) / 1000, version: AGENT_VERSION, transport: st.transport ?? "none", session: st.session, spool: { frames: st.spool.frames, bytes: st.spool.bytes, dropped: st.spool.droppedFrames }, processes: processes() };
    },
    log: (m) => console.error(`platform: ${m}`),
    onCommand: (msg, reply, output) => void forwardCommand(msg, reply, output),
  });

  // Server commands go to the process that acts on them (COMMAND_ROUTES): Monitor for scans,
  // Control for everything else. That process checks the signature and its allow-list. The
  // answer goes back to the server on the stream the command came on; the outcome is logged
  // (commands carry no secrets).
  const sockets: Record<CommandTarget, string> = { control: p.controlSocket, monitor: p.monitorCommandSocket };
  const clients: Partial<Record<CommandTarget, IpcClient>> = {};
  // A process that is starting, or being restarted by the supervisor, has no socket yet: a
  // command waits for it a little instead of failing at once.
  const connectWithin = async (socket: string, ms: number): Promise<IpcClient> => {
    const end = Date.now() + ms;
    for (;;) {
      try {
        return await connectIpc(socket);
      } catch (e) {
        if (Date.now() + 250 > end) throw e;
        await Bun.sleep(250);
      }
    }
  };
  const forwardCommand = async (msg: Record<string, unknown>, reply: (result: unknown) => void, output?: (chunk: { seq: number; lines: unknown[] }) => void) => {
    const cmd = (msg.command ?? {}) as Record<string, unknown>;
    const name = String(cmd.action ?? "?").slice(0, 64);
    const target = commandTarget(cmd.action);
    try {
      if (!clients[target]?.connected) clients[target] = await connectWithin(sockets[target], 15_000);
      // output chunks of a running command go up the same stream as they arrive
      const r = await clients[target]!.request({ t: "command", command: cmd }, commandTimeoutMs(cmd.action), (p) => {
        const c = p.chunk as { seq?: unknown; lines?: unknown } | undefined;
        if (output && c && typeof c.seq === "number" && Array.isArray(c.lines)) output({ seq: c.seq, lines: c.lines });
      });
      const result = r.t === "result" ? r.result : { ok: false, error: String(r.message ?? "refused") };
      console.error(`platform: command "${name}" -> ${target}: ${(result as { ok?: boolean })?.ok ? "done" : `refused: ${String((result as { error?: unknown })?.error)}`}`);
      reply(result);
    } catch (e) {
      console.error(`platform: command "${name}" could not reach ${target}: ${e instanceof Error ? e.message : e}`);
      reply({ ok: false, error: `${target} process unreachable` });
    }
  };
  // Data may travel over HTTP/3, which gives the server no way to push: a WebSocket stream is
  // kept open for commands alone.
  const key = privateKeyOf(identity);
  const commands = startCommandChannel({
    serverUrl: identity.serverUrl, tls: pinnedTls(identity.serverCertPem, identity.fingerprint), timeoutMs: c.requestTimeoutMs,
    hello: (nonce) => encodeFrame({ kind: FrameKind.Hello, agentId: identity.agentId, seq: spool.nextSeq(), batchId: 0, createdMs: Date.now(), items: 1 }, packMap({ nonce, version: AGENT_VERSION }), key),
    onCommand: (msg, reply, output) => void forwardCommand(msg, reply, output),
    log: (m) => console.error(`platform: ${m}`),
  });

  const receive = (peer: "collector" | "monitor") => (m: Message): Message => {
    if (m.t !== "batch") return { t: "error", message: `unknown request ${String(m.t)}` };
    const kind = Number(m.kind);
    const items = Number(m.items);
    const createdMs = Number(m.createdMs);
    const body = m.body;
    if (!ACCEPTED_KINDS[peer]!.has(kind)) return { t: "error", message: `${peer} may not send frames of kind ${kind}` };
    if (!(body instanceof Uint8Array) || body.length === 0 || body.length > 8 << 20) return { t: "error", message: "batch body must be 1 byte to 8 MiB of msgpack" };
    if (!Number.isInteger(items) || items < 1 || !Number.isFinite(createdMs)) return { t: "error", message: "batch needs items >= 1 and createdMs" };
    const spoolId = spool.append({ kind, items, createdMs, body });
    shipper.wake();
    return { t: "spooled", spoolId };
  };
  const servers = [listenIpc(p.collectorSocket, receive("collector")), listenIpc(p.monitorSocket, receive("monitor"))];
  shipper.start();

  const writeStatus = () => {
    const st = shipper.status();
    try {
      replaceFile(p.statusFile, JSON.stringify({ agentId: identity.agentId, version: AGENT_VERSION, updatedAt: Date.now(), ...st }, null, 2), 0o640);
    } catch (e) {
      console.error(`platform: cannot write status: ${e instanceof Error ? e.message : e}`);
    }
  };
  writeStatus();
  const statusTimer = setInterval(writeStatus, 2000);
  return async () => {
    clearInterval(statusTimer);
    commands.stop();
    for (const client of Object.values(clients)) client?.close();
    for (const s of servers) s.stop();
    await shipper.stop();
    writeStatus();
    spool.close();
  };
}
