/**
 * The HTTP transport of our agent's protocol: POST /api/v1/ingest over HTTP/1.1, HTTP/2 or
 * HTTP/3. Takes a gate token, reads the body within its limit, hands the bytes to the
 * transport-independent handler and answers with the acks once they are committed.
 * POST /api/v1/session opens a session (docs/protocol.md 3.5) for the agent whose signed
 * hello it carries.
 */
import { ingestFrames, notEnrolled, resultStatus, type IngestDeps } from "./handler.ts";
import { Busy, type Gate } from "../gate.ts";
import { BodyTooLarge, readBody } from "../body.ts";
import { FrameKind } from "../frame/frame.ts";
import { decodeFrameBody, splitFrames, verifyFrame } from "../frame/decode.ts";
import type { Session } from "./sessions.ts";
import { withDeadline } from "../../store/postgres/unavailable.ts";

/** Longest a request waits on the database, once its body is in (SERVERMIND_DB_TIMEOUT_MS); past it: 503 + Retry-After via src/http/errors.ts. */
type StoreDeadline = { storeTimeoutMs?: number };

/** A session hello is one small frame. */
const MAX_SESSION_REQUEST = 64 * 1024;
/** How far a session hello's created-at may be from the server's clock. */
const HELLO_MAX_SKEW_MS = 5 * 60_000;

const TRANSPORTS = new Set(["h1", "h2", "h3"]);

function json(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function transportOf(request: Request): string {
  const claimed = request.headers.get("x-servermind-transport") ?? "";
  return TRANSPORTS.has(claimed) ? claimed : "https";
}

/** A session as the agent receives it: the key in base64, never anywhere else. */
export function sessionJson(s: Session) {
  return { id: s.id, key: Buffer.from(s.key).toString("base64"), expiresMs: s.expiresMs };
}

export function createSessionHandler(deps: IngestDeps & StoreDeadline) {
  return async function handleSession(request: Request): Promise<Response> {
    const refuse = (code: string, status: number, message: string) => {
      deps.metrics.rejects.inc({ reason: code });
      return json({ error: { code, message } }, status);
    };
    let buf: Uint8Array;
    try {
      buf = await readBody(request, MAX_SESSION_REQUEST);
    } catch (e) {
      if (!(e instanceof BodyTooLarge)) throw e;
      return refuse("too_large", 413, `a session request is one hello frame of at most ${MAX_SESSION_REQUEST} bytes`);
    }
    const entries = splitFrames(buf, deps.limits);
    const f = entries.length === 1 ? entries[0]!.frame : undefined;
    if (!f) return refuse("bad_hello", 400, entries[0]?.error ? `the hello frame is malformed: ${entries[0].error.message}` : "the body must be exactly one hello frame");
    const h = f.header;
    if (h.kind !== FrameKind.Hello) return refuse("bad_hello", 400, `the body must be a hello frame (kind 6), not kind ${h.kind}`);
    const agent = await withDeadline(deps.directory.lookup(h.agentId), deps.storeTimeoutMs ?? 5000, "session");
    if (!agent) return refuse("unknown_agent", 401, notEnrolled(h.agentId).message);
    if (!verifyFrame(f, agent.key)) {
      // only the key's holder learns of a revocation: anyone else gets the unknown-agent answer
      if (agent.revoked) return refuse("unknown_agent", 401, notEnrolled(h.agentId).message);
      return refuse("bad_signature", 401, "the hello must be signed with the agent's Ed25519 key (a sealed hello cannot open a session)");
    }
    if (agent.revoked) return refuse("revoked_agent", 403, `agent ${h.agentId} has been revoked`);
    const skew = h.createdMs - Date.now();
    if (Math.abs(skew) > HELLO_MAX_SKEW_MS) return refuse("bad_hello", 400, `the hello was created ${Math.round(skew / 1000)} s from the server's clock; at most ${HELLO_MAX_SKEW_MS / 1000} s is accepted (check the agent's clock)`);
    let nonce: unknown;
    try {
      nonce = (decodeFrameBody(h, f.body, deps.inflate).body as { nonce: unknown }).nonce;
    } catch (e) {
      return refuse("bad_hello", 400, `hello body is invalid: ${e instanceof Error ? e.message : e}`);
    }
    if (nonce !== "") return refuse("bad_hello", 400, "a session hello carries an empty nonce (a challenge nonce belongs to a WebSocket stream)");
    if (!agent.replay.accept(h.seq)) return refuse("replayed_seq", 409, `hello sequence number ${h.seq} was already used or is older than the replay window`);
    const transport = transportOf(request);
    deps.state.touch(h.agentId, h.seq, transport);
    const session = deps.directory.sessions.open(h.agentId);
    deps.metrics.sessionsOpened.inc({ transport });
    return json({ agentId: h.agentId, session: sessionJson(session) }, 200, { "cache-control": "no-store" });
  };
}

export function createIngestHandler(deps: IngestDeps & StoreDeadline & { gate: Gate }, maxRequestBytes: number) {
  return async function handleIngest(request: Request): Promise<Response> {
    let release: () => void;
    try {
      release = await deps.gate.acquire();
    } catch (e) {
      if (!(e instanceof Busy)) throw e;
      deps.metrics.busy.inc({ transport: "https" });
      return json({ error: { code: "busy", message: e.message } }, 503, { "retry-after": String(e.retryAfterS) });
    }
    try {
      let buf: Uint8Array;
      try {
        buf = await readBody(request, maxRequestBytes);
      } catch (e) {
        if (!(e instanceof BodyTooLarge)) throw e;
        deps.metrics.rejects.inc({ reason: "too_large" });
        return json({ error: { code: "too_large", message: e.message } }, 413);
      }
      if (buf.length === 0) return json({ error: { code: "truncated", message: "empty request body: send one or more frames" } }, 400);
      // frames refused at the deadline may still commit: the agent's resend is then acknowledged "dup"
      const result = await withDeadline(ingestFrames(deps, buf, transportOf(request)), deps.storeTimeoutMs ?? 5000, "ingest");
      const status = resultStatus(result);
      return json(result, status, status === 503 ? { "retry-after": "2" } : {});
    } finally {
      release();
    }
  };
}
