import { afterAll, beforeAll, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase, type TestDb } from "../support/db.ts";
import { makeCisRoot } from "../support/cis-root.ts";
import { runAutoRemediation } from "../../src/security/auto-remediate.ts";
import { recordScan } from "../../src/security/posture.ts";
import type { SecurityAuditEvent } from "../../src/security/issue.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { consoleHarness } from "../support/console-app.ts";
import { createRemediator } from "../../agent/control/remediate/executor.ts";
import { scanRoot } from "../../agent/monitor/cis/scan.ts";

let db: TestDb;
const key = generateKeyPairSync("ed25519");
const roots: Record<number, string> = {};
const dirs: string[] = [];
const audits: SecurityAuditEvent[] = [];
const SYSTEM = HostScope.system("auto-remediation test");

beforeAll(async () => {
  db = await testDatabase(2);
}, 30_000);
afterAll(async () => {
  await db.drop();
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

async function host(name: string, tags: string[]) {
  const [a] = await db.sql`insert into agents (hostname, public_key, tags) values (${name}, ${Buffer.alloc(32, name.length + tags.length)}, ${tags}) returning id`;
  const id = Number(a.id);
  roots[id] = makeCisRoot("bad");
  dirs.push(roots[id]);
  await scan(id);
  return id;
}

const scan = (id: number) => recordScan(db.sql, id, new Date(), scanRoot(roots[id], { runtime: false }) as any);

test("auto-remediation runs once per violation, only on hosts of the enabled group", async () => {
  const prod = await host("prod-1", ["prod"]);
  const dev = await host("dev-1", ["dev"]);
  const snapDir = mkdtempSync(join(tmpdir(), "servermind-auto-snap-"));
  dirs.push(snapDir);
  const executors = Object.fromEntries([prod, dev].map((id) => [id, createRemediator({ root: roots[id], snapshotDir: snapDir, publicKey: key.publicKey, agentId: id })]));
  const deps = {
    sql: db.sql,
    audit: (e: SecurityAuditEvent) => void audits.push(e),
    commandKey: key.privateKey,
    dispatch: async (id: number, cmd: any) => executors[id].execute(cmd),
  };
  const h = await consoleHarness(db, { security: deps });
  const carol = await h.userWith(["compliance.policies.edit"], "carol");
  await h.reauth(carol);
  const enable = (body: object) => h.send("/api/security/auto-remediation", { session: carol, json: body });
  expect((await enable({ control: "smx.files.passwd", hostGroup: "prod", enabled: true })).status).toBe(403); // dangerous: needs the phrase
  expect((await enable({ control: "smx.files.passwd", hostGroup: "prod", enabled: true, confirm: "auto-remediate smx.files.passwd" })).status).toBe(200);
  await h.close();

  const first = await runAutoRemediation(deps, SYSTEM);
  expect(first).toEqual([{ agentId: prod, controls: ["smx.files.passwd"], ok: true }]);
  expect(statSync(join(roots[prod], "etc/passwd")).mode & 0o777).toBe(0o644);
  expect(statSync(join(roots[dev], "etc/passwd")).mode & 0o777).toBe(0o666); // not in the group
  expect(await runAutoRemediation(deps, SYSTEM)).toEqual([]); // once per violation, even before the next scan
  await scan(prod);
  const [v] = await db.sql`select resolved_by from cis_violations where agent_id = ${prod} and control_id = 'smx.files.passwd'`;
  expect(v.resolved_by).toBe("remediation by system:auto-remediation auto-remediation");
  expect(audits.map((a) => [a.actor.type, a.action, a.success])).toEqual([["system", "cis.remediate", true]]);
  const [set] = await db.sql`select actor_name, success from audit_log where action = 'cis.auto-remediation.set'`;
  expect(set).toEqual({ actor_name: "carol", success: true });
}, 30_000);
