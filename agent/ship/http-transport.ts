/**
 * POST /api/v1/ingest over HTTP/2 or HTTP/1.1 through Bun's fetch, with the certificate pinned.
 *
 * What Bun 1.4.4's fetch can pin (measured, see docs/security.md):
 *   - HTTP/1.1: `ca` = pinned certificate plus `checkServerIdentity` comparing the SHA-256.
 *   - HTTP/2: `ca` = pinned certificate only (a custom checkServerIdentity disables h2); the chain
 *     must end at the pinned self-signed certificate, which only the server's key can satisfy.
 *   - HTTP/3: fetch rejects any custom `ca` or `checkServerIdentity` (HTTP3Unsupported), so HTTP/3
 *     goes through node:quic instead (quic-transport.ts), where the peer certificate is checked.
 */
import type { PinnedTls } from "./pin.ts";
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
  const url = new URL("/api/v1/ingest", o.baseUrl).toString();
  const name = SHORT[o.protocol];
  return {
    name,
    async send(frames): Promise<SendResult> {
      let r: Response;
      try {
        r = await session.fetch(url, {
          method: "POST",
          body: Buffer.concat(frames),
          headers: { "content-type": "application/vnd.servermind.frames", "x-servermind-transport": name },
          protocol: o.protocol,
          signal: AbortSignal.timeout(o.timeoutMs),
        } as RequestInit);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        throw new TransportError(`${name} POST ${url} failed: ${msg}`);
      }
      let text: string;
      try {
        text = await r.text();
      } catch (e) {
        throw new TransportError(`${name}: reading the answer failed: ${e instanceof Error ? e.message : e}`);
      }
      return interpretHttpAnswer(name, r.status, r.headers.get("retry-after"), text);
    },
    close() {
      session.close();
    },
  };
}
