/**
 * The WebSocket transport of our agent's protocol (wss://host/api/v1/stream).
 * On open the server sends a challenge nonce; the agent answers with a signed Hello frame that
 * carries it, which authenticates the connection to one agent. After the server's "welcome",
 * every binary message holds one or more frames and is answered by an "ack" message. Each frame
 * is still checked against its own agent's key, so one stream may carry frames of several
 * agents (a relay); the handshake only keeps unauthenticated peers from sending anything.
 * The welcome carries a session (docs/protocol.md 3.5), so the agent's frames can be sealed
 * rather than signed. When the gate is full, the frames of a message are rejected as "busy" and
 * a "slow" message tells the agent how long to pause.
 * Until its hello authenticates, a stream counts against its address's cap on unauthenticated
 * clients, and it must authenticate within `helloTimeoutMs` of opening or be closed with
 * 4408 (pings and pongs do not keep it open).
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { randomBytes } from "node:crypto";
import { FrameKind } from "../frame/frame.ts";
import { decodeFrameBody, splitFrames, verifyFrame } from "../frame/decode.ts";
import { ingestFrames, notEnrolled, type IngestDeps, type Reject } from "./handler.ts";
import { Busy, type Gate } from "../gate.ts";
import { sessionJson } from "./http.ts";
import type { StreamRegistry } from "./stream-registry.ts";
import { isStoreUnavailable, withDeadline } from "../../store/postgres/unavailable.ts";
import type { UnauthenticatedClients } from "../clients.ts";

/** Close code for a stream that did not authenticate within helloTimeoutMs (docs/protocol.md). */
export const CLOSE_HELLO_TIMEOUT = 4408;
/** Close code for a stream whose hello was refused. */
export const CLOSE_BAD_HELLO = 4401;
/** Close code for a revoked agent's verified hello. */
export const CLOSE_REVOKED = 4403;

/**
 * A stream whose peer leaves more than this of the server's messages unread, and takes none of
 * them for STREAM_DEAF_MS, is closed (docs/protocol.md 8.4). A peer that is reading, however
 * slowly, is not: a file.write command alone carries up to 4 MiB of content (5.6 MB as base64),
 * which an agent on a slow link may still be taking when the next acks go out.
 */
export const STREAM_BACKPRESSURE_BYTES = 1024 * 1024;
export const STREAM_DEAF_MS = 5000;
/**
 * Where Bun itself drops a message, and the stream is then closed: above the largest message the
 * server sends (5.6 MB) with room for acks, and well under Bun's default of 16 MiB, which a deaf
 * peer's flood filled in about 2 s of the server's time while other agents waited.
 */
export const STREAM_BUFFER_LIMIT = 8 * 1024 * 1024;

export interface StreamData {
  kind: "agent-stream";
  nonce: string;
  agentId?: number;
  transport: string;
  inFlight: number;
  /** The peer's address; counted in `clients` while `unauthenticated`. */
  ip: string;
  unauthenticated?: boolean;
  helloTimer?: ReturnType<typeof setTimeout>;
  /** Over STREAM_BACKPRESSURE_BYTES: the least unread seen since, and when (the peer's last progress). */
  backlog?: { least: number; at: number };
}

/** What the upgrade handler puts on a new stream. */
export function newStreamData(ip: string): StreamData {
  return { kind: "agent-stream", nonce: "", transport: "wss", inFlight: 0, ip, unauthenticated: true };
}

/** The stream is no longer unauthenticated (authenticated, or closed): stop its clock, give back its count. */
function settled(ws: ServerWebSocket<StreamData>, deps: StreamDeps): void {
  clearTimeout(ws.data.helloTimer);
  if (ws.data.unauthenticated) deps.clients.leave(ws.data.ip);
  ws.data.unauthenticated = false;
}

export interface StreamDeps extends IngestDeps {
  gate: Gate;
  /** Where answers to commands go (src/cluster/command-replies.ts); without it they are refused. */
  onCommandResult?: (agentId: number, id: string, result: unknown) => Promise<boolean>;
  /** Where output of running commands goes (src/cluster/command-output.ts); without it it is refused. */
  onCommandOutput?: (agentId: number, id: string, seq: unknown, lines: unknown) => Promise<boolean>;
  /** Messages processed at once per connection before the agent is told to slow down. */
  maxInFlight?: number;
  /** Open streams by agent, for messages pushed to agents (src/cluster/bus.ts). */
  streams?: StreamRegistry;
  /** Longest a message waits on the database before its frames are refused as store_unavailable (SERVERMIND_DB_TIMEOUT_MS). */
  storeTimeoutMs?: number;
  /** The cap and deadlines for clients that have not authenticated. */
  clients: UnauthenticatedClients;
}

/**
 * Sends one message; a peer that stopped reading (over STREAM_BACKPRESSURE_BYTES unread, and
 * none of it taken for STREAM_DEAF_MS) is cut, as is one whose message Bun had to drop. Bun's
 * closeOnBackpressureLimit does not close a stream on a TLS listener with HTTP/2 enabled (1.4.4:
 * it only drops the message), so this is checked here.
 */
function send(ws: ServerWebSocket<StreamData>, msg: unknown): void {
  if (ws.readyState !== 1) return;
  if (ws.send(JSON.stringify(msg)) === 0 || stoppedReading(ws.data, ws.getBufferedAmount(), performance.now())) ws.terminate();
}

/**
 * After a send that left `unread` bytes waiting for the peer: whether it stopped reading (over
 * STREAM_BACKPRESSURE_BYTES, and no less unread than STREAM_DEAF_MS ago). Keeps its note in `d`.
 */
export function stoppedReading(d: Pick<StreamData, "backlog">, unread: number, now: number): boolean {
  if (unread <= STREAM_BACKPRESSURE_BYTES) d.backlog = undefined;
  else if (!d.backlog || unread < d.backlog.least) d.backlog = { least: unread, at: now };
  else return now - d.backlog.at > STREAM_DEAF_MS;
  return false;
}

function busyRejects(buf: Uint8Array, deps: IngestDeps, message: string): Reject[] {
  return splitFrames(buf, deps.limits).map((e) => ({
    batch: (e.frame?.header ?? e.header)?.batchId ?? null,
    seq: (e.frame?.header ?? e.header)?.seq ?? null,
    code: "busy" as Reject["code"],
    message,
  }));
}

/** A refused hello (or anything else sent before the welcome): bad_hello, counted as a failure of the address, close 4401. */
function refuseBeforeHello(ws: ServerWebSocket<StreamData>, deps: StreamDeps, message: string): void {
  if (ws.readyState !== 1) return;
  deps.metrics.rejects.inc({ reason: "bad_hello" });
  deps.clients.failed(ws.data.ip);
  send(ws, { type: "error", code: "bad_hello", message });
  ws.close(CLOSE_BAD_HELLO, "authentication failed");
}

async function authenticate(ws: ServerWebSocket<StreamData>, deps: StreamDeps, buf: Uint8Array): Promise<void> {
  const entries = splitFrames(buf, deps.limits);
  const f = entries.length === 1 ? entries[0]!.frame : undefined;
  const fail = (message: string) => refuseBeforeHello(ws, deps, message);
  if (!f || f.header.kind !== FrameKind.Hello) return fail("the first message must be exactly one Hello frame");
  const agent = await withDeadline(deps.directory.lookup(f.header.agentId), deps.storeTimeoutMs ?? 5000, "hello");
  if (!agent) return fail(notEnrolled(f.header.agentId).message);
  // a revoked agent's hello that does not verify gets the answer for an unknown agent
  if (!verifyFrame(f, agent.key)) return fail(agent.revoked ? notEnrolled(f.header.agentId).message : "hello signature does not match the agent's key");
  if (!agent.replay.accept(f.header.seq)) return fail(`hello sequence number ${f.header.seq} was already used`);
  let nonce: string;
  try {
    const body = decodeFrameBody(f.header, f.body, deps.inflate);
    nonce = (body.body as { nonce: string }).nonce;
  } catch (e) {
    return fail(`hello body is invalid: ${e instanceof Error ? e.message : e}`);
  }
  if (nonce !== ws.data.nonce) return fail("hello does not carry this connection's challenge nonce");
  if (ws.readyState !== 1) return; // closed (e.g. the hello deadline) while the agent was looked up
  if (agent.revoked) {
    // told only to the key's holder, after its signed hello verified: close 4403, not 4401
    deps.metrics.rejects.inc({ reason: "revoked_agent" });
    send(ws, { type: "error", code: "revoked_agent", message: `agent ${f.header.agentId} has been revoked` });
    return ws.close(CLOSE_REVOKED, "agent revoked");
  }
  ws.data.agentId = f.header.agentId;
  settled(ws, deps);
  deps.state.touch(f.header.agentId, f.header.seq, ws.data.transport);
  const session = deps.directory.sessions.open(f.header.agentId);
  deps.metrics.sessionsOpened.inc({ transport: ws.data.transport });
  send(ws, { type: "welcome", agentId: f.header.agentId, session: sessionJson(session) });
  deps.streams?.add(f.header.agentId, ws);
}

/**
 * The database did not answer in time: the message's frames are refused (the agent resends
 * them; a batch that commits meanwhile comes back as `dup`), the agent is told to pause, and a
 * stream still waiting for its hello is closed with 1013 (try again later).
 */
function storeUnavailable(ws: ServerWebSocket<StreamData>, deps: IngestDeps, buf: Uint8Array): void {
  deps.metrics.rejects.inc({ reason: "store_unavailable" });
  if (ws.data.agentId === undefined) {
    send(ws, { type: "error", code: "store_unavailable", message: "the database is not answering; reconnect later" });
    ws.close(1013, "database unavailable");
    return;
  }
  const rejects = busyRejects(buf, deps, "the database is not answering; resend later").map((r) => ({ ...r, code: "store_unavailable" as Reject["code"] }));
  send(ws, { type: "ack", acks: [], rejects });
  send(ws, { type: "slow", retryAfterMs: 5000 });
}

export function createStreamHandler(deps: StreamDeps): WebSocketHandler<StreamData> {
  /** Text messages from an agent: answers to commands and their output (docs/protocol.md, section 8.2). */
  async function textMessage(ws: ServerWebSocket<StreamData>, text: string): Promise<void> {
    // before the welcome only the hello is taken: answering each text message would let a peer
    // that proved nothing have the server write to it as fast as it sends
    if (ws.data.agentId === undefined) return refuseBeforeHello(ws, deps, "the first message must be one hello frame (binary), not text");
    let m: { type?: unknown; id?: unknown; result?: unknown; seq?: unknown; lines?: unknown };
    try {
      m = JSON.parse(text);
    } catch {
      return send(ws, { type: "error", code: "bad_message", message: "text messages must be JSON; frames travel in binary messages" });
    }
    if ((m?.type !== "command-result" && m?.type !== "command-output") || typeof m.id !== "string" || m.id.length > 100) {
      return send(ws, { type: "error", code: "bad_message", message: 'the text messages an agent sends are {"type":"command-result","id":...,"result":...} and {"type":"command-output","id":...,"seq":...,"lines":[...]}' });
    }
    if (m.type === "command-output") {
      const stored = deps.onCommandOutput ? await deps.onCommandOutput(ws.data.agentId, m.id, m.seq, m.lines).catch(() => false) : false;
      if (!stored) send(ws, { type: "error", code: "unknown_command", message: `output of command ${m.id} was not taken (unknown or old command, a repeated or bad chunk)` });
      return;
    }
    const known = deps.onCommandResult ? await deps.onCommandResult(ws.data.agentId, m.id, m.result).catch(() => false) : false;
    if (!known) send(ws, { type: "error", code: "unknown_command", message: `no command ${m.id} waits for an answer from this agent` });
  }

  const maxInFlight = deps.maxInFlight ?? 16;
  return {
    maxPayloadLength: deps.limits.maxBodyBytes + 1024,
    // a peer that stops reading is closed once this much of what the server sent waits for it
    // (Bun's default keeps 16 MiB per stream and then drops messages silently, acks included)
    backpressureLimit: STREAM_BUFFER_LIMIT,
    closeOnBackpressureLimit: true,
    idleTimeout: 120,
    perMessageDeflate: false,
    open(ws) {
      ws.data.nonce = randomBytes(24).toString("base64url");
      const ms = deps.clients.limits.helloTimeoutMs;
      ws.data.helloTimer = setTimeout(() => {
        if (ws.data.agentId !== undefined) return;
        deps.metrics.clientTimeouts.inc({ kind: "hello" });
        ws.close(CLOSE_HELLO_TIMEOUT, `no authenticated hello within ${ms} ms`);
      }, ms);
      send(ws, { type: "challenge", nonce: ws.data.nonce });
    },
    close(ws) {
      settled(ws, deps);
      deps.streams?.remove(ws);
    },
    async message(ws, msg) {
      if (typeof msg === "string") return await textMessage(ws, msg);
      const buf = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
      try {
        if (ws.data.agentId === undefined) return await authenticate(ws, deps, buf);
        if (ws.data.inFlight >= maxInFlight) {
          deps.metrics.busy.inc({ transport: "wss" });
          send(ws, { type: "ack", acks: [], rejects: busyRejects(buf, deps, `more than ${maxInFlight} messages in flight on this stream`) });
          send(ws, { type: "slow", retryAfterMs: 500 });
          return;
        }
        let release: () => void;
        try {
          release = await deps.gate.acquire();
        } catch (e) {
          if (!(e instanceof Busy)) throw e;
          deps.metrics.busy.inc({ transport: "wss" });
          send(ws, { type: "ack", acks: [], rejects: busyRejects(buf, deps, e.message) });
          send(ws, { type: "slow", retryAfterMs: e.retryAfterS * 1000 });
          return;
        }
        ws.data.inFlight++;
        try {
          const r = await withDeadline(ingestFrames(deps, buf, ws.data.transport), deps.storeTimeoutMs ?? 5000, "stream message");
          send(ws, { type: "ack", ...r });
        } finally {
          ws.data.inFlight--;
          release();
        }
      } catch (e) {
        if (isStoreUnavailable(e)) return storeUnavailable(ws, deps, buf);
        console.error(`stream message failed: ${e instanceof Error ? e.stack : e}`);
        send(ws, { type: "error", code: "internal", message: "internal error; frames in this message were not stored" });
      }
    },
  };
}
