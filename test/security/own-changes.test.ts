/**
 * FIM events caused by ServerMind's own operations (issue #17 item 3), on a real PostgreSQL: an
 * applied remediation, its rollback and a file operation are recorded as the console records
 * them, the FIM events their changes cause are attributed to them (score inputs, FIM list,
 * incident signals), and changes nobody here made, or made long after, still count.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../support/db.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { findHost, type ScopedHost } from "../../src/store/postgres/queries-console.ts";
import { loadScoreInputs, scoreHost } from "../../src/security/score.ts";
import { recentFimEvents } from "../../src/security/fim.ts";
import { gatherSignals } from "../../src/security/incidents.ts";

let db: TestDb;
let host: ScopedHost;
const now = Date.now();
const at = (msAgo: number) => new Date(now - msAgo);

beforeAll(async () => {
  db = await testDatabase();
  const { sql } = db;
  const [a] = await sql`insert into agents (hostname, public_key, last_seen) values ('db-3', ${Buffer.alloc(32, 3)}, now()) returning id`;
  host = (await findHost(sql, HostScope.system("test"), Number(a!.id)))!;
  const cmd = (id: string, action: string, args: object, result: object, msAgo: number, status = "ok") =>
    sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at, status, result)
      values (${id}, ${host.id}, ${action}, ${sql.json(args as never)}, 'user:3 rita', ${at(msAgo)}, ${status}, ${sql.json(result as never)})`;
  // an applied remediation 10 minutes ago, its rollback 5 minutes ago, a dry run 3 minutes ago
  await cmd("c-apply", "cis.remediate", { controls: ["smx.files.passwd"], dryRun: false }, { ok: true, changes: [{ path: "/etc/passwd" }], snapshot: "s1" }, 600_000);
  await cmd("c-rollback", "cis.rollback", { snapshot: "s1" }, { ok: true, restored: ["/etc/passwd"] }, 300_000);
  await cmd("c-dry", "cis.remediate", { controls: ["smx.ssh.root-login"], dryRun: true }, { ok: true, changes: [{ path: "/etc/ssh/sshd_config" }] }, 180_000);
  // a file write 2 minutes ago (file_operations, as src/operations/files.ts records it)
  await sql`insert into file_operations (agent_id, command_id, ts, actor, op, path, success) values (${host.id}, 'c-write', ${at(120_000)}, 'user:3 rita', 'write', '/etc/motd', true)`;
  const fim = (type: string, path: string, msAgo: number, severity = 8) =>
    sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data) values (${host.id}, 1, ${at(msAgo)}, ${type}, ${severity}, ${path}, ${sql.json({ changes: ["mode"] })})`;
  await fim("fim.permission", "/etc/passwd", 600_000 - 2_000); // the remediation's change
  await fim("fim.permission", "/etc/passwd", 300_000 - 1_500); // the rollback's
  await fim("fim.modify", "/etc/motd", 120_000 - 800); // the file write's
  await fim("fim.modify", "/etc/ssh/sshd_config", 180_000 - 1_000); // a dry run changes nothing: someone else did this
  await fim("fim.modify", "/etc/shadow", 60_000); // nobody here touched it
  await fim("fim.permission", "/etc/passwd", 30 * 60_000); // /etc/passwd, but 20 minutes before any operation
});

afterAll(async () => {
  await db?.drop();
});

test("changes made by remediation, rollback and file operations do not lower the integrity score; the others do", async () => {
  const inputs = await loadScoreInputs(db.sql, host, now);
  expect(inputs.fim.length).toBe(3); // sshd_config, shadow, the early passwd change
  const score = await scoreHost(db.sql, host, now);
  expect(score.categories.integrity.detail).toBe("3 unexplained file changes in 7 days");
});

test("the FIM list and the incident signals name the operation and who ran it", async () => {
  const rows = await recentFimEvents(db.sql, host, at(3600_000));
  const own = rows.filter((r) => r.own_change).map((r) => `${r.path} ${r.own_change}`).sort();
  expect(own).toEqual([
    "/etc/motd file write by user:3 rita",
    "/etc/passwd remediation by user:3 rita",
    "/etc/passwd remediation rollback by user:3 rita",
  ]);
  expect(rows.filter((r) => !r.own_change).map((r) => r.path).sort()).toEqual(["/etc/passwd", "/etc/shadow", "/etc/ssh/sshd_config"]);
  const signals = await gatherSignals(db.sql, host, { fromMs: now - 3600_000, toMs: now + 1000 });
  expect(signals.filter((s) => s.kind === "fim" && s.summary.includes("(ServerMind: ")).length).toBe(3);
});
