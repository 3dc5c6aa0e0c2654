/**
 * The HTTP transport of our agent's protocol: POST /api/v1/ingest over HTTP/1.1, HTTP/2 or
 * HTTP/3. Takes a gate token, reads the body within its limit, hands the bytes to the
 * transport-independent handler and answers with the acks once they are committed.
 * POST /api/v1/session opens a session (docs/protocol.md 3.5) for the agent whose signed
 * hello it carries.
 */
import { authenticateAgent, ingestFrames, notEnrolled, resultStatus, type IngestDeps, type Reject } from "./handler.ts";
import { Busy, type Gate } from "../gate.ts";
import { BodyReader, BodyTooLarge, BodyTooSlow, readBody, type BodyPace } from "../body.ts";
import { FrameError, FrameKind, HEADER_SIZE, SIGNATURE_SIZE, type FrameHeader } from "../frame/frame.ts";
import { bodyTooLarge, decodeFrameBody, decodeFrameHeader, splitFrames, verifyFrame } from "../frame/decode.ts";
import type { UnauthenticatedClients } from "../clients.ts";
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

export function createSessionHandler(deps: IngestDeps & StoreDeadline & { clients: UnauthenticatedClients }) {
  const pace: BodyPace = { graceMs: deps.clients.limits.bodyGraceMs, minRate: deps.clients.limits.minBodyRate };
  return async function handleSession(request: Request, ip: string): Promise<Response> {
    const refuse = (code: string, status: number, message: string, headers: Record<string, string> = {}) => {
      deps.metrics.rejects.inc({ reason: code });
      return json({ error: { code, message } }, status, headers);
    };
    // the whole exchange is unauthenticated until the hello's signature checks out
    if (!deps.clients.enter(ip)) {
      deps.metrics.unauthenticatedRefused.inc({ transport: "https", reason: "per_ip_cap" });
      return refuse("too_many_unauthenticated", 429, `${deps.clients.limits.maxUnauthenticatedPerIp} requests or streams from this address are already waiting to authenticate (SERVERMIND_MAX_UNAUTH_PER_IP)`, { connection: "close", "retry-after": "1" });
    }
    let buf: Uint8Array;
    try {
      buf = await readBody(request, MAX_SESSION_REQUEST, pace);
    } catch (e) {
      deps.clients.leave(ip);
      if (e instanceof BodyTooSlow) {
        deps.metrics.clientTimeouts.inc({ kind: "body_rate" });
        return refuse("too_slow", 408, e.message, { connection: "close" });
      }
      if (!(e instanceof BodyTooLarge)) throw e;
      return refuse("too_large", 413, `a session request is one hello frame of at most ${MAX_SESSION_REQUEST} bytes`, { connection: "close" });
    }
    deps.clients.leave(ip);
    const entries = splitFrames(buf, deps.limits);
    const f = entries.length === 1 ? entries[0]!.frame : undefined;
    if (!f) return refuse("bad_hello", 400, entries[0]?.error ? `the hello frame is malformed: ${entries[0].error.message}` : "the body must be exactly one hello frame");
    const h = f.header;
    if (h.kind !== FrameKind.Hello) return refuse("bad_hello", 400, `the body must be a hello frame (kind 6), not kind ${h.kind}`);
    if (!deps.clients.mayTry(ip)) {
      deps.metrics.unauthenticatedRefused.inc({ transport: "https", reason: "failures" });
      return refuse("too_many_failures", 429, TOO_MANY_FAILURES(deps.clients.limits.maxAuthFailuresPerIp), { "retry-after": "1" });
    }
    const agent = await withDeadline(deps.directory.lookup(h.agentId), deps.storeTimeoutMs ?? 5000, "session");
    if (!agent) {
      deps.clients.failed(ip);
      return refuse("unknown_agent", 401, notEnrolled(h.agentId).message);
    }
    if (!verifyFrame(f, agent.key)) {
      deps.clients.failed(ip);
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

/** Frames refused as bad_signature or unknown_agent (each costs a signature check or a lookup) before one passes, at most. */
const MAX_COSTLY_REFUSALS = 4;
/** Bytes read before a frame authenticates, at most (more when the first frame alone is larger). */
const MAX_UNAUTHENTICATED_BYTES = 1 << 20;

export interface IngestHandlerDeps extends IngestDeps, StoreDeadline {
  gate: Gate;
  clients: UnauthenticatedClients;
}

type Unauthenticated = { rejects: Reject[]; cut?: string };

const TOO_MANY_FAILURES = (limit: number) =>
  `this address failed to authenticate ${limit} times this second (SERVERMIND_MAX_AUTH_FAILURES_PER_IP); nothing more from it is checked until the next second`;

/**
 * Reads frames until one authenticates (its agent is enrolled and not revoked, and its session
 * tag or signature checks out), without a gate token. Returns undefined once one has; otherwise
 * the refusals of what was read, and `cut` when reading stopped before the body's end.
 */
async function authenticatePrefix(deps: IngestDeps & StoreDeadline, body: BodyReader, clients: UnauthenticatedClients, ip: string): Promise<Unauthenticated | undefined> {
  const rejects: Reject[] = [];
  const refuse = (code: Reject["code"], message: string, h?: FrameHeader) => rejects.push({ batch: h?.batchId ?? null, seq: h?.seq ?? null, code, message });
  let scan = 0;
  let budget = MAX_UNAUTHENTICATED_BYTES;
  for (;;) {
    const buf = body.bytes;
    while (buf.length - scan >= HEADER_SIZE) {
      let h: FrameHeader;
      try {
        h = decodeFrameHeader(buf, scan);
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
        refuse(e.code, e.message);
        return { rejects, cut: body.complete ? undefined : "unreadable" };
      }
      // the frame's own code (422), as when it follows an authenticated frame; its body is not
      // read: nothing is spent on it before a frame of this request authenticates
      const tooLarge = bodyTooLarge(h, deps.limits);
      if (tooLarge) {
        refuse(tooLarge.code, tooLarge.message, h);
        return { rejects, cut: "too_large" };
      }
      const end = scan + HEADER_SIZE + h.bodyLength + SIGNATURE_SIZE;
      if (scan === 0) budget = Math.max(budget, end);
      if (end > budget) return { rejects, cut: "budget" };
      if (end > buf.length) break; // wait for the rest of this frame
      const [entry] = splitFrames(buf.subarray(scan, end), deps.limits);
      scan = end;
      if (entry!.error) refuse(entry!.error.code, entry!.error.message, h);
      else if (!clients.mayTry(ip)) return { rejects, cut: "failures" };
      else {
        const agent = await withDeadline(deps.directory.lookup(h.agentId), deps.storeTimeoutMs ?? 5000, "ingest");
        if (!agent) {
          refuse("unknown_agent", notEnrolled(h.agentId).message, h);
          clients.failed(ip);
        } else {
          try {
            // a revoked agent is told so only once its frame authenticated (docs/protocol.md 3.6)
            authenticateAgent(entry!.frame, agent, deps.directory);
            return undefined;
          } catch (e) {
            if (!(e instanceof FrameError)) throw e;
            refuse(e.code, e.message, h);
            if (e.code === "bad_signature" || e.code === "unknown_agent") clients.failed(ip);
          }
        }
      }
      if (rejects.filter((r) => r.code === "bad_signature" || r.code === "unknown_agent").length >= MAX_COSTLY_REFUSALS) return { rejects, cut: "budget" };
    }
    if (!(await body.next())) {
      // the body ended inside a frame, or with none: report the tail as the frame splitter would
      for (const e of splitFrames(body.bytes.subarray(scan), deps.limits)) if (e.error) refuse(e.error.code, e.error.message, e.header);
      return { rejects };
    }
  }
}

/**
 * POST /api/v1/ingest. Nothing is spent on a request before it proves itself: its frames are
 * read, at the minimum pace and within a small budget, until one authenticates; only then does
 * it take a gate token and read the rest. A request whose frames do not authenticate is answered
 * with their refusals and never reaches the batcher.
 */
export function createIngestHandler(deps: IngestHandlerDeps, maxRequestBytes: number) {
  const pace = { graceMs: deps.clients.limits.bodyGraceMs, minRate: deps.clients.limits.minBodyRate };
  const close = { connection: "close" };
  const refuse = (code: string, status: number, message: string, headers: Record<string, string> = close) => {
    deps.metrics.rejects.inc({ reason: code });
    return json({ error: { code, message } }, status, headers);
  };
  return async function handleIngest(request: Request, ip: string): Promise<Response> {
    if (!deps.clients.enter(ip)) {
      deps.metrics.unauthenticatedRefused.inc({ transport: "https", reason: "per_ip_cap" });
      return refuse("too_many_unauthenticated", 429, `${deps.clients.limits.maxUnauthenticatedPerIp} requests or streams from this address are already waiting to authenticate (SERVERMIND_MAX_UNAUTH_PER_IP)`, { ...close, "retry-after": "1" });
    }
    let counted = true;
    const authenticated = () => {
      if (counted) deps.clients.leave(ip);
      counted = false;
    };
    let body: BodyReader | undefined;
    try {
      body = new BodyReader(request, maxRequestBytes, pace);
      const refused = await authenticatePrefix(deps, body, deps.clients, ip);
      if (refused) {
        for (const r of refused.rejects) deps.metrics.rejects.inc({ reason: r.code });
        // a body not read to its end leaves the connection unusable: it is closed after the answer
        const unread = !body.complete;
        if (refused.cut) {
          deps.metrics.unauthenticatedCut.inc({ reason: refused.cut });
          body.cancel();
        }
        if (refused.cut === "failures") {
          deps.metrics.unauthenticatedRefused.inc({ transport: "https", reason: "failures" });
          return refuse("too_many_failures", 429, TOO_MANY_FAILURES(deps.clients.limits.maxAuthFailuresPerIp), { ...(unread ? close : {}), "retry-after": "1" });
        }
        if (refused.rejects.length === 0) return refuse("truncated", 400, "empty request body: send one or more frames", {});
        const result = { acks: [], rejects: refused.rejects };
        return json(result, resultStatus(result), unread ? close : {});
      }
      authenticated();
      body.trust();
      let release: () => void;
      body.pause();
      try {
        release = await deps.gate.acquire();
      } catch (e) {
        if (!(e instanceof Busy)) throw e;
        deps.metrics.busy.inc({ transport: "https" });
        const unread = !body.complete;
        body.cancel();
        return json({ error: { code: "busy", message: e.message } }, 503, { "retry-after": String(e.retryAfterS), ...(unread ? close : {}) });
      }
      try {
        body.resume();
        const buf = await body.all();
        // frames refused at the deadline may still commit: the agent's resend is then acknowledged "dup"
        const result = await withDeadline(ingestFrames(deps, buf, transportOf(request)), deps.storeTimeoutMs ?? 5000, "ingest");
        const status = resultStatus(result);
        return json(result, status, status === 503 ? { "retry-after": "2" } : {});
      } finally {
        release();
      }
    } catch (e) {
      if (e instanceof BodyTooLarge) return refuse("too_large", 413, e.message);
      if (e instanceof BodyTooSlow) {
        deps.metrics.clientTimeouts.inc({ kind: "body_rate" });
        return refuse("too_slow", 408, e.message);
      }
      throw e;
    } finally {
      authenticated();
      body?.cancel();
    }
  };
}
