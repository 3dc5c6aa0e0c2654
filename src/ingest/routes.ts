/**
 * Every ingest endpoint in one table:
 *   POST /api/v1/enroll   activation token + public key -> agent id
 *   POST /api/v1/ingest   one or more frames -> acks (HTTP/1.1, HTTP/2, HTTP/3)
 *   GET  /api/v1/stream   WebSocket upgrade, handled in src/server.ts by ./agent/stream.ts
 *   GET  /metrics         our own metrics, Prometheus text format
 *   GET  /healthz         liveness and database reachability
 */
import { Elysia } from "elysia";
import type { Sql } from "postgres";
import { ingestFrames, resultStatus } from "./agent/handler.ts";
import { enrollAgent, EnrollError, parseEnrollRequest } from "./agent/enroll.ts";
import { Busy } from "./gate.ts";
import { BodyTooLarge, readBody } from "./body.ts";
import { renderMetrics } from "../metrics/registry.ts";
import type { Ingest } from "./service.ts";

const TRANSPORTS = new Set(["h1", "h2", "h3"]);

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

export interface IngestRoutesOptions {
  sql: Sql;
  ingest: Ingest;
  fingerprint: string;
  maxRequestBytes: number;
}

export function ingestRoutes(o: IngestRoutesOptions) {
  const { deps } = o.ingest;
  return new Elysia({ name: "ingest.agent" })
    .post(
      "/api/v1/ingest",
      async ({ request }) => {
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
            buf = await readBody(request, o.maxRequestBytes);
          } catch (e) {
            if (e instanceof BodyTooLarge) {
              deps.metrics.rejects.inc({ reason: "too_large" });
              return json({ error: { code: "too_large", message: e.message } }, 413);
            }
            throw e;
          }
          if (buf.length === 0) return json({ error: { code: "truncated", message: "empty request body: send one or more frames" } }, 400);
          const claimed = request.headers.get("x-servermind-transport") ?? "";
          const transport = TRANSPORTS.has(claimed) ? claimed : "https";
          const result = await ingestFrames(deps, buf, transport);
          const status = resultStatus(result);
          return json(result, status, status === 503 ? { "retry-after": "2" } : {});
        } finally {
          release();
        }
      },
      { parse: "none" },
    )
    .post(
      "/api/v1/enroll",
      async ({ request }) => {
        try {
          const text = await new Response((await readBody(request, 16 * 1024)) as BodyInit).text();
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            throw new EnrollError(400, "bad_request", "enrollment body is not valid JSON");
          }
          const { agentId } = await enrollAgent(o.sql, parseEnrollRequest(body));
          return json({ agentId, fingerprint: o.fingerprint });
        } catch (e) {
          if (e instanceof EnrollError) return json({ error: { code: e.code, message: e.message } }, e.status);
          if (e instanceof BodyTooLarge) return json({ error: { code: "too_large", message: "enrollment body over 16 KiB" } }, 413);
          throw e;
        }
      },
      { parse: "none" },
    )
    .get("/metrics", () => {
      const m = deps.metrics;
      const text = renderMetrics([...Object.values(m), ...o.ingest.gauges]);
      return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
    })
    .get("/healthz", async () => {
      try {
        await o.sql`select 1`;
        return json({ status: "ok" });
      } catch (e) {
        return json({ status: "degraded", database: e instanceof Error ? e.message : String(e) }, 503);
      }
    });
}
