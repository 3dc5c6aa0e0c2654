/**
 * The HTTP transport of our agent's protocol: POST /api/v1/ingest over HTTP/1.1, HTTP/2 or
 * HTTP/3. Takes a gate token, reads the body within its limit, hands the bytes to the
 * transport-independent handler and answers with the acks once they are committed.
 */
import { ingestFrames, resultStatus, type IngestDeps } from "./handler.ts";
import { Busy, type Gate } from "../gate.ts";
import { BodyTooLarge, readBody } from "../body.ts";

const TRANSPORTS = new Set(["h1", "h2", "h3"]);

function json(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

export function createIngestHandler(deps: IngestDeps & { gate: Gate }, maxRequestBytes: number) {
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
      const claimed = request.headers.get("x-servermind-transport") ?? "";
      const result = await ingestFrames(deps, buf, TRANSPORTS.has(claimed) ? claimed : "https");
      const status = resultStatus(result);
      return json(result, status, status === 503 ? { "retry-after": "2" } : {});
    } finally {
      release();
    }
  };
}
