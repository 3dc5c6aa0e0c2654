/**
 * Server configuration, from environment variables (each documented in docs/operations.md).
 * Every value is checked here, so a typo fails at start with a message naming the variable.
 */
import { resolve } from "node:path";

export interface Config {
  /** `server.host`: address to listen on (SERVERMIND_HOST). */
  host: string;
  /** `server.port`: TCP and UDP port for HTTPS, WSS and HTTP/3 (SERVERMIND_PORT). */
  port: number;
  /** `server.dataDir`: where the embedded PostgreSQL and generated certificate live (SERVERMIND_DATA). */
  dataDir: string;
  /** `db.url`: external PostgreSQL; empty means the embedded one (DATABASE_URL). */
  databaseUrl: string;
  /** `db.runtimeUrl`: the least-privilege role the server runs as; empty means a generated one (DATABASE_RUNTIME_URL). */
  databaseRuntimeUrl: string;
  /** `metrics.token`: the bearer token /metrics requires; empty turns /metrics off (SERVERMIND_METRICS_TOKEN). */
  metricsToken: string;
  /** `db.poolSize`: connections for the store writer and queries (SERVERMIND_DB_POOL). */
  dbPoolSize: number;
  /** `tls.cert` / `tls.key`: PEM files; empty means a generated self-signed pair (SERVERMIND_TLS_CERT/KEY). */
  tlsCert: string;
  tlsKey: string;
  /** `tls.names`: extra DNS names / IPs for the generated certificate (SERVERMIND_TLS_NAMES, comma separated). */
  tlsNames: string[];
  /** `server.http3`: also serve HTTP/3 over QUIC on the same port (SERVERMIND_HTTP3, default on). */
  http3: boolean;
  /** `batch.maxRows`: flush a batch once it holds this many metric rows (SERVERMIND_BATCH_MAX_ROWS). */
  batchMaxRows: number;
  /** `batch.maxAgeMs`: flush a batch at the latest this long after its first frame (SERVERMIND_BATCH_MAX_AGE_MS). */
  batchMaxAgeMs: number;
  /** `batch.maxPendingBytes`: decoded frames waiting for commit, at most (SERVERMIND_MAX_PENDING_BYTES). */
  maxPendingBytes: number;
  /** `store.writers`: COPY transactions in flight at once (SERVERMIND_WRITERS). */
  writers: number;
  /** `ingest.maxRequestBytes`: largest accepted POST body (SERVERMIND_MAX_REQUEST_BYTES). */
  maxRequestBytes: number;
  /** `retention.metricsDays` / `retention.logsDays` (SERVERMIND_RETENTION_METRICS_DAYS / _LOGS_DAYS). */
  retentionMetricsDays: number;
  retentionLogsDays: number;
  /** `retention.rollup1mDays` / `retention.rollup1hDays`: metric rollup tiers (SERVERMIND_RETENTION_ROLLUP_1M_DAYS / _1H_DAYS). */
  retentionRollup1mDays: number;
  retentionRollup1hDays: number;
  /** `ingest.maxSessions`: agent sessions kept in memory, at most (SERVERMIND_MAX_SESSIONS). */
  maxSessions: number;
  /** `ingest.lz4`: LZ4 decoder, auto | native (liblz4) | js (SERVERMIND_LZ4). */
  lz4: "auto" | "native" | "js";
  /** `db.timeoutMs`: longest a request waits on a database that does not answer before 503 + Retry-After (SERVERMIND_DB_TIMEOUT_MS). */
  dbTimeoutMs: number;
  /** `db.healthTimeoutMs`: longest /healthz (and each background probe) waits for PostgreSQL (SERVERMIND_HEALTH_TIMEOUT_MS). */
  healthTimeoutMs: number;
  /** `server.stopTimeoutMs`: SIGTERM/SIGINT end the process within this, whatever the database does (SERVERMIND_STOP_TIMEOUT_MS). */
  stopTimeoutMs: number;
  /** `ingest.clients`: how much a client that has not authenticated may cost (src/ingest/clients.ts). */
  clients: ClientLimits;
}

/** Bounds on clients that have not (yet) proven who they are; docs/operations.md "Slow and unauthenticated clients". */
export interface ClientLimits {
  /** A request body must arrive within graceMs + bytes / minBodyRate seconds (SERVERMIND_BODY_GRACE_MS). */
  bodyGraceMs: number;
  /** Bytes per second a request body must keep up after the grace (SERVERMIND_BODY_MIN_RATE). */
  minBodyRate: number;
  /** A WebSocket without an authenticated hello this long after opening is closed (SERVERMIND_HELLO_TIMEOUT_MS). */
  helloTimeoutMs: number;
  /** Unauthenticated requests and streams in flight per client address (SERVERMIND_MAX_UNAUTH_PER_IP). */
  maxUnauthenticatedPerIp: number;
  /** Failed authentications (bad signature or tag, unknown agent, bad hello) per address per second before it is refused without checking (SERVERMIND_MAX_AUTH_FAILURES_PER_IP). */
  maxAuthFailuresPerIp: number;
  /** Agent connections this node is sized for; the start check wants file descriptors for them (SERVERMIND_MAX_AGENTS). */
  maxAgents: number;
}

type Env = Record<string, string | undefined>;

/** A whole number from the environment within [min, max], or `def` when unset; a bad value throws naming the variable. Config slices of other modules use it too. */
export function envInt(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new Error(`${name}=${JSON.stringify(raw)} is not a whole number from ${min} to ${max}`);
  }
  return v;
}

/** A boolean from the environment (true/false, 1/0, yes/no, on/off), or `def` when unset. */
export function envBool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`${name}=${JSON.stringify(raw)} is not a boolean (use true or false)`);
}

/** One of `choices` from the environment, or `def` when unset; anything else throws naming the variable. */
export function envChoice<T extends string>(env: Env, name: string, choices: readonly T[], def: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  if (!(choices as readonly string[]).includes(raw)) throw new Error(`${name}=${JSON.stringify(raw)} is not one of ${choices.join(", ")}`);
  return raw as T;
}

export function loadConfig(env: Env = process.env): Config {
  const tlsCert = env.SERVERMIND_TLS_CERT ?? "";
  const tlsKey = env.SERVERMIND_TLS_KEY ?? "";
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new Error("SERVERMIND_TLS_CERT and SERVERMIND_TLS_KEY must be set together");
  }
  return {
    host: env.SERVERMIND_HOST || "0.0.0.0",
    port: envInt(env, "SERVERMIND_PORT", 8443, 0, 65535),
    dataDir: resolve(env.SERVERMIND_DATA || "./data"),
    databaseUrl: env.DATABASE_URL ?? "",
    databaseRuntimeUrl: env.DATABASE_RUNTIME_URL ?? "",
    metricsToken: env.SERVERMIND_METRICS_TOKEN ?? "",
    dbPoolSize: envInt(env, "SERVERMIND_DB_POOL", 8, 2, 200),
    tlsCert,
    tlsKey,
    tlsNames: (env.SERVERMIND_TLS_NAMES ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    http3: envBool(env, "SERVERMIND_HTTP3", true),
    batchMaxRows: envInt(env, "SERVERMIND_BATCH_MAX_ROWS", 20_000, 1, 10_000_000),
    batchMaxAgeMs: envInt(env, "SERVERMIND_BATCH_MAX_AGE_MS", 50, 1, 60_000),
    maxPendingBytes: envInt(env, "SERVERMIND_MAX_PENDING_BYTES", 256 * 2 ** 20, 2 ** 20, 16 * 2 ** 30),
    writers: envInt(env, "SERVERMIND_WRITERS", 3, 1, 64),
    maxRequestBytes: envInt(env, "SERVERMIND_MAX_REQUEST_BYTES", 16 * 2 ** 20, 1024, 2 ** 30),
    retentionMetricsDays: envInt(env, "SERVERMIND_RETENTION_METRICS_DAYS", 30, 1, 36500),
    retentionLogsDays: envInt(env, "SERVERMIND_RETENTION_LOGS_DAYS", 14, 1, 36500),
    retentionRollup1mDays: envInt(env, "SERVERMIND_RETENTION_ROLLUP_1M_DAYS", 90, 1, 36500),
    retentionRollup1hDays: envInt(env, "SERVERMIND_RETENTION_ROLLUP_1H_DAYS", 730, 1, 36500),
    maxSessions: envInt(env, "SERVERMIND_MAX_SESSIONS", 200_000, 1, 100_000_000),
    lz4: envChoice(env, "SERVERMIND_LZ4", ["auto", "native", "js"] as const, "auto"),
    dbTimeoutMs: envInt(env, "SERVERMIND_DB_TIMEOUT_MS", 5000, 100, 600_000),
    healthTimeoutMs: envInt(env, "SERVERMIND_HEALTH_TIMEOUT_MS", 2000, 100, 60_000),
    stopTimeoutMs: envInt(env, "SERVERMIND_STOP_TIMEOUT_MS", 10_000, 1000, 600_000),
    clients: {
      bodyGraceMs: envInt(env, "SERVERMIND_BODY_GRACE_MS", 10_000, 100, 600_000),
      minBodyRate: envInt(env, "SERVERMIND_BODY_MIN_RATE", 4096, 1, 2 ** 30),
      helloTimeoutMs: envInt(env, "SERVERMIND_HELLO_TIMEOUT_MS", 10_000, 100, 600_000),
      maxUnauthenticatedPerIp: envInt(env, "SERVERMIND_MAX_UNAUTH_PER_IP", 128, 1, 1_000_000),
      maxAuthFailuresPerIp: envInt(env, "SERVERMIND_MAX_AUTH_FAILURES_PER_IP", 20, 1, 1_000_000),
      maxAgents: envInt(env, "SERVERMIND_MAX_AGENTS", 10_000, 1, 10_000_000),
    },
  };
}
