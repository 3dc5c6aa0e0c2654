/**
 * A real PostgreSQL for tests: DATABASE_URL when set, otherwise one embedded server started on
 * first use and stopped when the run ends (see preload.ts). Each caller gets its own fresh
 * database with every migration applied, so test files never see each other's rows. The
 * migrations run once per run, into a template database; each test database is a copy of it
 * (`create database ... template`), which costs a file copy instead of every migration again
 * (with 15 migrations that was seconds per database on a busy machine, past bun's 5 s hooks).
 */
import type { Sql } from "postgres";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { startEmbeddedPg, type EmbeddedPg } from "../../src/store/postgres/embedded.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";
import { listMigrations, migrate } from "../../src/store/postgres/migrate.ts";
import { ensureRuntimeRole, grantRuntimeRole, runtimeRoleName, withCredentials } from "../../src/store/postgres/runtime-role.ts";

let server: Promise<{ url: string; embedded?: EmbeddedPg; dir?: string }> | undefined;

function baseServer() {
  server ??= (async () => {
    if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL };
    const dir = mkdtempSync(join(tmpdir(), "servermind-test-pg-"));
    chmodSync(dir, 0o755); // the postgres user (when we run as root) must reach its data directory
    const embedded = await startEmbeddedPg({ dataDir: join(dir, "pg"), settings: { shared_buffers: "256MB", fsync: "off" } });
    return { url: embedded.url, embedded, dir };
  })();
  return server;
}

/** Starts (once) the server that testDatabase() creates databases on. */
export async function startTestServerDatabase(): Promise<void> {
  await baseServer();
}

export interface TestDb {
  /** The owner's URL and pool (the embedded superuser, or DATABASE_URL's role). */
  url: string;
  sql: Sql;
  /** The URL of the least-privilege runtime role, granted in this database on first call. */
  runtimeUrl(): Promise<string>;
  drop(): Promise<void>;
}

/** One runtime role per test run (roles are cluster-wide); each database grants it on demand. */
const RUNTIME_ROLE = "servermind_test_app";
let runtimePassword: Promise<string> | undefined;
function runtimeRole(base: string): Promise<string> {
  runtimePassword ??= (async () => {
    const password = randomBytes(18).toString("base64url");
    const admin = createPgClient(base, 1);
    try {
      await ensureRuntimeRole(admin, RUNTIME_ROLE, password);
    } finally {
      await admin.end();
    }
    return password;
  })();
  return runtimePassword;
}

let counter = 0;

let template: Promise<string> | undefined;
/** The migrated database every test database is copied from; made on first use. */
function migratedTemplate(baseUrl: string): Promise<string> {
  template ??= (async () => {
    const name = `tmpl_${process.pid}_${Date.now().toString(36)}`;
    const admin = createPgClient(baseUrl, 1);
    await admin.unsafe(`create database ${name}`);
    await admin.end();
    const u = new URL(baseUrl);
    u.pathname = `/${name}`;
    const sql = createPgClient(u.toString(), 1);
    try {
      await migrate(sql);
    } finally {
      await sql.end({ timeout: 5 }); // a template must have no connections while it is copied
    }
    return name;
  })();
  return template;
}

export async function testDatabase(poolSize = 8): Promise<TestDb> {
  const base = await baseServer();
  const tmpl = await migratedTemplate(base.url);
  const name = `t_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  const admin = createPgClient(base.url, 1);
  await admin.unsafe(`create database ${name} template ${tmpl}`);
  await admin.end();
  const u = new URL(base.url);
  u.pathname = `/${name}`;
  const url = u.toString();
  const sql = createPgClient(url, poolSize);
  await migrate(sql); // nothing to apply: it only checks the copy is current
  let granted: Promise<string> | undefined;
  return {
    url,
    sql,
    runtimeUrl() {
      granted ??= (async () => {
        const password = await runtimeRole(base.url);
        await grantRuntimeRole(sql, RUNTIME_ROLE);
        return withCredentials(url, RUNTIME_ROLE, password);
      })();
      return granted;
    },
    async drop() {
      await sql.end({ timeout: 5 });
      const a = createPgClient(base.url, 1);
      await a.unsafe(`drop database if exists ${name} with (force)`);
      // a server started on this database (src/db.ts) generated its runtime role `<database>_app`
      await a.unsafe(`drop role if exists ${runtimeRoleName(name)}`);
      await a.end();
    },
  };
}

/**
 * Makes `db` a database as it was before the migrations after `version`: everything dropped,
 * then the migrations up to `version` applied (a migration's test then stores rows in the old
 * layout and runs `migrate(db.sql)` for the rest).
 */
export async function migrateDatabaseTo(db: TestDb, version: string): Promise<void> {
  await db.sql.unsafe("drop schema public cascade; create schema public");
  const dir = mkdtempSync(join(tmpdir(), `sm-migrations-${version}-`));
  try {
    const src = join(import.meta.dir, "../../src/store/postgres/migrations");
    for (const m of listMigrations(src)) if (m.version <= version) copyFileSync(join(src, `${m.version}_${m.name}.sql`), join(dir, `${m.version}_${m.name}.sql`));
    await migrate(db.sql, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function stopTestServer(): Promise<void> {
  if (!server) return;
  const s = await server;
  if (template && !s.embedded) {
    // an external DATABASE_URL keeps no template behind
    const a = createPgClient(s.url, 1);
    await a.unsafe(`drop database if exists ${await template} with (force)`).catch(() => {});
    await a.end();
  }
  await s.embedded?.stop();
  if (s.dir) rmSync(s.dir, { recursive: true, force: true });
}
