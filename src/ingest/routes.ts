/**
 * Every ingest endpoint in one table:
 *   POST /api/v1/enroll   activation token + public key -> agent id
 *   POST /api/v1/ingest   one or more frames -> acks (HTTP/1.1, HTTP/2, HTTP/3): ./agent/http.ts
 *   GET  /api/v1/stream   WebSocket upgrade: ./agent/stream.ts
 * The last two are served by Bun's router directly (src/server.ts), ahead of Elysia: they carry
 * all the volume and need nothing of a framework.
 *   GET  /metrics         our own metrics, Prometheus text format
 *   GET  /healthz         liveness and database reachability, answered within the health timeout
 */
import { Elysia } from "elysia";
import type { Sql } from "postgres";
import { enrollAgent, EnrollError, parseEnrollRequest, type EnrollRequest } from "./agent/enroll.ts";
import { auditEnrollment } from "../audit/enrollment.ts";
import { BodyTooLarge, BodyTooSlow, readBody, type BodyPace } from "./body.ts";
import { renderMetrics } from "../metrics/registry.ts";
import type { Ingest } from "./service.ts";
import type { StoreHealth } from "../store/postgres/health.ts";
import { STORE_RETRY_AFTER_S } from "../http/errors.ts";
import { clientIp } from "../http/client-ip.ts";

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

export interface EnrollmentRefusal {
  status: number;
  code: string;
  message: string;
}

export interface EnrollmentSeats {
  check(tx: Sql): Promise<EnrollmentRefusal | null>;
  refused(from: { ip?: string; userAgent?: string; hostname?: string }, r: EnrollmentRefusal): Promise<void>;
  /** After an enrollment committed (the seats in use changed). */
  enrolled(): Promise<void>;
}

export interface IngestRoutesOptions {
  sql: Sql;
  ingest: Ingest;
  /** /healthz asks it, within its timeout. */
  health: StoreHealth;
  fingerprint: string;
  maxRequestBytes: number;
  extraMetrics?: Array<{ render(): string }>;
  /** The server's command public key (base64), handed to agents at enrollment. */
  commandKey?: string;
  /** The minimum pace of a request body (docs/protocol.md 5.1). */
  pace?: BodyPace;
  /**
   * The license's seat limit (src/license/service.ts), asked inside the enrollment's transaction
   * once the token is accepted; a refusal is answered with its status and code, then reported.
   * Never asked for ingest.
   */
  seats?: EnrollmentSeats;
}

export function ingestRoutes(o: IngestRoutesOptions) {
  const { deps } = o.ingest;
  return new Elysia({ name: "ingest.agent" })
    .post(
      "/api/v1/enroll",
      async ({ request }) => {
        let enrolling: EnrollRequest | undefined;
        let refused: EnrollmentRefusal | null = null;
        try {
          const text = await new Response((await readBody(request, 16 * 1024, o.pace)) as BodyInit).text();
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            throw new EnrollError(400, "bad_request", "enrollment body is not valid JSON");
          }
          enrolling = parseEnrollRequest(body);
          // the seat check comes after the token's: only a token holder learns that seats are full
          const admit = o.seats && (async (tx: Sql) => {
            refused = await o.seats!.check(tx);
            if (refused) throw new EnrollError(refused.status, refused.code, refused.message);
          });
          const { agentId, tokenId } = await enrollAgent(o.sql, enrolling, admit);
          await auditEnrollment(o.sql, request, { hostname: enrolling.hostname, agentId, tokenId });
          await o.seats?.enrolled();
          return json({ agentId, fingerprint: o.fingerprint, ...(o.commandKey ? { commandKey: o.commandKey } : {}) });
        } catch (e) {
          if (e instanceof EnrollError) {
            await auditEnrollment(o.sql, request, { hostname: enrolling?.hostname, error: e.code });
            if (refused) await o.seats!.refused({ ip: clientIp(request), userAgent: request.headers.get("user-agent") ?? "", hostname: enrolling?.hostname }, refused);
            return json({ error: { code: e.code, message: e.message } }, e.status);
          }
          if (e instanceof BodyTooLarge) return json({ error: { code: "too_large", message: "enrollment body over 16 KiB" } }, 413);
          if (e instanceof BodyTooSlow) {
            deps.metrics.clientTimeouts.inc({ kind: "body_rate" });
            return json({ error: { code: "too_slow", message: e.message } }, 408, { connection: "close" });
          }
          throw e;
        }
      },
      { parse: "none" },
    )
    .get("/metrics", () => {
      const m = deps.metrics;
      const text = renderMetrics([...Object.values(m), ...o.ingest.gauges, ...(o.extraMetrics ?? [])]);
      return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
    })
    .get("/healthz", async () => {
      // ok, or degraded with the store's state ("timeout" | "unreachable", or "disk_full" while
      // PostgreSQL answers but refuses every write for want of space), within the health timeout
      const probed = await o.health.check();
      const store = probed === "ok" && o.ingest.diskFull() ? "disk_full" : probed;
      if (store === "ok") return json({ status: "ok" });
      return json({ status: "degraded", store }, 503, { "retry-after": String(STORE_RETRY_AFTER_S), "cache-control": "no-store" });
    });
}
