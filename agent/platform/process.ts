/**
 * The Platform process: the only holder of the identity (key, pin) and the network. It receives
 * batches from the Collector and Monitor over their sockets, writes each to the spool before
 * answering, and ships the spool to the server. Writes its status for `servermind-agent status`.
 */
import { renameSync, readFileSync, writeFileSync } from "node:fs";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import { agentPaths, AGENT_VERSION, type AgentConfig } from "../config.ts";
import { privateKeyOf } from "../identity/enroll.ts";
import { createIdentityStore } from "../identity/store.ts";
import { connectIpc, listenIpc, type IpcClient, type Message } from "../ipc/socket.ts";
import { pemFingerprint, pinnedTls } from "../ship/pin.ts";
import { createShipper } from "../ship/shipper.ts";
import { createSpool } from "../spool/spool.ts";

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
      return { uptime: (Date.now() - startedAt) / 1000, version: AGENT_VERSION, transport: st.transport ?? "none", spool: { frames: st.spool.frames, bytes: st.spool.bytes, dropped: st.spool.droppedFrames }, processes: processes() };
    },
    log: (m) => console.error(`platform: ${m}`),
    onCommand: (msg) => void forwardCommand(msg),
  });

  // Server commands go to Control, the only process allowed to act on them; Control checks the
  // signature and the allow-list. The outcome is logged (commands carry no secrets).
  let control: IpcClient | undefined;
  const forwardCommand = async (msg: Record<string, unknown>) => {
    const name = String(msg.command ?? "?").slice(0, 64);
    try {
      if (!control?.connected) control = await connectIpc(p.controlSocket);
      const r = await control.request({ ...msg, t: "command" }, 10_000);
      console.error(`platform: command "${name}" -> control: ${r.t === "result" ? "done" : `refused: ${String(r.message)}`}`);
    } catch (e) {
      console.error(`platform: command "${name}" could not reach control: ${e instanceof Error ? e.message : e}`);
    }
  };

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
    const tmp = p.statusFile + ".tmp";
    try {
      writeFileSync(tmp, JSON.stringify({ agentId: identity.agentId, version: AGENT_VERSION, updatedAt: Date.now(), ...st }, null, 2), { mode: 0o640 });
      renameSync(tmp, p.statusFile);
    } catch (e) {
      console.error(`platform: cannot write status: ${e instanceof Error ? e.message : e}`);
    }
  };
  writeStatus();
  const statusTimer = setInterval(writeStatus, 2000);
  return async () => {
    clearInterval(statusTimer);
    control?.close();
    for (const s of servers) s.stop();
    await shipper.stop();
    writeStatus();
    spool.close();
  };
}
