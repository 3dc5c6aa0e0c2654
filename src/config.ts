/**
 * Server configuration, from environment variables (each documented in docs/operations.md).
 * Every value is checked here, so a typo fails at start with a message naming the variable.
 */
import { resolve } from "node:path";
import { hostname } from "node:os";
import { AGENT_TARGETS, hostTargetFirst } from "./downloads/targets.ts";
import { parseAllowedNetworks, type DestinationPolicy } from "./alerts/destinations.ts";

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
  /** `retention.rollup1mDays` / `rollup10mDays` / `rollup1hDays`: metric rollup tiers (SERVERMIND_RETENTION_ROLLUP_1M_DAYS / _10M_DAYS / _1H_DAYS). */
  retentionRollup1mDays: number;
  retentionRollup10mDays: number;
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
  /**
   * `server.publicUrl`: the origin agents and browsers reach this server at (SERVERMIND_PUBLIC_URL;
   * default https://<first SERVERMIND_TLS_NAMES name, else the machine's hostname>:<port>). The
   * install one-liner, install.sh and SSO redirects use it, never a request's Host header.
   */
  publicUrl: string;
  /** `agents.build`: build missing agent binaries at start, in the background (SERVERMIND_AGENT_BUILD, default on). */
  agentBuild: boolean;
  /** `agents.buildTargets`: which targets that start-time build makes, this machine's first (SERVERMIND_AGENT_BUILD_TARGETS). */
  agentBuildTargets: string[];
  /**
   * `incidents.thresholds`: metric thresholds whose breaches are incident signals
   * (SERVERMIND_INCIDENT_THRESHOLDS, e.g. "cpu.usage_pct>95,disk.used_pct>90:6"; "off" for none).
   */
  incidentThresholds: MetricThreshold[];
  /** `alerts.intervalMs`: how often the elected node evaluates every alert rule (SERVERMIND_ALERT_INTERVAL_MS; docs/alerts.md). */
  alertIntervalMs: number;
  /** `alerts.allowNetworks`: non-public networks notifications may go to (SERVERMIND_NOTIFY_ALLOW_NETWORKS, CIDRs; src/alerts/destinations.ts). */
  notifyPolicy: DestinationPolicy;
  /** `ingest.clients`: how much a client that has not authenticated may cost (src/ingest/clients.ts). */
  clients: ClientLimits;
}

/** A metric breach that makes an incident signal: above or below a value, with a severity (default 4). */
export interface MetricThreshold {
  metric: string;
  above?: number;
  below?: number;
  severity?: number;
}

/** Sustained saturation of the basics: CPU and memory above 95 %, a file system above 90 % full. */
export const DEFAULT_INCIDENT_THRESHOLDS = "cpu.usage_pct>95,mem.used_pct>95,disk.used_pct>90:5";

/**
 * "metric>value[:severity]" or "metric<value[:severity]", comma separated; "off" or "none" for
 * none. A metric with labels (disk.used_pct{mount="/"}) is matched by its bare name.
 */
export function parseThresholds(name: string, raw: string): MetricThreshold[] {
  if (/^(off|none)$/i.test(raw.trim())) return [];
  return raw.split(",").map((s) => s.trim()).filter(Boolean).map((item) => {
    const m = /^([a-z][a-z0-9_.]*)\s*([<>])\s*(-?\d+(?:\.\d+)?)(?::(\d+))?$/i.exec(item);
    const sev = m?.[4] === undefined ? undefined : Number(m[4]);
    if (!m || (sev !== undefined && (sev < 1 || sev > 10))) {
      throw new Error(`${name}: ${JSON.stringify(item)} is not metric>value or metric<value with an optional :severity from 1 to 10 (e.g. cpu.usage_pct>95:6)`);
    }
    return { metric: m[1]!, ...(m[2] === ">" ? { above: Number(m[3]) } : { below: Number(m[3]) }), ...(sev !== undefined ? { severity: sev } : {}) };
  });
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

/** A comma-separated subset of `choices`, or `def` when unset; an unknown item throws naming the variable. */
export function envList(env: Env, name: string, choices: readonly string[], def: string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!choices.includes(i)) throw new Error(`${name}: ${JSON.stringify(i)} is not one of ${choices.join(", ")}`);
  return items;
}

/** An IPv6 address needs brackets in a URL. */
function urlHost(name: string): string {
  return name.includes(":") && !name.startsWith("[") ? `[${name}]` : name;
}

/** An http(s) origin (no path) from the environment, or `def`; the result has no trailing slash. */
export function envOrigin(env: Env, name: string, def: string): string {
  const raw = (env[name] || def).replace(/\/+$/, "");
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`${name} must be an absolute URL such as https://servermind.example.com:8443, got ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error(`${name} must be https://..., got ${JSON.stringify(raw)}`);
  if (u.pathname !== "/" || u.search || u.hash) throw new Error(`${name} must be an origin without a path, got ${JSON.stringify(raw)}`);
  return u.origin;
}

export function loadConfig(env: Env = process.env): Config {
  const tlsCert = env.SERVERMIND_TLS_CERT ?? "";
  const tlsKey = env.SERVERMIND_TLS_KEY ?? "";
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new Error("SERVERMIND_TLS_CERT and SERVERMIND_TLS_KEY must be set together");
  }
  const port = envInt(env, "SERVERMIND_PORT", 8443, 0, 65535);
  const tlsNames = (env.SERVERMIND_TLS_NAMES ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return {
    host: env.SERVERMIND_HOST || "0.0.0.0",
    port,
    dataDir: resolve(env.SERVERMIND_DATA || "./data"),
    databaseUrl: env.DATABASE_URL ?? "",
    databaseRuntimeUrl: env.DATABASE_RUNTIME_URL ?? "",
    metricsToken: env.SERVERMIND_METRICS_TOKEN ?? "",
    dbPoolSize: envInt(env, "SERVERMIND_DB_POOL", 8, 2, 200),
    tlsCert,
    tlsKey,
    tlsNames,
    http3: envBool(env, "SERVERMIND_HTTP3", true),
    batchMaxRows: envInt(env, "SERVERMIND_BATCH_MAX_ROWS", 20_000, 1, 10_000_000),
    batchMaxAgeMs: envInt(env, "SERVERMIND_BATCH_MAX_AGE_MS", 50, 1, 60_000),
    maxPendingBytes: envInt(env, "SERVERMIND_MAX_PENDING_BYTES", 256 * 2 ** 20, 2 ** 20, 16 * 2 ** 30),
    writers: envInt(env, "SERVERMIND_WRITERS", 3, 1, 64),
    maxRequestBytes: envInt(env, "SERVERMIND_MAX_REQUEST_BYTES", 16 * 2 ** 20, 1024, 2 ** 30),
    retentionMetricsDays: envInt(env, "SERVERMIND_RETENTION_METRICS_DAYS", 30, 1, 36500),
    retentionLogsDays: envInt(env, "SERVERMIND_RETENTION_LOGS_DAYS", 14, 1, 36500),
    retentionRollup1mDays: envInt(env, "SERVERMIND_RETENTION_ROLLUP_1M_DAYS", 90, 1, 36500),
    retentionRollup10mDays: envInt(env, "SERVERMIND_RETENTION_ROLLUP_10M_DAYS", 730, 1, 36500),
    retentionRollup1hDays: envInt(env, "SERVERMIND_RETENTION_ROLLUP_1H_DAYS", 730, 1, 36500),
    maxSessions: envInt(env, "SERVERMIND_MAX_SESSIONS", 200_000, 1, 100_000_000),
    lz4: envChoice(env, "SERVERMIND_LZ4", ["auto", "native", "js"] as const, "auto"),
    dbTimeoutMs: envInt(env, "SERVERMIND_DB_TIMEOUT_MS", 5000, 100, 600_000),
    healthTimeoutMs: envInt(env, "SERVERMIND_HEALTH_TIMEOUT_MS", 2000, 100, 60_000),
    stopTimeoutMs: envInt(env, "SERVERMIND_STOP_TIMEOUT_MS", 10_000, 1000, 600_000),
    publicUrl: envOrigin(env, "SERVERMIND_PUBLIC_URL", `https://${urlHost(tlsNames[0] ?? hostname())}:${port}`),
    incidentThresholds: parseThresholds("SERVERMIND_INCIDENT_THRESHOLDS", env.SERVERMIND_INCIDENT_THRESHOLDS || DEFAULT_INCIDENT_THRESHOLDS),
    agentBuild: envBool(env, "SERVERMIND_AGENT_BUILD", true),
    agentBuildTargets: envList(env, "SERVERMIND_AGENT_BUILD_TARGETS", AGENT_TARGETS, hostTargetFirst(AGENT_TARGETS)),
    alertIntervalMs: envInt(env, "SERVERMIND_ALERT_INTERVAL_MS", 10_000, 1000, 600_000),
    notifyPolicy: parseAllowedNetworks(env.SERVERMIND_NOTIFY_ALLOW_NETWORKS ?? ""),
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
