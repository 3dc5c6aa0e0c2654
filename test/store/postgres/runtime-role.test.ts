/**
 * Issue 12, finding 5: the server's database role may append to and read the audit trail, but
 * not change or remove it; rows leave only through the owner's retention function.
 */
import { test, expect, afterAll } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase } from "../../support/db.ts";
import { createPgClient } from "../../../src/store/postgres/client.ts";
import { audit, verifyAuditChain } from "../../../src/audit/audit.ts";
import { purgeAudit } from "../../../src/audit/retention.ts";
import { prepareRuntimeRole } from "../../../src/db.ts";
import { runtimeRoleName, withCredentials } from "../../../src/store/postgres/runtime-role.ts";

const db = await testDatabase(2);
const app = createPgClient(await db.runtimeUrl(), 2);
afterAll(async () => {
  await app.end();
  await db.drop();
});

const ev = (action: string) => ({ actor: { type: "system" as const, name: "test" }, category: "config_change" as const, action, success: true });

test("the runtime role is neither superuser nor owner and cannot escalate", async () => {
  const [me] = await app`select current_user as u, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls from pg_roles where rolname = current_user`;
  expect(me).toMatchObject({ rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolbypassrls: false });
  const [owner] = await app`select tableowner from pg_tables where tablename = 'audit_log'`;
  expect(owner!.tableowner).not.toBe(me!.u);
  await expect(app`set session_replication_role = replica`).rejects.toThrow(/permission denied/);
  await expect(app`alter table audit_log disable trigger all`).rejects.toThrow(/must be owner/);
});

test("as the runtime role, audit rows can be inserted and selected, but not updated, deleted or truncated", async () => {
  const rec = await audit(app, ev("role.append"));
  expect((await app`select action from audit_log where id = ${rec.id}`)[0]!.action).toBe("role.append");
  await expect(app`update audit_log set action = 'x' where id = ${rec.id}`).rejects.toThrow(/permission denied/);
  await expect(app`delete from audit_log where id = ${rec.id}`).rejects.toThrow(/permission denied/);
  await expect(app`truncate audit_log`).rejects.toThrow(/permission denied/);
  await expect(app`update audit_anchor set first_id = 99`).rejects.toThrow(/permission denied/);
  await expect(app`delete from audit_checkpoints`).rejects.toThrow(/permission denied/);
  await expect(app`truncate audit_checkpoints`).rejects.toThrow(/permission denied/);
  // the old bypass: a session setting that let the trigger allow DELETE
  await expect(app.begin(async (tx) => {
    await tx`select set_config('servermind.audit_purge', 'on', true)`;
    await tx`delete from audit_log`;
  })).rejects.toThrow(/permission denied/);
  expect((await verifyAuditChain(app)).ok).toBe(true);
});

test("the runtime role still does the application's work: ordinary tables are read and written", async () => {
  await app`insert into console_settings (key, value) values ('audit', ${app.json({ retentionDays: 30 })})
    on conflict (key) do update set value = excluded.value`;
  expect((await app`select value from console_settings where key = 'audit'`)[0]!.value).toEqual({ retentionDays: 30 });
});

test("retention purge runs as the runtime role through the owner's function, deletes only rows past the retention (never under 30 days) and is audited", async () => {
  for (let i = 0; i < 3; i++) await audit(app, ev(`old.${i}`));
  // age every row so far by 40 days: only the owner can, with triggers bypassed
  await db.sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`update audit_log set ts = ts - interval '40 days'`;
  });
  await audit(app, ev("recent"));
  // a runtime-role session asking for retention 0 still keeps 30 days
  await app`update console_settings set value = ${app.json({ retentionDays: 0 })} where key = 'audit'`;
  const deleted = await purgeAudit(app, { actor: { type: "user", id: 1, name: "admin" }, ip: "198.51.100.9", userAgent: "UA/2" });
  expect(deleted).toBe(4); // role.append + old.0..2 were "40 days" old
  const left = await app`select action, actor_name, ip, details from audit_log order by id`;
  expect(left.map((r) => r.action)).toEqual(["recent", "audit.purge"]);
  expect(left[1]).toMatchObject({ actor_name: "admin", ip: "198.51.100.9", details: { deleted: 4, retentionDays: 30 } });
  // the function moved the anchor to the oldest kept record, so the chain still verifies
  expect(Number((await app`select first_id from audit_anchor`)[0]!.first_id)).toBe(5);
  expect(await verifyAuditChain(app)).toMatchObject({ ok: true, checked: 2 });
});

test("prepareRuntimeRole creates a plain LOGIN role with a 0600 password file under <data>/secrets, idempotently", async () => {
  const dir = mkdtempSync(join(tmpdir(), "servermind-role-"));
  const other = await testDatabase(1);
  try {
    const first = await prepareRuntimeRole(other.sql, other.url, dir);
    const again = await prepareRuntimeRole(other.sql, other.url, dir);
    expect(again).toEqual(first);
    expect(first.role).toBe(runtimeRoleName(new URL(other.url).pathname.slice(1)));
    expect(statSync(join(dir, "secrets", "db-runtime.password")).mode & 0o777).toBe(0o600);
    const c = createPgClient(first.url, 1);
    try {
      expect((await c`select current_user as u`)[0]!.u).toBe(first.role);
      await expect(c`delete from audit_log`).rejects.toThrow(/permission denied/);
    } finally {
      await c.end();
    }
    await expect(prepareRuntimeRole(other.sql, other.url, dir, other.url)).rejects.toThrow(/owner connection's own role/);
    // DATABASE_RUNTIME_URL: an existing role of the operator's, granted by the owner at start
    const mine = new URL(await db.runtimeUrl());
    const own = withCredentials(other.url, decodeURIComponent(mine.username), decodeURIComponent(mine.password));
    expect(await prepareRuntimeRole(other.sql, other.url, dir, own)).toEqual({ url: own, role: decodeURIComponent(mine.username) });
    const c2 = createPgClient(own, 1);
    try {
      await audit(c2, ev("via.runtime.url"));
      await expect(c2`truncate audit_log`).rejects.toThrow(/permission denied/);
    } finally {
      await c2.end();
    }
  } finally {
    await other.drop();
    await other.sql.end().catch(() => {});
    const admin = createPgClient(db.url, 1);
    await admin.unsafe(`drop role if exists ${runtimeRoleName(new URL(other.url).pathname.slice(1))}`).catch(() => {});
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
});
