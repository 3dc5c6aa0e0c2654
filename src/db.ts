/** Opens the database the config names (or the embedded one) and brings its schema up to date. */
import type { Sql } from "postgres";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { startEmbeddedPg, type EmbeddedPg } from "./store/postgres/embedded.ts";
import { createPgClient } from "./store/postgres/client.ts";
import { migrate } from "./store/postgres/migrate.ts";
import { createStoreHealth, type StoreHealth } from "./store/postgres/health.ts";

export interface Database {
  sql: Sql;
  embedded?: EmbeddedPg;
  /** Probes PostgreSQL on a connection of its own (for /healthz and request deadlines). */
  health: StoreHealth;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Use the embedded PostgreSQL of a server that runs on the same data directory (the CLI). */
  shareRunning?: boolean;
}

export async function openDatabase(config: Config, log: (s: string) => void = console.log, o: OpenOptions = {}): Promise<Database> {
  let url = config.databaseUrl;
  let embedded: EmbeddedPg | undefined;
  if (!url) {
    embedded = await startEmbeddedPg({ dataDir: join(config.dataDir, "pg"), shareRunning: o.shareRunning });
    url = embedded.url;
    log(`embedded PostgreSQL running on 127.0.0.1:${embedded.port}, data in ${join(config.dataDir, "pg")}`);
  }
  const sql = createPgClient(url, config.dbPoolSize);
  try {
    const applied = await migrate(sql);
    if (applied.length) log(`applied migrations ${applied.join(", ")}`);
  } catch (e) {
    await sql.end({ timeout: 5 });
    await embedded?.stop();
    throw e;
  }
  const probe = createPgClient(url, 1);
  const health = createStoreHealth(probe, { timeoutMs: config.healthTimeoutMs, intervalMs: 1000 });
  return {
    sql,
    embedded,
    health,
    async close() {
      health.stop();
      await Promise.all([sql.end({ timeout: 2 }), probe.end({ timeout: 1 })]);
      await embedded?.stop();
    },
  };
}
