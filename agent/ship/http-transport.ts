/**
 * POST /api/v1/ingest (and /api/v1/session to open a session) over HTTP/2 or HTTP/1.1 through
 * Bun's fetch, with the certificate pinned.
 *
 * What Bun 1.4.4's fetch can pin (measured, see docs/security.md):
 *   - HTTP/1.1: `ca` = pinned certificate plus `checkServerIdentity` comparing the SHA-256.
 *   - HTTP/2: `ca` = pinned certificate only (a custom checkServerIdentity disables h2); the chain
 *     must end at the pinned self-signed certificate, which only the server's key can satisfy.
 *   - HTTP/3: fetch rejects any custom `ca` or `checkServerIdentity` (HTTP3Unsupported), so HTTP/3
 *     goes through node:quic instead (quic-transport.ts), where the peer certificate is checked.
 */
import type { PinnedTls } from "./pin.ts";
import { interpretSessionAnswer, type SessionAnswer } from "./session.ts";
import { interpretHttpAnswer, TransportError, type SendResult, type Transport } from "./transport.ts";

export type HttpProtocol = "http2" | "http1.1";

export interface HttpTransportOptions {
  baseUrl: string;
  protocol: HttpProtocol;
  tls: PinnedTls;
  timeoutMs: number;
}

const SHORT: Record<HttpProtocol, string> = { http2: "h2", "http1.1": "h1" };

export function createHttpTransport(o: HttpTransportOptions): Transport {
  const tls = o.protocol === "http1.1" ? o.tls : { ca: o.tls.ca };
  const session = new Bun.FetchSession({ tls: tls as any, proxy: false, keepAlive: { idleTimeout: 60 } });
  const name = SHORT[o.protocol];

  /** One POST of frames on the pinned session: status, Retry-After and body text. */
  async function post(path: string, body: Uint8Array): Promise<{ status: number; retryAfter: string | null; text: string }> {
    const url = new URL(path, o.baseUrl).toString();
    let r: Response;
    try {
      r = await session.fetch(url, {
        method: "POST",
        body,
        headers: { "content-type": "application/vnd.servermind.frames", "x-servermind-transport": name },
        protocol: o.protocol,
        signal: AbortSignal.timeout(o.timeoutMs),
      } as RequestInit);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new TransportError(`${name} POST ${url} failed: ${msg}`);
    }
    try {
      return { status: r.status, retryAfter: r.headers.get("retry-after"), text: await r.text() };
    } catch (e) {
      throw new TransportError(`${name}: reading the answer failed: ${e instanceof Error ? e.message : e}`);
    }
  }

  return {
    name,
    async send(frames): Promise<SendResult> {
      const r = await post("/api/v1/ingest", Buffer.concat(frames));
      return interpretHttpAnswer(name, r.status, r.retryAfter, r.text);
    },
    async openSession(hello): Promise<SessionAnswer> {
      const r = await post("/api/v1/session", hello);
      return interpretSessionAnswer(name, r.status, r.text);
    },
    close() {
      session.close();
    },
  };
}
