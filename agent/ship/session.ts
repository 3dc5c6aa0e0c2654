/**
 * Sessions as the agent sees them (docs/protocol.md 3.5): the server trades one signed hello for
 * a 32-byte key, and frames sealed with that key cost it an HMAC instead of an Ed25519 check.
 *
 * The WebSocket welcome carries a session; over HTTP one is opened with POST /api/v1/session.
 * Both answers are checked here, strictly: anything malformed is treated as no session, and the
 * agent keeps signing. The key lives in memory only; nothing here puts it in a message.
 */
import type { SessionAuth } from "../../src/ingest/frame/frame.ts";

export interface SessionGrant extends SessionAuth {
  /** When the server forgets the session, ms since the epoch by the server's clock. */
  expiresMs: number;
}

/** The answer to POST /api/v1/session, without the HTTP details. */
export type SessionAnswer =
  | { ok: true; agentId: number | null; session: SessionGrant }
  | { ok: false; status: number; code: string; message: string };

/** Standard base64 of 32 bytes: 43 characters and one pad. */
const KEY_B64 = /^[A-Za-z0-9+/]{43}=$/;

/** `{"id", "key", "expiresMs"}` as the server sends it, or undefined when any field is off. */
export function parseSessionGrant(v: unknown): SessionGrant | undefined {
  if (!v || typeof v !== "object") return undefined;
  const { id, key, expiresMs } = v as Record<string, unknown>;
  if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > 0xffffffff) return undefined;
  if (typeof key !== "string" || !KEY_B64.test(key)) return undefined;
  if (typeof expiresMs !== "number" || !Number.isFinite(expiresMs)) return undefined;
  const decoded = Buffer.from(key, "base64");
  // a copy of our own: small Buffers share a pool, and a dropped key is zeroed in place
  const bytes = new Uint8Array(decoded);
  decoded.fill(0);
  if (bytes.length !== 32) return undefined;
  return { id, key: bytes, expiresMs };
}

/**
 * Reads the answer to POST /api/v1/session. Never throws: a body that is not the documented
 * JSON is an answer with code "bad_answer". Messages never quote a 200 body (it holds the key).
 */
export function interpretSessionAnswer(name: string, status: number, text: string): SessionAnswer {
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return { ok: false, status, code: status === 200 ? "bad_answer" : `http_${status}`, message: `${name}: HTTP ${status} with a body that is not JSON (${text.length} bytes)` };
  }
  if (status === 200) {
    const session = parseSessionGrant(body?.session);
    if (!session) return { ok: false, status, code: "bad_answer", message: `${name}: HTTP 200 without a valid session (id 1..2^32-1, key of 32 bytes, expiresMs)` };
    return { ok: true, agentId: Number.isSafeInteger(body.agentId) ? body.agentId : null, session };
  }
  const err = body?.error;
  const code = typeof err?.code === "string" ? err.code.slice(0, 64) : `http_${status}`;
  const message = typeof err?.message === "string" ? err.message.slice(0, 300) : "";
  return { ok: false, status, code, message: `${name}: HTTP ${status} ${code}${message ? `: ${message}` : ""}` };
}
