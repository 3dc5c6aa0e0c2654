/**
 * A simulated agent built on the real frame codec: enrolls over HTTPS, builds signed frames (or
 * frames sealed with a session, once `session` is set) and sends them over HTTP/1.1, HTTP/2,
 * HTTP/3 or WebSocket. Used by tests and the fleet benchmark.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { encodeFrame, packLogs, packMap, packMetrics, type FrameAuth } from "../../src/ingest/frame/encode.ts";
import { FrameKind, type SessionAuth } from "../../src/ingest/frame/frame.ts";

export type HttpProtocol = "http1.1" | "http2" | "http3";

export interface SimAgent {
  id: number;
  privateKey: KeyObject;
  publicKeyB64: string;
  seq: number;
  batch: number;
  /** When set, frames are sealed with it instead of signed (docs/protocol.md 3.5). */
  session?: SessionAuth;
}

const auth = (a: SimAgent): FrameAuth => a.session ?? a.privateKey;

export function newKeys(): { privateKey: KeyObject; publicKeyB64: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const x = publicKey.export({ format: "jwk" }).x!;
  return { privateKey, publicKeyB64: Buffer.from(x, "base64url").toString("base64") };
}

export async function enroll(baseUrl: string, token: string, hostname: string): Promise<SimAgent> {
  const k = newKeys();
  const r = await fetch(`${baseUrl}/api/v1/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, publicKey: k.publicKeyB64, hostname, os: "linux", arch: "x64", version: "sim" }),
    tls: { rejectUnauthorized: false },
  });
  const body = (await r.json()) as { agentId: number; error?: { message: string } };
  if (r.status !== 200) throw new Error(`enroll failed: ${r.status} ${body.error?.message}`);
  return { id: body.agentId, ...k, seq: 0, batch: 0 };
}

export const metricNames = (n: number) => Array.from({ length: n }, (_, i) => `sim.metric_${String(i).padStart(3, "0")}`);

/** A metrics frame with `series` series x `stamps` timestamps, 10 s apart, ending at `endMs`. */
export function metricsFrame(a: SimAgent, series: number, stamps: number, endMs: number, names = metricNames(series)): Uint8Array {
  const ts = new Float64Array(stamps);
  for (let i = 0; i < stamps; i++) ts[i] = endMs - (stamps - 1 - i) * 10_000;
  const values = new Float64Array(series * stamps);
  for (let i = 0; i < values.length; i++) values[i] = Math.round(Math.random() * 100_000) / 100;
  return encodeFrame(
    { kind: FrameKind.Metrics, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: endMs, items: series * stamps },
    packMetrics({ ts, names, values }),
    auth(a),
  );
}

export function logsFrame(a: SimAgent, lines: number, endMs: number): Uint8Array {
  const ts = new Float64Array(lines).map((_, i) => endMs - (lines - i) * 10);
  const severity = new Uint8Array(lines).map((_, i) => (i % 10 === 0 ? 3 : 6));
  const sources = ["sshd", "kernel", "/var/log/syslog"];
  const sourceIndex = new Uint16Array(lines).map((_, i) => i % 3);
  const messages = Array.from({ length: lines }, (_, i) => `line ${i} of batch ${a.batch + 1}: Accepted publickey for deploy from 10.1.${i % 250}.${(i * 7) % 250} port ${40000 + i} ssh2`);
  return encodeFrame(
    { kind: FrameKind.Logs, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: endMs, items: lines },
    packLogs({ ts, severity, sources, sourceIndex, messages }),
    auth(a),
  );
}

export function mapFrame(a: SimAgent, kind: FrameKind, body: Record<string, unknown>, batchId = ++a.batch): Uint8Array {
  // a hello is always signed: it is what opens a session
  return encodeFrame({ kind, agentId: a.id, seq: ++a.seq, batchId, createdMs: Date.now(), items: 1 }, packMap(body), kind === FrameKind.Hello ? a.privateKey : auth(a));
}

export interface SessionAnswer {
  status: number;
  body: { agentId?: number; session?: { id: number; key: string; expiresMs: number }; error?: { code: string; message: string } };
}

/** Sends `hello` (default: a fresh signed session hello) to POST /api/v1/session. */
export async function requestSession(baseUrl: string, a: SimAgent, protocol: HttpProtocol = "http2", hello?: Uint8Array): Promise<SessionAnswer> {
  const r = await fetch(`${baseUrl}/api/v1/session`, {
    method: "POST",
    headers: { "content-type": "application/vnd.servermind.frames", "x-servermind-transport": protocol === "http1.1" ? "h1" : protocol === "http2" ? "h2" : "h3" },
    body: hello ?? mapFrame(a, FrameKind.Hello, { nonce: "", version: "sim" }, 0),
    tls: { rejectUnauthorized: false },
    protocol,
  } as RequestInit);
  return { status: r.status, body: (await r.json()) as SessionAnswer["body"] };
}

export function sessionAuth(s: { id: number; key: string }): SessionAuth {
  return { id: s.id, key: new Uint8Array(Buffer.from(s.key, "base64")) };
}

/** Opens a session and seals the agent's frames with it from now on. */
export async function openSession(baseUrl: string, a: SimAgent, protocol: HttpProtocol = "http2"): Promise<SessionAuth> {
  const r = await requestSession(baseUrl, a, protocol);
  if (r.status !== 200 || !r.body.session) throw new Error(`session refused: ${r.status} ${JSON.stringify(r.body.error)}`);
  a.session = sessionAuth(r.body.session);
  return a.session;
}

export interface IngestResponse {
  status: number;
  body: { acks?: Array<{ batch: number; seq: number; status: string }>; rejects?: Array<{ batch: number | null; seq: number | null; code: string; message: string }>; error?: { code: string; message: string } };
  retryAfter: string | null;
}

export async function post(baseUrl: string, frames: Uint8Array[] | Uint8Array, protocol: HttpProtocol = "http2"): Promise<IngestResponse> {
  const body = Array.isArray(frames) ? Buffer.concat(frames) : frames;
  const r = await fetch(`${baseUrl}/api/v1/ingest`, {
    method: "POST",
    headers: { "content-type": "application/vnd.servermind.frames", "x-servermind-transport": protocol === "http1.1" ? "h1" : protocol === "http2" ? "h2" : "h3" },
    body,
    tls: { rejectUnauthorized: false },
    protocol,
  } as RequestInit);
  return { status: r.status, body: (await r.json()) as IngestResponse["body"], retryAfter: r.headers.get("retry-after") };
}

/** An authenticated agent stream: send() resolves with the server's ack message for that send. */
export async function openStream(baseUrl: string, a: SimAgent): Promise<{
  send(frames: Uint8Array[] | Uint8Array): Promise<any>;
  messages: any[];
  /** The session the welcome carried (not applied to the agent: set `a.session` to use it). */
  session?: SessionAuth;
  /** Resolves when the server or we close the stream, with the close code. */
  closed: Promise<{ code: number; reason: string }>;
  /** Sends a text message (answers to commands). */
  sendText(text: string): void;
  /** Called with every command the server pushes down the stream. */
  onCommand?: (m: any) => void;
  close(): void;
}> {
  const ws = new WebSocket(baseUrl.replace(/^https/, "wss") + "/api/v1/stream", { tls: { rejectUnauthorized: false } } as any);
  ws.binaryType = "arraybuffer";
  const messages: any[] = [];
  const waiters: Array<(m: any) => void> = [];
  let onChallenge: (nonce: string) => void;
  const challenged = new Promise<string>((r) => (onChallenge = r));
  let welcomed: (m: any) => void;
  const welcome = new Promise<any>((r) => (welcomed = r));
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    messages.push(m);
    if (m.type === "challenge") onChallenge(m.nonce);
    else if (m.type === "welcome" || (m.type === "error" && waiters.length === 0)) welcomed(m);
    else if (m.type === "ack" || m.type === "error") waiters.shift()?.(m);
    else if (m.type === "command") stream.onCommand?.(m);
  };
  const closed = new Promise<{ code: number; reason: string }>((r) => (ws.onclose = (e) => r({ code: e.code, reason: e.reason })));
  const nonce = await challenged;
  ws.send(mapFrame(a, FrameKind.Hello, { nonce, version: "sim" }, 0) as Uint8Array<ArrayBuffer>);
  const w = await welcome;
  if (w.type !== "welcome") throw new Error(`stream refused: ${JSON.stringify(w)}`);
  const stream = {
    messages,
    session: w.session ? sessionAuth(w.session) : undefined,
    closed,
    onCommand: undefined as ((m: any) => void) | undefined,
    sendText: (text: string) => ws.send(text),
    send(frames: Uint8Array[] | Uint8Array) {
      const buf = Array.isArray(frames) ? Buffer.concat(frames) : frames;
      return new Promise((r) => {
        waiters.push(r);
        ws.send(buf as Uint8Array<ArrayBuffer>);
      });
    },
    close: () => ws.close(),
  };
  return stream;
}
