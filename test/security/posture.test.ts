/**
 * Recording a CIS scan against a real PostgreSQL: a scan that names one control twice (a
 * buggy or hostile agent) is recorded with the last verdict instead of failing the whole scan
 * (which left the posture consumer stuck on that event for good).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { recordScan } from "../../src/security/posture.ts";
import { testDatabase, type TestDb } from "../support/db.ts";

let db: TestDb;
let agentId: number;
beforeAll(async () => {
  db = await testDatabase(2);
  const [a] = await db.sql`insert into agents (hostname, public_key) values ('dup-scan', ${Buffer.alloc(32, 7)}) returning id`;
  agentId = Number(a!.id);
});
afterAll(async () => {
  await db.drop();
});

test("a scan naming a control twice is recorded with its last verdict", async () => {
  const at = new Date(Date.now() - 60_000);
  const out = await recordScan(db.sql, agentId, at, {
    results: [
      { id: "smx.ssh.root-login", status: "pass", severity: 8, category: "ssh", observed: "no" },
      { id: "smx.files.passwd", status: "fail", severity: 6, category: "files", observed: "0666" },
      { id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "yes" },
    ],
  });
  expect(out.opened).toBe(2);
  const rows = await db.sql`select control_id, status, observed from cis_results where agent_id = ${agentId} order by control_id`;
  expect(rows.map((r) => [r.control_id, r.status, r.observed])).toEqual([
    ["smx.files.passwd", "fail", "0666"],
    ["smx.ssh.root-login", "fail", "yes"],
  ]);
  const [scan] = await db.sql`select passed, failed from cis_scans where agent_id = ${agentId}`;
  expect([scan!.passed, scan!.failed]).toEqual([0, 2]);
});
