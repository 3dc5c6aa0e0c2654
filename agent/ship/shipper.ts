/**
 * The ship loop: spool -> frames -> transport -> acks -> spool.
 *
 * One request in flight at a time, oldest batches first. Each transmission gets a fresh
 * sequence number; the batch id is the spool id, so a resend is recognised and stored once.
 * A batch leaves the spool only on an ack ("ok", "dup"), or when the server rejects it as
 * permanently invalid (counted and logged, never silent). Transport failures back off with full
 * jitter; HTTP/3 failing falls back to WebSocket at once and is probed again after quicProbeMs.
 * While a backlog drains, sending is limited to replayPerSecond frames per second.
 */
import type { KeyObject } from "node:crypto";
import { encodeFrame, packMap } from "../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import type { Spool, SpoolStats } from "../spool/spool.ts";
import { createBackoff } from "./backoff.ts";
import { createHttpTransport } from "./http-transport.ts";
import { connectQuicTransport } from "./quic-transport.ts";
import type { PinnedTls } from "./pin.ts";
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
  onCommand?: (msg: Record<string, unknown>) => void;
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
  let nextHeartbeat = 0;
  let quicTicket: Uint8Array | undefined;
  const st: Omit<ShipStatus, "spool"> = {
    state: "starting", transport: null, lastAckMs: null, lastError: null,
    sentFrames: 0, ackedFrames: 0, rejectedFrames: 0, lastReconnectMs: null, h3: "untried",
    lastHandshakeMs: null, lastHandshakeResumed: false,
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

  function handle(res: SendResult, ids: number[]) {
    const sent = new Set(ids);
    const acked: number[] = [];
    for (const a of res.acks) {
      if (a.batch > 0 && sent.has(a.batch) && (a.status === "ok" || a.status === "dup")) acked.push(a.batch);
    }
    o.spool.ack(acked);
    st.ackedFrames += acked.length;
    if (acked.length || res.acks.length) st.lastAckMs = now();
    let identityProblem: string | undefined;
    for (const r of res.rejects) {
      if (PERMANENT_KEEP.has(r.code)) continue;
      if (IDENTITY_PROBLEMS.has(r.code)) {
        identityProblem = `${r.code}: ${r.message}`;
        continue;
      }
      if (r.batch !== null && r.batch > 0 && sent.has(r.batch)) {
        // the server can never accept this batch; keeping it would block the spool forever
        o.spool.ack([r.batch]);
        st.rejectedFrames++;
        log(`batch ${r.batch} rejected by the server and dropped: ${r.code}: ${r.message}`);
      }
    }
    return identityProblem;
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
      }
      const batch = o.spool.peek(o.maxFramesPerRequest);
      const frames: Uint8Array[] = [];
      const t = now();
      if (t >= nextHeartbeat) {
        frames.push(encodeFrame({ kind: FrameKind.Heartbeat, agentId: o.agentId, seq: o.spool.nextSeq(), batchId: 0, createdMs: t, items: 1 }, packMap(o.heartbeat()), o.key));
      }
      for (const e of batch) {
        frames.push(encodeFrame({ kind: e.kind, agentId: o.agentId, seq: o.spool.nextSeq(), batchId: e.id, createdMs: e.createdMs, items: e.items }, e.body, o.key));
      }
      if (frames.length === 0) {
        await wait(Math.min(1000, nextHeartbeat - t));
        continue;
      }
      let res: SendResult;
      try {
        res = await transport.send(frames);
      } catch (e) {
        await failed(transport.name as "h3" | "h2" | "wss", e);
        continue;
      }
      st.sentFrames += frames.length;
      if (t >= nextHeartbeat) nextHeartbeat = t + o.heartbeatMs;
      if (transport.name === "h3") st.h3 = "ok";
      if (lostAt !== null && res.acks.length) {
        st.lastReconnectMs = now() - lostAt;
        lostAt = null;
      }
      st.state = "connected";
      st.transport = transport.name;
      const identityProblem = handle(res, batch.map((e) => e.id));
      if (identityProblem) {
        st.state = "rejected";
        st.lastError = identityProblem;
        log(`server refuses this agent's identity (${identityProblem}); retrying later`);
        await wait(Math.max(60_000, backoff.next()));
        continue;
      }
      backoff.reset();
      if (res.retryAfterMs) {
        st.state = "backoff";
        await wait(res.retryAfterMs + Math.floor((o.random ?? Math.random)() * 1000));
        continue;
      }
      if (batch.length === o.maxFramesPerRequest) {
        // a backlog: replay it at the configured rate
        await wait((batch.length * 1000) / o.replayPerSecond);
      }
      if (o.transport === "auto" && transport.name === "wss" && now() >= h3RetryAt) {
        transport.close();
        transport = undefined;
      }
    }
  }

  async function failed(kind: "h3" | "h2" | "wss", e: unknown) {
    const msg = e instanceof Error ? e.message : String(e);
    st.lastError = msg;
    st.state = "backoff";
    lostAt ??= now();
    transport?.close();
    transport = undefined;
    st.transport = null;
    if (kind === "h3" && o.transport === "auto") {
      st.h3 = e instanceof TransportError && e.unsupported ? "unavailable" : "failed";
      h3RetryAt = now() + o.quicProbeMs;
      log(`HTTP/3 unavailable (${msg}); falling back to WebSocket, next HTTP/3 probe in ${Math.round(o.quicProbeMs / 1000)} s`);
      return; // fall back at once
    }
    if (/bad_hello: .*(revoked|not enrolled|does not match the agent's key)/.test(msg)) {
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
      st.state = "stopped";
    },
    status() {
      return { ...st, spool: o.spool.stats() };
    },
  };
}
