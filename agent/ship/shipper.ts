/**
 * The ship loop: spool -> frames -> transport -> acks -> spool.
 *
 * One request in flight at a time, oldest batches first. Each transmission gets a fresh
 * sequence number; the batch id is the spool id, so a resend is recognised and stored once.
 * A batch leaves the spool only on an ack ("ok", "dup"), or when the server rejects it as
 * permanently invalid (counted and logged, never silent; docs/protocol.md lists which codes those
 * are). A request over the server's size limit (413 `too_large`, WebSocket close 1009) is sent
 * again as smaller requests; a batch over the limit on its own is dropped and logged.
 * Transport failures back off with full
 * jitter; HTTP/3 failing falls back to WebSocket at once and is probed again after quicProbeMs.
 * While a backlog drains, sending is limited to replayPerSecond frames per second.
 *
 * Sessions (docs/protocol.md 3.5): frames are sealed with a session key when the server gave
 * one, else signed with the agent's key. A session belongs to the transport (connection) that
 * brought it: the WebSocket welcome's, or one opened with POST /api/v1/session on an HTTP
 * transport. A new connection, a fallback or a reconnect drops it, since the new connection may
 * reach another node; the next one comes with the new connection. Sessions are renewed
 * RENEW_BEFORE_MS before they expire and not used in their last USE_MARGIN_MS (an HTTP
 * transport opens the next one; a WebSocket reconnects between sends for a fresh welcome).
 * `unknown_session` (restart, another node, expiry) drops the session and resends the batches
 * at once, signed or sealed with a new session. No session problem ever stops the data: when
 * none can be had (an older server answers 404), frames are signed and opening is retried later.
 * The key stays in this process's memory: never logged, spooled or put in the status.
 */
import type { KeyObject } from "node:crypto";
import { encodeFrame, packMap, type FrameAuth } from "../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import type { Spool, SpoolStats } from "../spool/spool.ts";
import { createBackoff } from "./backoff.ts";
import { createHttpTransport } from "./http-transport.ts";
import { connectQuicTransport } from "./quic-transport.ts";
import type { PinnedTls } from "./pin.ts";
import type { SessionGrant } from "./session.ts";
import { TransportError, type SendResult, type Transport } from "./transport.ts";
import { connectWsTransport, proxyFor } from "./ws-transport.ts";

export type TransportChoice = "auto" | "http3" | "http2" | "wss";

export interface ShipperOptions {
  spool: Spool;
  agentId: number;
  key: KeyObject;
  serverUrl: string;
  tls: PinnedTls;
  /** SHA-256 of the pinned certificate (HTTP/3 checks the peer against it). */
  fingerprint: string;
  transport: TransportChoice;
  maxFramesPerRequest: number;
  replayPerSecond: number;
  quicProbeMs: number;
  requestTimeoutMs: number;
  heartbeatMs: number;
  heartbeat: () => Record<string, unknown>;
  version: string;
  now?: () => number;
  random?: () => number;
  log?: (msg: string) => void;
  /** Commands the server pushes on the WebSocket. */
  onCommand?: (msg: Record<string, unknown>, reply: (result: unknown) => void, output?: (chunk: { seq: number; lines: unknown[] }) => void) => void;
  /** Builds a transport; tests inject failures here. Defaults to the real HTTP and WSS transports. */
  connect?: (kind: "h3" | "h2" | "wss") => Promise<Transport>;
}

export interface ShipStatus {
  state: "starting" | "connected" | "backoff" | "rejected" | "stopped";
  transport: string | null;
  lastAckMs: number | null;
  lastError: string | null;
  sentFrames: number;
  ackedFrames: number;
  rejectedFrames: number;
  /** Time from losing the server to the next acknowledged send, last occurrence. */
  lastReconnectMs: number | null;
  h3: "untried" | "ok" | "failed" | "unavailable";
  /** Last HTTP/3 handshake to a pinned session, ms, and whether it resumed with a ticket. */
  lastHandshakeMs: number | null;
  lastHandshakeResumed: boolean;
  /** "open" while frames are sealed with a session, "none" while they are signed. */
  session: "none" | "open";
  /** Sessions taken into use (WebSocket welcomes and POST /api/v1/session). */
  sessionsOpened: number;
  /** Frames the server refused as `unknown_session` (kept and sent again). */
  unknownSessionRejects: number;
  /** Frames sent sealed with a session rather than signed. */
  sealedFrames: number;
  spool: SpoolStats;
}

export interface Shipper {
  start(): void;
  /** Something new is in the spool: send without waiting for the next poll. */
  wake(): void;
  stop(): Promise<void>;
  status(): ShipStatus;
}

const PERMANENT_KEEP = new Set(["busy", "store_unavailable", "replayed_seq"]);
const IDENTITY_PROBLEMS = new Set(["unknown_agent", "revoked_agent", "bad_signature"]);

/** After a request over the server's size limit, fewer frames are sent per request for this long. */
export const SHRINK_MS = 300_000;

/** A session is not used in its last minute (clocks differ, a send takes time). */
export const USE_MARGIN_MS = 60_000;
/** The next session is fetched this long before the current one expires. */
export const RENEW_BEFORE_MS = 120_000;
/** After a refusal to open a session (404 from an older server, a bad answer), try again this late. */
export const SESSION_RETRY_MS = 600_000;
/** After a network failure while opening, or a second session loss within this time, wait this long. */
export const SESSION_SHORT_RETRY_MS = 60_000;

/** What a send's rejects ask the loop to do beyond acking and dropping. */
interface Outcome {
  identityProblem?: string;
  /** Frames refused as `unknown_session`: the session is gone, resend at once. */
  sessionLost: number;
  /** A sealed send came back `bad_signature`: the session key is at fault, not the identity. */
  sealBroken?: string;
  /** `unknown_session` for a signed frame: a server fault; keep the batches and back off. */
  confused?: string;
}

const TRANSPORT_LABEL: Record<string, string> = { h3: "HTTP/3", h2: "HTTP/2", wss: "WebSocket" };

export function createShipper(o: ShipperOptions): Shipper {
  const now = o.now ?? Date.now;
  const log = o.log ?? ((m: string) => console.error(m));
  const backoff = createBackoff({ baseMs: 1000, maxMs: 60_000, random: o.random });
  let stopped = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let transport: Transport | undefined;
  let h3RetryAt = 0;
  let lostAt: number | null = null;
  /** The transport the last send went over, until a send fails. */
  let connectedOver: string | null = null;
  let everConnected = false;
  let nextHeartbeat = 0;
  let quicTicket: Uint8Array | undefined;
  /** The session frames are sealed with, and the transport it came with. */
  let session: { grant: SessionGrant; via: Transport } | undefined;
  /** No session is sought before this time (after a refusal or repeated losses). */
  let sessionRetryAt = 0;
  let lastSessionLossAt = -Infinity;
  /** Frames per request: lowered after a request over the server's limit, restored after SHRINK_MS. */
  let perRequest = o.maxFramesPerRequest;
  let perRequestResetAt = 0;
  const st: Omit<ShipStatus, "spool" | "session"> = {
    state: "starting", transport: null, lastAckMs: null, lastError: null,
    sentFrames: 0, ackedFrames: 0, rejectedFrames: 0, lastReconnectMs: null, h3: "untried",
    lastHandshakeMs: null, lastHandshakeResumed: false, sessionsOpened: 0, unknownSessionRejects: 0, sealedFrames: 0,
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        wakeUp = undefined;
        resolve();
      }, Math.max(0, ms));
      wakeUp = () => {
        clearTimeout(t);
        wakeUp = undefined;
        resolve();
      };
    });

  const hello = (nonce: string) =>
    encodeFrame({ kind: FrameKind.Hello, agentId: o.agentId, seq: o.spool.nextSeq(), batchId: 0, createdMs: now(), items: 1 }, packMap({ nonce, version: o.version }), o.key);

  const connect =
    o.connect ??
    (async (kind: "h3" | "h2" | "wss"): Promise<Transport> => {
      if (kind === "wss") return connectWsTransport({ baseUrl: o.serverUrl, tls: o.tls, timeoutMs: o.requestTimeoutMs, hello, proxy: proxyFor(o.serverUrl), onCommand: o.onCommand });
      // HTTP/3 goes straight to the server: a CONNECT proxy cannot carry QUIC
      if (kind === "h3") {
        const t = await connectQuicTransport({
          baseUrl: o.serverUrl, fingerprint: o.fingerprint, timeoutMs: o.requestTimeoutMs, ticket: quicTicket,
          onTicket: (tk) => {
            quicTicket = tk;
          },
        });
        st.lastHandshakeMs = Math.round(t.handshakeMs * 10) / 10;
        st.lastHandshakeResumed = t.resumed;
        return t;
      }
      return createHttpTransport({ baseUrl: o.serverUrl, protocol: "http2", tls: o.tls, timeoutMs: o.requestTimeoutMs });
    });

  function pickKind(): "h3" | "h2" | "wss" {
    if (o.transport === "http3") return "h3";
    if (o.transport === "http2") return "h2";
    if (o.transport === "wss") return "wss";
    return now() >= h3RetryAt ? "h3" : "wss";
  }

  /** The session to seal with on `t`: held for that transport and not in its last minute. */
  function sessionFor(t: Transport): SessionGrant | undefined {
    if (!session || session.via !== t) return undefined;
    return now() < session.grant.expiresMs - USE_MARGIN_MS ? session.grant : undefined;
  }

  function dropSession() {
    if (!session) return;
    session.grant.key.fill(0);
    session = undefined;
  }

  /** Whether `t` should get a (new) session now: none held for it, or the held one nears expiry. */
  function wantsSession(t: Transport): boolean {
    if (now() < sessionRetryAt) return false;
    return !session || session.via !== t || now() >= session.grant.expiresMs - RENEW_BEFORE_MS;
  }

  /** Takes a session into use on `t`, unless by this host's clock it is nearly over already. */
  function adopt(g: SessionGrant, t: Transport) {
    const left = g.expiresMs - now();
    if (left < 2 * RENEW_BEFORE_MS) {
      // renewing it at once would ask again and again: the clocks disagree, sign for a while
      g.key.fill(0);
      sessionRetryAt = now() + SESSION_RETRY_MS;
      log(`${t.name}: the session the server opened expires in ${Math.round(left / 1000)} s by this host's clock (clock skew?); signing frames, next try in ${SESSION_RETRY_MS / 60_000} min`);
      return;
    }
    dropSession();
    session = { grant: g, via: t };
    st.sessionsOpened++;
  }

  let told404 = false;
  /** POST /api/v1/session on an HTTP transport. Never throws: without a session, frames are signed. */
  async function openSession(t: Transport) {
    if (!t.openSession) return;
    let msg: string;
    let retryMs = SESSION_RETRY_MS;
    try {
      const a = await t.openSession(hello(""));
      if (a.ok && (a.agentId === null || a.agentId === o.agentId)) return adopt(a.session, t);
      if (a.ok) {
        a.session.key.fill(0);
        msg = `${t.name}: the server opened a session for agent ${a.agentId}, not ${o.agentId}`;
      } else {
        msg = a.message;
        if (a.status === 404) {
          // an older server: no sessions there, and nothing to report more than once
          sessionRetryAt = now() + retryMs;
          if (!told404) log(`${t.name}: the server has no sessions (HTTP 404); frames stay signed, next try in ${retryMs / 60_000} min`);
          told404 = true;
          return;
        }
        if (a.status === 409 || a.status === 429 || a.status >= 500) retryMs = SESSION_SHORT_RETRY_MS;
      }
    } catch (e) {
      msg = e instanceof Error ? e.message : String(e);
      retryMs = SESSION_SHORT_RETRY_MS;
    }
    sessionRetryAt = now() + retryMs;
    log(`opening a session failed (${msg}); frames stay signed, next try in ${Math.round(retryMs / 1000)} s`);
  }

  /** Closes the transport and forgets its session: the next connection may reach another node. */
  function closeTransport() {
    transport?.close();
    transport = undefined;
    dropSession();
  }

  function handle(res: SendResult, ids: number[], sealed: boolean): Outcome {
    const sent = new Set(ids);
    const acked: number[] = [];
    for (const a of res.acks) {
      if (a.batch > 0 && sent.has(a.batch) && (a.status === "ok" || a.status === "dup")) acked.push(a.batch);
    }
    o.spool.ack(acked);
    st.ackedFrames += acked.length;
    if (acked.length || res.acks.length) st.lastAckMs = now();
    const out: Outcome = { sessionLost: 0 };
    for (const r of res.rejects) {
      if (PERMANENT_KEEP.has(r.code)) continue;
      if (r.code === "unknown_session") {
        // the session is gone (restart, another node, expiry), not the identity: keep the batch
        if (sealed) out.sessionLost++;
        else out.confused = `unknown_session for a signed frame: ${r.message}`;
        continue;
      }
      if (r.code === "bad_signature" && sealed) {
        out.sealBroken = `${r.code}: ${r.message}`;
        continue;
      }
      if (IDENTITY_PROBLEMS.has(r.code)) {
        out.identityProblem = `${r.code}: ${r.message}`;
        continue;
      }
      if (r.batch !== null && r.batch > 0 && sent.has(r.batch)) {
        // the server can never accept this batch; keeping it would block the spool forever
        o.spool.ack([r.batch]);
        st.rejectedFrames++;
        log(`batch ${r.batch} rejected by the server and dropped: ${r.code}: ${r.message}`);
      }
    }
    return out;
  }

  /** After `unknown_session` or a refused tag: drop the session; the caller resends at once. */
  function sessionRefused(out: Outcome, grant: SessionGrant) {
    if (session?.grant === grant) dropSession();
    const t = now();
    if (out.sealBroken) {
      // our key does not match the server's: sign for a while rather than repeat the mistake
      sessionRetryAt = t + SESSION_RETRY_MS;
      log(`sealed frames refused (${out.sealBroken}); dropped the session, resending signed`);
      return;
    }
    st.unknownSessionRejects += out.sessionLost;
    // a second loss within a minute: sign for a minute rather than open sessions in a loop
    sessionRetryAt = t - lastSessionLossAt < SESSION_SHORT_RETRY_MS ? t + SESSION_SHORT_RETRY_MS : 0;
    lastSessionLossAt = t;
    log(`the server does not know this agent's session (unknown_session, ${out.sessionLost} frames); resending them ${sessionRetryAt ? "signed" : "with a new session"}`);
  }

  /**
   * The server refused a request as over its size limit (413 `too_large`, WebSocket close 1009):
   * fewer frames per request fix that; a frame that is alone over the limit never fits and is
   * dropped with a log line rather than sent again forever.
   */
  function requestTooLarge(ids: number[], msg: string) {
    closeTransport(); // the server closes the connection after such a request
    if (ids.length <= 1) {
      if (ids.length === 1) {
        o.spool.ack(ids);
        st.rejectedFrames++;
        log(`batch ${ids[0]} alone is over the server's request limit (${msg}); dropped`);
      }
      return;
    }
    perRequest = Math.max(1, Math.floor(ids.length / 2));
    perRequestResetAt = now() + SHRINK_MS;
    log(`request over the server's size limit (${msg}); sending at most ${perRequest} frames per request for ${SHRINK_MS / 60_000} min`);
  }

  async function run() {
    while (!stopped) {
      const kind = pickKind();
      if (!transport) {
        try {
          transport = await connect(kind);
        } catch (e) {
          await failed(kind, e);
          continue;
        }
        if (transport.session) adopt(transport.session, transport);
      }
      if (wantsSession(transport)) {
        if (transport.openSession) await openSession(transport);
        else if (transport.session) {
          // a WebSocket gets its session with the welcome: reconnect (between sends) for a new one
          closeTransport();
          continue;
        }
      }
      const sealWith = sessionFor(transport);
      const auth: FrameAuth = sealWith ?? o.key;
      if (perRequest < o.maxFramesPerRequest && now() >= perRequestResetAt) perRequest = o.maxFramesPerRequest;
      const batch = o.spool.peek(perRequest);
      const frames: Uint8Array[] = [];
      const t = now();
      const withHeartbeat = t >= nextHeartbeat;
      if (withHeartbeat) {
        frames.push(encodeFrame({ kind: FrameKind.Heartbeat, agentId: o.agentId, seq: o.spool.nextSeq(), batchId: 0, createdMs: t, items: 1 }, packMap(o.heartbeat()), auth));
      }
      for (const e of batch) {
        frames.push(encodeFrame({ kind: e.kind, agentId: o.agentId, seq: o.spool.nextSeq(), batchId: e.id, createdMs: e.createdMs, items: e.items }, e.body, auth));
      }
      if (frames.length === 0) {
        await wait(Math.min(1000, nextHeartbeat - t));
        continue;
      }
      let res: SendResult;
      try {
        res = await transport.send(frames);
      } catch (e) {
        if (e instanceof TransportError && e.tooLarge) {
          requestTooLarge(batch.map((x) => x.id), e.message);
          continue;
        }
        await failed(transport.name as "h3" | "h2" | "wss", e);
        continue;
      }
      st.sentFrames += frames.length;
      if (sealWith) st.sealedFrames += frames.length;
      if (withHeartbeat) nextHeartbeat = t + o.heartbeatMs;
      if (transport.name === "h3") st.h3 = "ok";
      if (connectedOver !== transport.name) {
        // said once a connection, so that whoever runs the agent by hand sees it reach the server
        const again = everConnected && lostAt !== null ? ` again after ${Math.round((now() - lostAt) / 1000)} s` : "";
        log(`connected to ${o.serverUrl} over ${TRANSPORT_LABEL[transport.name] ?? transport.name}${again}`);
        connectedOver = transport.name;
        everConnected = true;
      }
      if (lostAt !== null && res.acks.length) {
        st.lastReconnectMs = now() - lostAt;
        lostAt = null;
      }
      st.state = "connected";
      st.transport = transport.name;
      const out = handle(res, batch.map((e) => e.id), sealWith !== undefined);
      if (out.identityProblem) {
        dropSession();
        st.state = "rejected";
        st.lastError = out.identityProblem;
        log(`server refuses this agent's identity (${out.identityProblem}); retrying later`);
        await wait(Math.max(60_000, backoff.next()));
        continue;
      }
      if (sealWith && (out.sessionLost || out.sealBroken)) {
        sessionRefused(out, sealWith);
        if (withHeartbeat) nextHeartbeat = 0; // it may have been refused too: send it again
        continue; // no wait: the batches are still in the spool and go again now
      }
      if (out.confused) {
        // a server that refuses signed frames for a session cannot be fixed by resending at once
        st.state = "backoff";
        st.lastError = out.confused;
        const ms = backoff.next();
        log(`${out.confused}; retrying in ${ms} ms`);
        await wait(ms);
        continue;
      }
      backoff.reset();
      if (res.retryAfterMs) {
        st.state = "backoff";
        await wait(res.retryAfterMs + Math.floor((o.random ?? Math.random)() * 1000));
        continue;
      }
      if (batch.length === perRequest) {
        // a backlog: replay it at the configured rate
        await wait((batch.length * 1000) / o.replayPerSecond);
      }
      if (o.transport === "auto" && transport.name === "wss" && now() >= h3RetryAt) closeTransport();
    }
  }

  async function failed(kind: "h3" | "h2" | "wss", e: unknown) {
    const msg = e instanceof Error ? e.message : String(e);
    st.lastError = msg;
    st.state = "backoff";
    lostAt ??= now();
    connectedOver = null;
    closeTransport();
    st.transport = null;
    if (kind === "h3" && o.transport === "auto") {
      st.h3 = e instanceof TransportError && e.unsupported ? "unavailable" : "failed";
      h3RetryAt = now() + o.quicProbeMs;
      log(`HTTP/3 unavailable (${msg}); falling back to WebSocket, next HTTP/3 probe in ${Math.round(o.quicProbeMs / 1000)} s`);
      return; // fall back at once
    }
    if (/bad_hello: .*(revoked|not enrolled|does not match the agent's key)|revoked_agent:/.test(msg)) {
      // the WebSocket handshake refused our identity: as for rejected frames, wait long
      st.state = "rejected";
      const ms = Math.max(60_000, backoff.next());
      log(`server refuses this agent's identity (${msg}); retrying in ${ms} ms`);
      await wait(ms);
      return;
    }
    const ms = backoff.next();
    log(`${kind} failed (${msg}); retrying in ${ms} ms`);
    await wait(ms);
  }

  return {
    start() {
      loop ??= run().catch((e) => {
        st.lastError = `ship loop crashed: ${e instanceof Error ? e.stack : e}`;
        throw e;
      });
    },
    wake() {
      wakeUp?.();
    },
    async stop() {
      stopped = true;
      wakeUp?.();
      transport?.close();
      await loop?.catch(() => {});
      dropSession();
      st.state = "stopped";
    },
    status() {
      return { ...st, session: transport && sessionFor(transport) ? "open" : "none", spool: o.spool.stats() };
    },
  };
}
