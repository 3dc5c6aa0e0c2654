/**
 * POST /api/v1/ingest (and /api/v1/session) over HTTP/3 with the server certificate pinned,
 * through node:quic.
 *
 * Bun's fetch cannot pin an HTTP/3 connection (it refuses a custom `ca` or
 * checkServerIdentity), but node:quic can: the session is opened with verifyPeer "manual"
 * (the self-signed certificate would not pass CA validation) and, before any request is sent,
 * the SHA-256 of the peer's certificate must equal the pinned fingerprint and the negotiated
 * protocol must be h3. One session is kept and reused; requests are bidirectional streams.
 */
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";
import { normalizeFingerprint } from "./pin.ts";
import { interpretSessionAnswer, type SessionAnswer } from "./session.ts";
import { interpretHttpAnswer, TransportError, type SendResult, type Transport } from "./transport.ts";

export interface QuicTransportOptions {
  baseUrl: string;
  fingerprint: string;
  timeoutMs: number;
  /** Handshake bound, so blocked UDP is noticed within seconds (default 3 s). */
  handshakeTimeoutMs?: number;
  /**
   * A TLS session ticket from an earlier session with this server, for resumption. Tickets are
   * kept in memory only (they hold resumption secrets). Early data (0-RTT) stays off: it could be
   * replayed by the network, and the server does not accept it anyway.
   */
  ticket?: Uint8Array;
  /** Receives the tickets the server issues, to pass to the next connect. */
  onTicket?: (ticket: Uint8Array) => void;
}

export interface QuicTransport extends Transport {
  /** Time to an open, pinned session in ms, and whether a ticket was offered. */
  readonly handshakeMs: number;
  readonly resumed: boolean;
}

type Quic = typeof import("node:quic");
type Session = Awaited<ReturnType<Quic["connect"]>>;

/** Races `p` against a timer; a late rejection of `p` is absorbed, never left unhandled. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: Timer;
  p.catch(() => {});
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new TransportError(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]);
}

/** Imports node:quic without its one-time "experimental" warning (only that warning is dropped). */
async function loadQuic(): Promise<Quic> {
  const emit = process.emitWarning;
  process.emitWarning = ((w: string | Error, ...rest: unknown[]) => {
    if (/quic is an experimental/i.test(String(w))) return;
    return (emit as (...a: unknown[]) => void).call(process, w, ...rest);
  }) as typeof process.emitWarning;
  try {
    return await import("node:quic");
  } finally {
    process.emitWarning = emit;
  }
}

export async function connectQuicTransport(o: QuicTransportOptions): Promise<QuicTransport> {
  const u = new URL(o.baseUrl);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = Number(u.port || 443);
  const authority = u.host;
  const want = normalizeFingerprint(o.fingerprint);
  let quic: Quic;
  try {
    quic = await loadQuic();
  } catch (e) {
    throw new TransportError(`h3: node:quic is not available: ${e instanceof Error ? e.message : e}`, true);
  }
  let session: Session;
  let pending: Session | undefined;
  const started = performance.now();
  // node:quic takes an address, not a name: resolve it first (IPv4 first, then IPv6), keeping the
  // name for SNI. Each address gets the handshake bound; the first that opens is used.
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).sort((a, b) => a.family - b.family).map((a) => a.address);
  } catch (e) {
    throw new TransportError(`h3: cannot resolve ${host}: ${e instanceof Error ? e.message : e}`);
  }
  let lastError: unknown = new TransportError(`h3: ${host} has no address`);
  for (const address of addresses) {
    try {
      session = await open(address);
      lastError = undefined;
      break;
    } catch (e) {
      lastError = e;
    }
  }
  if (lastError) throw lastError;

  async function open(address: string): Promise<Session> {
    try {
      return await withTimeout(
        (async () => {
          const s = await quic.connect(`${address.includes(":") ? `[${address}]` : address}:${port}`, {
            alpn: "h3",
            servername: isIP(host) ? "localhost" : host,
            verifyPeer: "manual",
            enableEarlyData: false,
            ...(o.ticket ? { sessionTicket: o.ticket } : {}),
            onsessionticket: (t: unknown) => {
              if (t instanceof Uint8Array) o.onTicket?.(t);
              else if (ArrayBuffer.isView(t)) o.onTicket?.(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
            },
          } as Parameters<Quic["connect"]>[1]);
          pending = s;
          const opened = (s as unknown as { opened: Promise<unknown>; closed?: Promise<unknown> });
          opened.closed?.catch(() => {});
          await opened.opened;
          return s;
        })(),
        o.handshakeTimeoutMs ?? 3000,
        `h3: QUIC handshake with ${authority}${address !== host ? ` (${address})` : ""}`,
      );
    } catch (e) {
      try {
        (pending as unknown as { destroy?: () => void } | undefined)?.destroy?.();
      } catch {
        /* already gone */
      }
      throw e instanceof TransportError ? e : new TransportError(`h3: QUIC connection to ${authority} failed: ${e instanceof Error ? e.message : e}`);
    }
  }
  const s = session! as unknown as { peerCertificate?: { raw: Uint8Array }; alpnProtocol?: string | null; close(): Promise<void>; destroy(e?: Error): void };
  const raw = s.peerCertificate?.raw;
  const got = raw ? createHash("sha256").update(raw).digest("hex") : "(none)";
  if (got !== want) {
    s.destroy();
    throw new TransportError(`h3: server certificate ${got} does not match the pinned fingerprint ${want}`);
  }
  const handshakeMs = performance.now() - started;
  let closed = false;

  /** One POST as a bidirectional stream; a failure ends the session (it is not worth trusting). */
  async function post(path: string, body: Uint8Array): Promise<{ status: number; retryAfter: string | null; text: string }> {
    if (closed) throw new TransportError("h3: session closed");
    try {
      return await withTimeout(
        (async () => {
          let headers: Record<string, string> = {};
          const stream = await session.createBidirectionalStream({
            headers: {
              ":method": "POST", ":scheme": "https", ":authority": authority, ":path": path,
              "content-type": "application/vnd.servermind.frames", "content-length": String(body.length), "x-servermind-transport": "h3",
            },
            body,
            onheaders: (h: Record<string, string>) => {
              headers = h;
            },
          } as Parameters<Session["createBidirectionalStream"]>[0]);
          const chunks: Uint8Array[] = [];
          let size = 0;
          for await (const batch of stream as unknown as AsyncIterable<Uint8Array[]>) {
            for (const c of batch) {
              size += c.length;
              if (size > 16 << 20) throw new TransportError("h3: answer over 16 MiB");
              chunks.push(c);
            }
          }
          const status = Number(headers[":status"]);
          if (!Number.isInteger(status)) throw new TransportError("h3: answer without a :status");
          return { status, retryAfter: headers["retry-after"] ?? null, text: Buffer.concat(chunks).toString("utf8") };
        })(),
        o.timeoutMs,
        "h3: request",
      );
    } catch (e) {
      closed = true;
      s.destroy();
      throw e instanceof TransportError ? e : new TransportError(`h3: request failed: ${e instanceof Error ? e.message : e}`);
    }
  }

  return {
    name: "h3",
    handshakeMs,
    resumed: o.ticket !== undefined,
    async send(frames): Promise<SendResult> {
      const r = await post("/api/v1/ingest", Buffer.concat(frames));
      return interpretHttpAnswer("h3", r.status, r.retryAfter, r.text);
    },
    async openSession(hello): Promise<SessionAnswer> {
      const r = await post("/api/v1/session", hello);
      return interpretSessionAnswer("h3", r.status, r.text);
    },
    close() {
      if (closed) return;
      closed = true;
      s.close().catch(() => {});
    },
  };
}
