/**
 * Issue 12, finding 5: the audit chain must not be quietly rewritable by the database owner.
 * Each case edits rows as the owner (triggers bypassed), re-hashes what follows with plain
 * SHA-256 and/or deletes the newest rows, then checks that `audit:verify` catches it online
 * (exit 1) and offline from an export with only the public key (exit 1), while an untouched
 * chain verifies (exit 0) both ways.
 */
import { test, expect, afterAll, beforeAll } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sql } from "postgres";
import { testDatabase, type TestDb } from "../support/db.ts";
import { audit, recordHash, type AuditRecord } from "../../src/audit/audit.ts";
import { verifyAuditChain } from "../../src/audit/verify.ts";
import { auditKeys, loadAuditKeys, useAuditKeys } from "../../src/audit/keys.ts";
import { runAuditCli } from "../../src/audit/cli.ts";
import { exportChain, verifyChainExport } from "../../src/audit/chain-export.ts";

const dataDir = mkdtempSync(join(tmpdir(), "servermind-audit-"));
const testKeys = auditKeys();
const keys = loadAuditKeys(dataDir);
const pubFile = join(dataDir, "secrets", "audit-checkpoint.pub");
let envBefore: Record<string, string | undefined>;

beforeAll(() => {
  envBefore = { ...process.env };
  useAuditKeys(keys, dataDir);
  process.env.SERVERMIND_AUDIT_CHECKPOINT_EVERY = "10";
  process.env.SERVERMIND_DATA = dataDir;
});
afterAll(() => {
  useAuditKeys(testKeys);
  for (const k of ["SERVERMIND_AUDIT_CHECKPOINT_EVERY", "SERVERMIND_DATA", "DATABASE_URL"]) {
    if (envBefore[k] === undefined) delete process.env[k];
    else process.env[k] = envBefore[k];
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const ev = (i: number) => ({
  actor: { type: "user" as const, id: 7, name: "alice" }, ip: "198.51.100.4", userAgent: "UA/1.0",
  category: "user_management" as const, action: `users.edit.${i}`, target: `user ${i}`, success: true, details: { i },
});

/**
 * A fresh database with 35 records: checkpoints at 10, 20 and 30, records 31..35 unpinned. Like
 * a server, each database gets its own data directory (same keys), so its own checkpoint log.
 */
async function chain(): Promise<TestDb> {
  const db = await testDatabase(2);
  const dir = mkdtempSync(join(dataDir, "node-"));
  cpSync(join(dataDir, "secrets"), join(dir, "secrets"), { recursive: true });
  useAuditKeys(keys, dir);
  process.env.SERVERMIND_DATA = dir;
  for (let i = 1; i <= 35; i++) await audit(db.sql, ev(i));
  return db;
}

async function asOwner(sql: Sql, fn: (tx: Sql) => Promise<unknown>) {
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`; // bypasses the append-only triggers
    await fn(tx as unknown as Sql);
  });
}

/** Re-computes every hash from `fromId` on with plain SHA-256, so the links all match again. */
async function rehashPlain(tx: Sql, fromId: number, setAlg?: number) {
  const rows = await tx<AuditRecord[]>`select * from audit_log where id >= ${fromId} order by id`;
  let prev: Uint8Array = rows[0]!.prev_hash;
  for (const r of rows) {
    const h = recordHash(prev, Number(r.id), { ...r, ts: new Date(r.ts) });
    await tx`update audit_log set prev_hash = ${prev}, hash = ${h}, alg = ${setAlg ?? r.alg} where id = ${r.id}`;
    prev = h;
  }
}

async function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const log = console.log, err = console.error;
  console.log = () => {};
  console.error = () => {};
  try {
    return await fn();
  } finally {
    console.log = log;
    console.error = err;
  }
}

async function exportTo(db: TestDb): Promise<string> {
  const file = join(dataDir, `export-${Date.now()}-${Math.random().toString(36).slice(2)}.ndjson`);
  writeFileSync(file, await new Response(exportChain(db.sql)).text());
  return file;
}

/** Online CLI, offline CLI from an export (public key only): both exit codes. */
async function verdicts(db: TestDb): Promise<{ online: number; offline: number }> {
  process.env.DATABASE_URL = db.url;
  const online = await quiet(() => runAuditCli(["verify"]));
  useAuditKeys(keys, process.env.SERVERMIND_DATA); // the CLI loaded the same keys from there
  const file = await exportTo(db);
  const offline = await quiet(() => runAuditCli(["verify", "--export", file, "--public-key", pubFile]));
  return { online, offline };
}

test("keys live outside PostgreSQL, in 0600 files under <data>/secrets; the public key is readable", () => {
  expect(statSync(join(dataDir, "secrets", "audit-hmac.key")).mode & 0o777).toBe(0o600);
  expect(statSync(join(dataDir, "secrets", "audit-checkpoint.key")).mode & 0o777).toBe(0o600);
  expect(readFileSync(pubFile, "utf8")).toStartWith("-----BEGIN PUBLIC KEY-----");
  // loading again keeps the same keys
  expect(loadAuditKeys(dataDir).hmacKey.equals(keys.hmacKey)).toBe(true);
});

test("an untouched chain verifies online and offline; checkpoints are signed every 10 records and logged outside the database", async () => {
  const db = await chain();
  try {
    const cps = await db.sql`select seq, from_seq from audit_checkpoints order by seq`;
    expect(cps.map((c) => [Number(c.seq), Number(c.from_seq)])).toEqual([[10, 0], [20, 10], [30, 20]]);
    const logged = readFileSync(join(process.env.SERVERMIND_DATA!, "audit", "checkpoints.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(logged.map((c) => c.seq)).toEqual([10, 20, 30]);
    const r = await verifyAuditChain(db.sql);
    expect(r).toMatchObject({ ok: true, checked: 35, checkpoints: 3, unpinned: 5, keyed: true });
    expect(await verdicts(db)).toEqual({ online: 0, offline: 0 });
    const off = await verifyChainExport(await exportTo(db), keys.publicKeyPem);
    expect(off).toMatchObject({ ok: true, checked: 35, checkpoints: 3, keyed: false });
    expect(await verifyChainExport(await exportTo(db), keys.publicKeyPem, keys.hmacKey)).toMatchObject({ ok: true, keyed: true });
    // the CLI's own export (npm run audit:export) verifies the same way
    const out = join(process.env.SERVERMIND_DATA!, "cli-export.ndjson");
    expect(await quiet(() => runAuditCli(["export", "--out", out]))).toBe(0);
    useAuditKeys(keys, process.env.SERVERMIND_DATA);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(await verifyChainExport(out, readFileSync(pubFile, "utf8"))).toMatchObject({ ok: true, checked: 35, checkpoints: 3 });
  } finally {
    await db.drop();
  }
}, 30_000);

test("the issue's attack: edit a row as the owner, re-hash every later row with plain SHA-256, delete the newest: detected online and offline", async () => {
  const db = await chain();
  try {
    await asOwner(db.sql, async (tx) => {
      await tx`update audit_log set actor_name = 'mallory', details = '{"i": 999}' where id = 15`;
      await rehashPlain(tx, 15);
      await tx`delete from audit_log where id > 32`;
    });
    const r = await verifyAuditChain(db.sql);
    expect(r.ok).toBe(false);
    expect(r.brokenAt!.id).toBe(15);
    const off = await verifyChainExport(await exportTo(db), keys.publicKeyPem);
    expect(off.ok).toBe(false);
    expect(off.brokenAt!.reason).toContain("signed");
    expect(await verdicts(db)).toEqual({ online: 1, offline: 1 });
  } finally {
    await db.drop();
  }
}, 30_000);

test("re-hashing as legacy (alg 0) rows is refused: no unkeyed record after the keyed chain started", async () => {
  const db = await chain();
  try {
    await asOwner(db.sql, async (tx) => {
      await tx`update audit_log set target = 'someone else' where id = 12`;
      await rehashPlain(tx, 1, 0); // the whole chain, as if it had never been keyed
    });
    const r = await verifyAuditChain(db.sql);
    expect(r.ok).toBe(false);
    expect(await verdicts(db)).toEqual({ online: 1, offline: 1 });
  } finally {
    await db.drop();
  }
}, 30_000);

test("a content edit that keeps the stored hash is caught offline without the HMAC key (signed segment digest)", async () => {
  const db = await chain();
  try {
    await asOwner(db.sql, (tx) => tx`update audit_log set success = false where id = 23`);
    expect((await verifyAuditChain(db.sql)).brokenAt).toEqual({ id: 23, reason: "record content does not match its keyed hash" });
    const off = await verifyChainExport(await exportTo(db), keys.publicKeyPem);
    expect(off.ok).toBe(false);
    expect(off.brokenAt!.reason).toContain("digest");
  } finally {
    await db.drop();
  }
}, 30_000);

test("deleting the tail past a checkpoint, and that checkpoint's row too, is caught from the log outside PostgreSQL", async () => {
  const db = await chain();
  try {
    await asOwner(db.sql, async (tx) => {
      await tx`delete from audit_log where id > 25`;
      await tx`delete from audit_checkpoints where seq > 20`;
    });
    const r = await verifyAuditChain(db.sql);
    expect(r.ok).toBe(false);
    expect(r.brokenAt!.reason).toContain("removed from the end");
    expect(await verdicts(db)).toEqual({ online: 1, offline: 1 });
  } finally {
    await db.drop();
  }
}, 30_000);

test("a forged checkpoint (signed with another key) is refused", async () => {
  const db = await chain();
  try {
    const other = loadAuditKeys(mkdtempSync(join(dataDir, "other-"))); // under dataDir: removed with it
    const file = await exportTo(db);
    expect((await verifyChainExport(file, other.publicKeyPem)).brokenAt!.reason).toContain("does not verify with the checkpoint public key");
  } finally {
    await db.drop();
  }
}, 30_000);

test("rows from before migration 410 keep their plain hashes; the keyed chain starts after them and pins them", async () => {
  const db = await testDatabase(2);
  const dir = mkdtempSync(join(dataDir, "node-"));
  useAuditKeys(keys, dir);
  try {
    // three legacy rows, written as the old code did (alg 0, plain SHA-256)
    let prev: Uint8Array = new Uint8Array(32);
    for (let id = 1; id <= 3; id++) {
      const [{ n }] = await db.sql`select nextval(pg_get_serial_sequence('audit_log', 'id'))::bigint as n`;
      const r = { ts: new Date(Date.UTC(2026, 0, id)), actor_type: "system" as const, actor_id: "", actor_name: "old", on_behalf_of: "", ip: "", user_agent: "",
        category: "config_change" as const, action: `legacy.${id}`, target: "", success: true, details: {} };
      const h = recordHash(prev, Number(n), r);
      await db.sql`insert into audit_log (id, ts, actor_type, actor_name, category, action, success, prev_hash, hash) overriding system value
        values (${n}, ${r.ts}, 'system', 'old', 'config_change', ${r.action}, true, ${prev}, ${h})`;
      prev = h;
    }
    for (let i = 1; i <= 12; i++) await audit(db.sql, ev(i));
    const [cp] = await db.sql`select seq, from_seq, keyed_from from audit_checkpoints`;
    expect([Number(cp!.seq), Number(cp!.from_seq), Number(cp!.keyed_from)]).toEqual([13, 3, 4]);
    expect(await verifyAuditChain(db.sql)).toMatchObject({ ok: true, checked: 15, checkpoints: 1 });
    expect((await verifyChainExport(await exportTo(db), keys.publicKeyPem)).ok).toBe(true);
    // the first keyed segment starts after the legacy rows and is digested offline too
    await asOwner(db.sql, (tx) => tx`update audit_log set target = 'edited' where id = 5`);
    expect((await verifyChainExport(await exportTo(db), keys.publicKeyPem)).brokenAt!.reason).toContain("digest");
    await asOwner(db.sql, (tx) => tx`update audit_log set target = 'user 2' where id = 5`);
    expect((await verifyChainExport(await exportTo(db), keys.publicKeyPem)).ok).toBe(true);
    // rewriting the legacy part breaks the first keyed record's (signed) link
    await asOwner(db.sql, async (tx) => {
      await tx`update audit_log set actor_name = 'mallory' where id = 2`;
      await rehashPlain(tx, 2);
    });
    expect((await verifyAuditChain(db.sql)).ok).toBe(false);
    expect((await verifyChainExport(await exportTo(db), keys.publicKeyPem)).ok).toBe(false);
  } finally {
    await db.drop();
  }
}, 30_000);

test("deleting the oldest records and moving the anchor like a purge is caught while they are younger than the shortest retention", async () => {
  const db = await chain();
  try {
    await asOwner(db.sql, async (tx) => {
      const [next] = await tx`select id, prev_hash from audit_log where id = 16`;
      await tx`delete from audit_log where id <= 15`;
      await tx`update audit_anchor set first_id = 16, prev_hash = ${next!.prev_hash}`;
    });
    const r = await verifyAuditChain(db.sql);
    expect(r.ok).toBe(false);
    expect(r.brokenAt!.reason).toContain("no retention purge deletes records younger than 30 days");
    expect(await verdicts(db)).toEqual({ online: 1, offline: 1 });
    // the same chain 31 days from now is what a real purge leaves: it verifies
    const { createChainChecker, loadCheckpoints } = await import("../../src/audit/verify.ts");
    const [a] = await db.sql`select first_id, prev_hash from audit_anchor`;
    const later = createChainChecker({ first_id: Number(a!.first_id), prev_hash: a!.prev_hash }, await loadCheckpoints(db.sql), keys.publicKey, keys.hmacKey, new Date(Date.now() + 31 * 86400_000));
    for (const row of await db.sql<AuditRecord[]>`select * from audit_log order by id`) later.add({ ...row, ts: new Date(row.ts) });
    expect(later.finish()).toMatchObject({ ok: true, checked: 20, checkpoints: 2 });
  } finally {
    await db.drop();
  }
}, 30_000);
