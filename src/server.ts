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
import type { WriteFailureLog } from "./ingest/write-failures.ts";
import { ingestRoutes, type IngestRoutesOptions } from "./ingest/routes.ts";
import { createStreamHandler, newStreamData, type StreamData, type StreamDeps } from "./ingest/agent/stream.ts";
import { BodyReader, BodyTooLarge, BodyTooSlow } from "./ingest/body.ts";
import { AcceptGuard, fileLimit, fileLimitWarning } from "./http/open-files.ts";
import { udpBufferMetrics } from "./http/udp-buffers.ts";
import { renderMetrics } from "./metrics/registry.ts";
import { setClientIp } from "./http/client-ip.ts";
import { withSecurityHeaders } from "./http/security-headers.ts";
import { metricsGate } from "./http/metrics-auth.ts";
import { createIngestHandler, createSessionHandler } from "./ingest/agent/http.ts";
import type { ServerCert } from "./tls/certs.ts";
import type { IngestMetrics } from "./metrics/registry.ts";
import { createStoreHealth, type StoreHealth } from "./store/postgres/health.ts";
import { errorResponse } from "./http/errors.ts";
import { storeAwareDeadline } from "./http/store-deadline.ts";
import { pacedRequest, tooSlowResponse } from "./http/body-pace.ts";

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
  /** The license's seat check at enrollment (src/license/service.ts); without it, no limit. */
  seats?: IngestRoutesOptions["seats"];
  /** Where failed store writes are logged (one line per 10 s during an outage); made when absent. */
  writeFailureLog?: WriteFailureLog;
}

const upgradeRequired = () =>
  new Response(JSON.stringify({ error: { code: "upgrade_required", message: "this endpoint takes a WebSocket upgrade" } }), {
    status: 426,
    headers: { "content-type": "application/json" },
  });

/** The stream upgrade, counted against the address's cap on unauthenticated clients until its hello. */
function upgradeStream(req: Request, srv: Server<StreamData>, ip: string, deps: StreamDeps): Response | undefined {
  const refuse = (reason: string, code: string, message: string) => {
    deps.metrics.unauthenticatedRefused.inc({ transport: "wss", reason });
    return new Response(JSON.stringify({ error: { code, message } }), { status: 429, headers: { "content-type": "application/json", "retry-after": "1", connection: "close" } });
  };
  if (!deps.clients.mayTry(ip)) return refuse("failures", "too_many_failures", `this address failed to authenticate ${deps.clients.limits.maxAuthFailuresPerIp} times this second (SERVERMIND_MAX_AUTH_FAILURES_PER_IP)`);
  if (!deps.clients.enter(ip)) return refuse("per_ip_cap", "too_many_unauthenticated", `${deps.clients.limits.maxUnauthenticatedPerIp} requests or streams from this address are already waiting to authenticate (SERVERMIND_MAX_UNAUTH_PER_IP)`);
  if (srv.upgrade(req, { data: newStreamData(ip) })) return undefined;
  deps.clients.leave(ip);
  return upgradeRequired();
}

/** Bytes of a request body nobody read that are still taken in before answering. */
const UNREAD_BODY_MAX = 64 * 1024;

/**
 * Answers only after the request's body is in. A route that answers without reading a small
 * body (a 404, a refusal) would otherwise respond while its DATA frames are still arriving,
 * which over HTTP/2 often left the client with no answer at all. The body is read (and
 * dropped) at the minimum pace, up to 64 kB; beyond that the connection is closed after the
 * answer.
 */
async function afterBody(req: Request, res: Response, config: Config): Promise<Response> {
  if (!req.body || req.bodyUsed) return res;
  const pace = { graceMs: config.clients.bodyGraceMs, minRate: config.clients.minBodyRate };
  try {
    const body = new BodyReader(req, UNREAD_BODY_MAX, pace);
    while (await body.next());
    return res;
  } catch (e) {
    if (!(e instanceof BodyTooLarge) && !(e instanceof BodyTooSlow)) throw e;
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers: [...res.headers, ["connection", "close"]] });
  }
}

/**
 * Listens, and stops listening while the process is near its open-files limit (AcceptGuard):
 * the port then refuses connections at once, where a full descriptor table made every accept
 * fail and the event loop spin. Connections already open stay with the listener that took them;
 * a new listener on the same port takes new ones once descriptors are free.
 */
function listenGuarded(options: Bun.Serve.Options<StreamData>, config: Config) {
  let current = Bun.serve<StreamData>(options);
  const port = current.port!;
  const retired: Array<Server<StreamData>> = [];
  const warning = fileLimitWarning(config);
  if (warning) console.error(warning);
  const limit = fileLimit() ?? Infinity;
  const guard = new AcceptGuard({
    limit,
    reserve: Math.max(32, Math.floor(limit / 50)),
    pause() {
      retired.push(current);
      void current.stop(false);
    },
    resume() {
      try {
        current = Bun.serve<StreamData>({ ...options, port } as Bun.Serve.Options<StreamData>);
      } catch (e) {
        console.error(`listening again on port ${port} failed: ${e instanceof Error ? e.message : e}; retrying`);
        guard.paused = true;
      }
    },
  }).start();
  return {
    port,
    guard,
    current: () => current,
    all: () => [...new Set([...retired, current])],
  };
}

export function startServer(o: StartOptions): RunningServer {
  const ingest = createIngest(o.sql, o.config, o.metrics, o.writeFailureLog);
  const ownHealth = o.health ? undefined : createStoreHealth(o.sql, { timeoutMs: o.config.healthTimeoutMs, intervalMs: 1000 });
  const health = o.health ?? ownHealth!;
  const udpMetrics = udpBufferMetrics();
  const app = createApp([
    ingestRoutes({ sql: o.sql, ingest, health, fingerprint: o.cert.fingerprint, maxRequestBytes: o.config.maxRequestBytes, extraMetrics: [{ render: () => renderMetrics([...listener.guard.metrics, ...udpMetrics, ...(o.extraMetrics ?? [])]) }], commandKey: o.commandKey, seats: o.seats, pace: { graceMs: o.config.clients.bodyGraceMs, minRate: o.config.clients.minBodyRate } }),
    ...(o.plugins ?? []),
  ]);
  const handleIngest = createIngestHandler(ingest.deps, o.config.maxRequestBytes);
  const handleSession = createSessionHandler(ingest.deps);
  const bodyPace = { graceMs: o.config.clients.bodyGraceMs, minRate: o.config.clients.minBodyRate };
  const peer = (req: Request, srv: Server<StreamData>) => srv.requestIP(req)?.address ?? "unknown";
  const options: Bun.Serve.Options<StreamData> = {
    hostname: o.config.host,
    port: o.config.port,
    tls: { cert: o.cert.cert, key: o.cert.key, minVersion: TLS_MIN_VERSION } as Bun.TLSOptions,
    http2: true,
    http3: o.config.http3,
    maxRequestBodySize: o.config.maxRequestBytes,
    idleTimeout: 60,
    routes: {
      // served by Bun's router, ahead of the fetch above: the security headers are added here too
      "/api/v1/ingest": { POST: async (req: Request, srv: Server<StreamData>) => withSecurityHeaders(await handleIngest(req, peer(req, srv))) },
      "/api/v1/session": { POST: async (req: Request, srv: Server<StreamData>) => withSecurityHeaders(await handleSession(req, peer(req, srv))) },
      "/api/v1/stream": (req: Request, srv: Server<StreamData>) => {
        const res = upgradeStream(req, srv, peer(req, srv), ingest.deps);
        return res && withSecurityHeaders(res);
      },
    },
    async fetch(original, srv) {
      // every answer gets the security headers here; /metrics needs its bearer token first; a
      // body must keep the minimum pace (408 and close when it falls behind); a request the
      // database holds past its deadline is answered 503; an unread small body is taken in
      // before the answer (Bun adds Alt-Svc (h3) itself)
      const gated = metricsGate(original, o.config.metricsToken);
      if (gated) return withSecurityHeaders(gated);
      const paced = pacedRequest(original, bodyPace);
      const req = paced.request;
      setClientIp(req, srv.requestIP(original)?.address);
      const res = await afterBody(req, await storeAwareDeadline(req, app.handle(req), health, o.config.dbTimeoutMs), o.config);
      if (paced.slow) {
        ingest.deps.metrics.clientTimeouts.inc({ kind: "body_rate" });
        return withSecurityHeaders(tooSlowResponse(paced.slow));
      }
      return withSecurityHeaders(res);
    },
    ...productionErrors(),
    websocket: createStreamHandler(ingest.deps),
  } as Bun.Serve.Options<StreamData>;
  const listener = listenGuarded(options, o.config);
  const port = listener.port;
  const host = o.config.host === "0.0.0.0" || o.config.host === "::" ? "127.0.0.1" : o.config.host;
  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    fingerprint: o.cert.fingerprint,
    ingest,
    get server() {
      return listener.current();
    },
    async stop() {
      listener.guard.stop();
      // Finish requests in flight (their acks wait for commits), then cut what remains.
      const all = listener.all();
      // (a request that failed while the database was down may surface here: it was answered already)
      await Promise.race([Promise.all(all.map((s) => s.stop(false).catch(() => {}))), Bun.sleep(5000)]);
      await Promise.all(all.map((s) => s.stop(true).catch(() => {})));
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
