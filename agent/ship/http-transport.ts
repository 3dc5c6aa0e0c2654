/**
 * POST /api/v1/ingest over HTTP/3, HTTP/2 or HTTP/1.1 with the server certificate pinned.
 *
 * What Bun 1.4.4's fetch can pin (measured, see docs/security.md):
 *   - HTTP/1.1: `ca` = pinned certificate plus `checkServerIdentity` comparing the SHA-256.
 *   - HTTP/2: `ca` = pinned certificate only (a custom checkServerIdentity disables h2); the chain
 *     must end at the pinned self-signed certificate, which only the server's key can satisfy.
 *   - HTTP/3: any custom `ca` or `checkServerIdentity` fails with HTTP3Unsupported, so h3 cannot
 *     be pinned. It is refused unless `allowUnpinned` is set (SERVERMIND_AGENT_H3_UNPINNED).
 */
import type { PinnedTls } from "./pin.ts";
import { parseAnswer, TransportError, type SendResult, type Transport } from "./transport.ts";

export type HttpProtocol = "http3" | "http2" | "http1.1";

export interface HttpTransportOptions {
  baseUrl: string;
  protocol: HttpProtocol;
  tls: PinnedTls;
  timeoutMs: number;
  /** HTTP/3 only: send without certificate verification (frames stay signed; see docs/security.md). */
  allowUnpinned?: boolean;
}

const SHORT: Record<HttpProtocol, string> = { http3: "h3", http2: "h2", "http1.1": "h1" };

export function createHttpTransport(o: HttpTransportOptions): Transport {
  const tls =
    o.protocol === "http1.1" ? o.tls
    : o.protocol === "http2" ? { ca: o.tls.ca }
    : o.allowUnpinned ? { rejectUnauthorized: false }
    : { ca: o.tls.ca };
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
        throw new TransportError(`${name} POST ${url} failed: ${msg}`, /HTTP[23]Unsupported/.test(msg));
      }
      let text: string;
      try {
        text = await r.text();
      } catch (e) {
        throw new TransportError(`${name}: reading the answer failed: ${e instanceof Error ? e.message : e}`);
      }
      const retry = r.headers.get("retry-after");
      const retryAfterMs = retry !== null && Number.isFinite(Number(retry)) ? Math.min(Number(retry), 3600) * 1000 : undefined;
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        if (r.status === 429 || r.status === 503) return { acks: [], rejects: [], retryAfterMs: retryAfterMs ?? 5000 };
        throw new TransportError(`${name}: HTTP ${r.status} with a body that is not JSON (${text.length} bytes)`);
      }
      if ((r.status === 429 || r.status === 503) && !(body as any)?.acks) return { acks: [], rejects: [], retryAfterMs: retryAfterMs ?? 5000 };
      if ((body as any)?.error && !(body as any)?.acks) throw new TransportError(`${name}: HTTP ${r.status} ${(body as any).error.code}: ${(body as any).error.message}`);
      const res = parseAnswer(body, `${name} HTTP ${r.status}`);
      if (retryAfterMs !== undefined) res.retryAfterMs = retryAfterMs;
      return res;
    },
    close() {
      session.close();
    },
  };
}
