/** What the ship loop needs from a transport, whichever protocol carries the frames. */
import type { SessionAnswer, SessionGrant } from "./session.ts";

export interface Ack {
  batch: number;
  seq: number;
  status: string;
}

export interface Reject {
  batch: number | null;
  seq: number | null;
  code: string;
  message: string;
}

export interface SendResult {
  acks: Ack[];
  rejects: Reject[];
  /** The server asked us to pause (429/503 Retry-After, or a WebSocket "slow" message). */
  retryAfterMs?: number;
}

export interface Transport {
  /** "h3", "h2", "h1" or "wss", as reported in status and heartbeats. */
  readonly name: string;
  /** Sends frames (one request or message) and resolves with the server's answer for them. */
  send(frames: Uint8Array[]): Promise<SendResult>;
  close(): void;
  /** WebSocket: the session this connection's welcome granted, when it carried a valid one. */
  readonly session?: SessionGrant;
  /**
   * HTTP: opens a session with one signed hello frame (POST /api/v1/session). Resolves with the
   * server's answer, whatever its status; throws TransportError when the request itself fails.
   */
  openSession?(hello: Uint8Array): Promise<SessionAnswer>;
}

/** A transport failed in a way worth falling back from (connect, TLS, timeout, garbage). */
export class TransportError extends Error {
  constructor(
    message: string,
    /** True when this runtime cannot use the protocol with a pinned certificate at all. */
    readonly unsupported = false,
    /** The request or message was over the server's size limit (HTTP 413, WebSocket close 1009): send fewer frames. */
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

/** Checks an answer's shape; anything else is garbage and raises TransportError. */
export function parseAnswer(v: unknown, where: string): SendResult {
  if (!v || typeof v !== "object") throw new TransportError(`${where}: answer is not a JSON object`);
  const o = v as Record<string, unknown>;
  const acks = Array.isArray(o.acks) ? o.acks : [];
  const rejects = Array.isArray(o.rejects) ? o.rejects : [];
  if (!Array.isArray(o.acks) && !Array.isArray(o.rejects)) throw new TransportError(`${where}: answer has neither acks nor rejects`);
  const okAck = (a: any): a is Ack => a && Number.isSafeInteger(a.batch) && Number.isSafeInteger(a.seq) && typeof a.status === "string";
  const okRej = (r: any): r is Reject => r && typeof r.code === "string";
  return {
    acks: acks.filter(okAck),
    rejects: rejects.filter(okRej).map((r) => ({ batch: Number.isSafeInteger(r.batch) ? r.batch : null, seq: Number.isSafeInteger(r.seq) ? r.seq : null, code: r.code, message: String(r.message ?? "").slice(0, 500) })),
  };
}

/** Turns an HTTP answer (status, Retry-After, body text) into a SendResult or a TransportError. */
export function interpretHttpAnswer(name: string, status: number, retryAfter: string | null, text: string): SendResult {
  const retryAfterMs = retryAfter !== null && Number.isFinite(Number(retryAfter)) ? Math.min(Number(retryAfter), 3600) * 1000 : undefined;
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    if (status === 429 || status === 503) return { acks: [], rejects: [], retryAfterMs: retryAfterMs ?? 5000 };
    // an early 413 (the server refused the request from its Content-Length) has an empty body
    throw new TransportError(`${name}: HTTP ${status} with a body that is not JSON (${text.length} bytes)`, false, status === 413);
  }
  if ((status === 429 || status === 503) && !body?.acks) return { acks: [], rejects: [], retryAfterMs: retryAfterMs ?? 5000 };
  if (body?.error && !body?.acks) throw new TransportError(`${name}: HTTP ${status} ${String(body.error.code)}: ${String(body.error.message).slice(0, 300)}`, false, status === 413);
  const res = parseAnswer(body, `${name} HTTP ${status}`);
  if (retryAfterMs !== undefined) res.retryAfterMs = retryAfterMs;
  return res;
}
