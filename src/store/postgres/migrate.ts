/**
 * Versioned migrations: every `NNN_name.sql` in ./migrations, applied in order, each in its own
 * transaction, recorded in schema_migrations. An advisory lock keeps two nodes from racing.
 * Ranges: 001-099 ingest and storage, 100-199 console and accounts, 200-299 security, 300-399
 * storage tiers and cluster, 410+ audit integrity and database roles (issue 12), later ones above.
 */
import type { Sql } from "postgres";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sharePath } from "../../share.ts";

const DIR = sharePath("migrations", join(import.meta.dir, "migrations"));
const LOCK_ID = 0x5e7e7d;

export interface Migration {
  version: string;
  name: string;
  sql: string;
}

export function listMigrations(dir = DIR): Migration[] {
  const list = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: f.slice(0, 3), name: f.slice(4, -4), sql: readFileSync(join(dir, f), "utf8") }));
  // the version alone is recorded as applied: two files with one version would skip the second
  const seen = new Map<string, string>();
  for (const m of list) {
    const other = seen.get(m.version);
    if (other) throw new Error(`migrations ${m.version}_${other}.sql and ${m.version}_${m.name}.sql share the version ${m.version}; renumber one`);
    seen.set(m.version, m.name);
  }
  return list;
}

/** Applies what is missing and returns the versions applied now. */
export async function migrate(sql: Sql, dir = DIR): Promise<string[]> {
  const applied: string[] = [];
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_ID})`;
    await tx`create table if not exists schema_migrations (
      version text primary key, name text not null, applied_at timestamptz not null default now())`;
    const done = new Set((await tx`select version from schema_migrations`).map((r) => r.version as string));
    for (const m of listMigrations(dir)) {
      if (done.has(m.version)) continue;
      try {
        await tx.unsafe(m.sql);
      } catch (e) {
        throw new Error(`migration ${m.version}_${m.name}.sql failed: ${e instanceof Error ? e.message : e}`);
      }
      await tx`insert into schema_migrations (version, name) values (${m.version}, ${m.name})`;
      applied.push(m.version);
    }
  });
  return applied;
}
