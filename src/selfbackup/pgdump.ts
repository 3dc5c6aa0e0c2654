/**
 * A logical dump of ServerMind's own database, made over an ordinary SQL connection: the
 * embedded PostgreSQL (18) ships no pg_dump, and Debian's client (15) refuses a newer server.
 * The schema is not dumped: it is the migrations, and the dump records which ones were applied.
 *
 * Layout under the dump directory (docs/operations.md, "Backing up ServerMind"):
 *   manifest.json            migrations applied, partitions (name, parent, bound), sequences,
 *                            tables in load order with their columns and row counts
 *   tables/<name>.copy       each plain table and partition, PostgreSQL COPY text format
 *
 * Every table is read in one REPEATABLE READ, READ ONLY transaction: one consistent snapshot of
 * the whole database while the server keeps writing. Loading applies the same migrations to an
 * empty database, recreates the partitions, and COPYs the rows in with triggers off
 * (session_replication_role = replica: the audit log's append-only guard and foreign keys do
 * not fire for rows that were already checked when first written).
 */
import type { Sql } from "postgres";
import { closeSync, createReadStream, fsyncSync, mkdirSync, openSync, writeSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { listMigrations, migrate } from "../store/postgres/migrate.ts";
import { SelfBackupError } from "./error.ts";

export interface DumpManifest {
  format: "servermind-pgdump";
  version: 1;
  serverVersion: string;
  migrations: string[];
  /** `partitionBy`: the key of a partition that is itself partitioned (the hourly leaves of a `logs` day). */
  partitions: { name: string; parent: string; bound: string; partitionBy?: string }[];
  sequences: { name: string; lastValue: string }[];
  tables: { name: string; file: string; columns: string[]; rows: number }[];
}

/** A quoted SQL identifier (names come from the catalog, never from a request). */
export const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Dumps every table of the `public` schema into `dir` (created); returns the manifest. */
export async function dumpDatabase(sql: Sql, dir: string): Promise<DumpManifest> {
  mkdirSync(join(dir, "tables"), { recursive: true, mode: 0o700 });
  return await sql.begin("isolation level repeatable read read only", async (tx) => {
    const [{ version }] = await tx<{ version: string }[]>`select current_setting('server_version') as version`;
    const migrations = (await tx<{ version: string }[]>`select version from schema_migrations order by version`).map((r) => r.version);
    const partitions = (await tx<{ name: string; parent: string; bound: string; partitionBy: string | null }[]>`
      select c.relname as name, p.relname as parent, pg_get_expr(c.relpartbound, c.oid) as bound,
        case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end as "partitionBy"
      from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relispartition and c.relkind in ('r', 'p') order by c.relname`)
      .map((r) => ({ name: r.name, parent: r.parent, bound: r.bound, ...(r.partitionBy ? { partitionBy: r.partitionBy } : {}) }));
    const sequences = await tx<{ name: string; lastValue: string }[]>`
      select sequencename as name, last_value::text as "lastValue" from pg_sequences
      where schemaname = 'public' and last_value is not null order by 1`;
    const rels = await tx<{ oid: number; name: string }[]>`
      select c.oid, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind = 'r' and c.relname <> 'schema_migrations' order by c.relname`;
    const tables: DumpManifest["tables"] = [];
    for (const [i, rel] of rels.entries()) {
      const columns = (await tx<{ name: string }[]>`
        select attname as name from pg_attribute
        where attrelid = ${rel.oid} and attnum > 0 and not attisdropped and attgenerated = '' order by attnum`).map((r) => r.name);
      const file = `tables/${String(i).padStart(4, "0")}-${rel.name.replace(/[^a-z0-9_]/gi, "_")}.copy`;
      const readable = await tx.unsafe(`copy ${ident(rel.name)} (${columns.map(ident).join(", ")}) to stdout`).readable();
      const rows = await drainTo(readable, join(dir, file));
      tables.push({ name: rel.name, file, columns, rows });
    }
    const manifest: DumpManifest = {
      format: "servermind-pgdump", version: 1, serverVersion: version, migrations,
      partitions: [...partitions], sequences: [...sequences], tables,
    };
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 1), { mode: 0o600 });
    return manifest;
  });
}

/**
 * Writes a COPY TO STDOUT stream to a file, consuming every chunk as it arrives (synchronous
 * writes, no backpressure). postgres.js (3.4) pauses its socket when a chunk finds the stream's
 * buffer full and resumes it only from the stream's read(); when that happens on the last chunk
 * (for instance a whole table arrived before our listener was attached), read() is never called
 * again and the connection hangs on its next query. So at the end the stream's read() is called
 * once more: it only resumes the socket. Returns the number of rows (lines).
 */
async function drainTo(readable: Readable, path: string): Promise<number> {
  const fd = openSync(path, "w", 0o600);
  let rows = 0; // one line per row in the text format (newlines inside values are escaped)
  try {
    await new Promise<void>((resolveDone, reject) => {
      readable.on("data", (b: Buffer) => {
        for (let j = b.indexOf(10); j >= 0; j = b.indexOf(10, j + 1)) rows++;
        for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off);
      });
      readable.once("end", () => {
        (readable as Readable & { _read(n: number): void })._read(0);
        resolveDone();
      });
      readable.once("error", reject);
    });
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return rows;
}

export function readDumpManifest(dir: string): DumpManifest {
  const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as DumpManifest;
  if (m.format !== "servermind-pgdump" || m.version !== 1) throw new SelfBackupError("bad_format", "the backup's database dump is not a format this version reads");
  return m;
}

/**
 * Loads a dump into an empty database: the dump's migrations (refused when this ServerMind does
 * not know one of them: restore with the version that made the backup, then upgrade), its
 * partitions, then every table's rows and the sequences, in one transaction.
 */
export async function loadDatabase(sql: Sql, dir: string): Promise<{ tables: number; rows: number }> {
  const m = readDumpManifest(dir);
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_class c join pg_namespace ns on ns.oid = c.relnamespace
    where ns.nspname = 'public' and c.relkind in ('r', 'p')`;
  if (n > 0) throw new SelfBackupError("not_empty", "the target database already has tables; restore into an empty database");
  const known = new Map(listMigrations().map((x) => [x.version, x]));
  const unknown = m.migrations.filter((v) => !known.has(v));
  if (unknown.length) {
    throw new SelfBackupError("version", `the backup was made by a newer ServerMind (migrations ${unknown.join(", ")} are unknown here); install that version to restore`);
  }
  // exactly the dump's migrations: a newer ServerMind applies the rest at its next start, on the restored rows
  const only = mkdtempSync(join(tmpdir(), "servermind-migrations-"));
  try {
    for (const v of m.migrations) {
      const x = known.get(v)!;
      writeFileSync(join(only, `${x.version}_${x.name}.sql`), x.sql);
    }
    await migrate(sql, only);
  } finally {
    rmSync(only, { recursive: true, force: true });
  }
  let rows = 0;
  await sql.begin(async (tx) => {
    for (const p of m.partitions) {
      // a parent sorts before its own partitions (their names extend it: logs_pYYYYMMDD, logs_pYYYYMMDD_hHH)
      await tx.unsafe(`create table if not exists ${ident(p.name)} partition of ${ident(p.parent)} ${p.bound}${p.partitionBy ? ` partition by ${p.partitionBy}` : ""}`);
    }
    await tx.unsafe("set local session_replication_role = replica");
    // migrations seed some rows (built-in roles, settings): the dump's rows replace them
    if (m.tables.length) await tx.unsafe(`truncate ${m.tables.map((t) => ident(t.name)).join(", ")}`);
    for (const t of m.tables) {
      const w = await tx.unsafe(`copy ${ident(t.name)} (${t.columns.map(ident).join(", ")}) from stdin`).writable();
      await pipeline(createReadStream(join(dir, t.file)), w);
      rows += t.rows;
    }
    for (const s of m.sequences) await tx`select setval(${ident(s.name)}::regclass, ${s.lastValue}::bigint, true)`;
  });
  return { tables: m.tables.length, rows };
}

