/**
 * One TLS 1.3 port: HTTPS (HTTP/1.1 and HTTP/2), HTTP/3 over QUIC on the same port number, and
 * WebSocket over TLS for the agent stream. HTTP goes to the Elysia app; the stream upgrade is
 * taken here so the ingest path stays plain functions.
 */
import type { Server } from "bun";
import type { Sql } from "postgres";
import type { AnyElysia } from "elysia";
import type { Config } from "./config.ts";
import { createApp } from "./app.ts";
import { createIngest, type Ingest } from "./ingest/service.ts";
import { ingestRoutes } from "./ingest/routes.ts";
import { createStreamHandler, type StreamData } from "./ingest/agent/stream.ts";
import { setClientIp } from "./http/client-ip.ts";
import { withSecurityHeaders } from "./http/security-headers.ts";
import { metricsGate } from "./http/metrics-auth.ts";
import { createIngestHandler, createSessionHandler } from "./ingest/agent/http.ts";
import type { ServerCert } from "./tls/certs.ts";
import type { IngestMetrics } from "./metrics/registry.ts";
import { createStoreHealth, type StoreHealth } from "./store/postgres/health.ts";
import { errorResponse } from "./http/errors.ts";
import { storeAwareDeadline } from "./http/store-deadline.ts";

/** TLS 1.3 (0x0304): older handshakes are refused with a protocol_version alert. */
export const TLS_MIN_VERSION = 0x0304;

export interface RunningServer {
  url: string;
  port: number;
  fingerprint: string;
  ingest: Ingest;
  server: Server<StreamData>;
  stop(): Promise<void>;
}

export interface StartOptions {
  config: Config;
  sql: Sql;
  cert: ServerCert;
  /** Extra feature plugins (console, downloads), mounted after ingest. */
  plugins?: AnyElysia[];
  /** The ingest metrics registry, when the caller shares it (e.g. with the ClickHouse tier). */
  metrics?: IngestMetrics;
  /** The server's command public key (base64), returned to agents at enrollment. */
  commandKey?: string;
  /** More metrics for /metrics (ClickHouse tier, cluster bus); read at each scrape, so it may grow later. */
  extraMetrics?: Array<{ render(): string }>;
  /** The database's health probe (src/db.ts gives it a connection of its own); made from `sql` when absent. */
  health?: StoreHealth;
}

export function startServer(o: StartOptions): RunningServer {
  const ingest = createIngest(o.sql, o.config, o.metrics);
  const ownHealth = o.health ? undefined : createStoreHealth(o.sql, { timeoutMs: o.config.healthTimeoutMs, intervalMs: 1000 });
  const health = o.health ?? ownHealth!;
  const app = createApp([
    ingestRoutes({ sql: o.sql, ingest, health, fingerprint: o.cert.fingerprint, maxRequestBytes: o.config.maxRequestBytes, extraMetrics: o.extraMetrics, commandKey: o.commandKey }),
    ...(o.plugins ?? []),
  ]);
  const handleIngest = createIngestHandler(ingest.deps, o.config.maxRequestBytes);
  const upgradeRequired = () =>
    new Response(JSON.stringify({ error: { code: "upgrade_required", message: "this endpoint takes a WebSocket upgrade" } }), {
      status: 426,
      headers: { "content-type": "application/json" },
    });
  const server = Bun.serve<StreamData>({
    hostname: o.config.host,
    port: o.config.port,
    tls: { cert: o.cert.cert, key: o.cert.key, minVersion: TLS_MIN_VERSION } as Bun.TLSOptions,
    http2: true,
    http3: o.config.http3,
    maxRequestBodySize: o.config.maxRequestBytes,
    idleTimeout: 60,
    routes: {
      "/api/v1/ingest": { POST: handleIngest },
      "/api/v1/session": { POST: createSessionHandler(ingest.deps) },
      "/api/v1/stream": (req: Request, srv: Server<StreamData>) =>
        srv.upgrade(req, { data: { kind: "agent-stream", nonce: "", transport: "wss", inFlight: 0 } }) ? undefined : upgradeRequired(),
    },
    async fetch(req, srv) {
      setClientIp(req, srv.requestIP(req)?.address);
      // every answer gets the security headers here; /metrics needs its bearer token first; a
      // request the database holds past its deadline is answered 503 (Bun adds Alt-Svc (h3) itself)
      return withSecurityHeaders(metricsGate(req, o.config.metricsToken) ?? (await storeAwareDeadline(req, app.handle(req), health, o.config.dbTimeoutMs)));
    },
    ...productionErrors(),
    websocket: createStreamHandler(ingest.deps),
  });
  const port = server.port!;
  const host = o.config.host === "0.0.0.0" || o.config.host === "::" ? "127.0.0.1" : o.config.host;
  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    fingerprint: o.cert.fingerprint,
    ingest,
    server,
    async stop() {
      // Finish requests in flight (their acks wait for commits), then cut what remains.
      // (a request that failed while the database was down may surface here: it was answered already)
      await Promise.race([server.stop(false).catch(() => {}), Bun.sleep(5000)]);
      await server.stop(true).catch(() => {});
      await ingest.stop();
      ownHealth?.stop();
    },
  };
}

/**
 * Never Bun's development error page (a stack trace, the working directory, the database
 * port): whatever escapes a handler gets the generic answer of src/http/errors.ts.
 */
function productionErrors() {
  return { development: false, error: (e: Error) => errorResponse(e) };
}
