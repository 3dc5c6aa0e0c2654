import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase, type TestDb } from "../support/db.ts";
import { makeCisRoot } from "../support/cis-root.ts";
import { SECURITY_ROUTES, securityPlugin, type Principal, type SecurityAuditEvent } from "../../src/security/routes.ts";
import { consumeScanEvents } from "../../src/security/posture.ts";
import { createRemediator } from "../../agent/control/remediate/executor.ts";
import { scanEvent, scanRoot } from "../../agent/monitor/cis/scan.ts";
import { consoleSecurityViews } from "../support/security-views.ts";

let db: TestDb;
let agentId: number;
let batch = 0;
const root = makeCisRoot("bad");
const snapDir = mkdtempSync(join(tmpdir(), "servermind-route-snap-"));
const key = generateKeyPairSync("ed25519");
const audits: SecurityAuditEvent[] = [];
const ALL = new Set(SECURITY_ROUTES.map((r) => r.permission));
const users: Record<string, Principal> = {
  admin: { id: 1, name: "alice", permissions: ALL },
  viewer: { id: 2, name: "bob", permissions: new Set(["compliance.view"]) },
  nobody: { id: 3, name: "eve", permissions: new Set() },
};
let remediator: ReturnType<typeof createRemediator>;
let app: ReturnType<typeof securityPlugin>;

async function postScan() {
  const e = scanEvent(scanRoot(root, { runtime: false }));
  await db.sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data) values (${agentId}, ${++batch}, ${new Date()}, ${e.type}, ${e.severity}, null, ${db.sql.json(e.data as any)})`;
  expect(await consumeScanEvents(db.sql)).toBe(1);
}

const call = (user: string | null, method: string, path: string, body?: unknown, htmx = false) =>
  app.handle(new Request(`http://127.0.0.1${path}`, { method, headers: { ...(user ? { "x-test-user": user } : {}), ...(body ? { "content-type": "application/json" } : {}), ...(htmx ? { "hx-request": "true" } : {}) }, body: body ? JSON.stringify(body) : undefined }));

beforeAll(async () => {
  db = await testDatabase(4);
  const [a] = await db.sql`insert into agents (hostname, public_key, tags, last_seen, status) values ('web-1', ${Buffer.alloc(32, 1)}, ${["prod"]}, now(), ${db.sql.json({ processes: { collector: "ok", monitor: "ok", control: "ok", platform: "ok" } })}) returning id`;
  agentId = Number(a.id);
  remediator = createRemediator({ root, snapshotDir: snapDir, publicKey: key.publicKey, agentId });
  app = securityPlugin({
    sql: db.sql,
    principal: async (r) => users[r.headers.get("x-test-user") ?? ""] ?? null,
    audit: (e) => void audits.push(e),
    commandKey: key.privateKey,
    views: consoleSecurityViews(),
    dispatch: async (_id, cmd) => {
      if (cmd.action === "cis.scan") return { ok: true };
      const r = remediator.execute(JSON.parse(JSON.stringify(cmd))); // as it crosses the wire
      if (r.ok) await postScan(); // Monitor reports the effect with its next scan
      return r;
    },
  });
}, 30_000);

afterAll(async () => {
  await db.drop();
  rmSync(root, { recursive: true, force: true });
  rmSync(snapDir, { recursive: true, force: true });
});

describe("security routes", () => {
  test("every route enforces its permission and audits refusals", async () => {
    for (const r of SECURITY_ROUTES) {
      const path = r.path.replace(":id", String(agentId));
      expect((await call(null, r.method, path, r.method === "POST" ? {} : undefined)).status).toBe(401);
      const before = audits.length;
      const res = await call("nobody", r.method, path, r.method === "POST" ? {} : undefined);
      expect({ path, status: res.status }).toEqual({ path, status: 403 });
      expect(audits.slice(before)).toEqual([expect.objectContaining({ action: "permission.denied", success: false, details: { permission: r.permission } })]);
    }
    expect((await call("viewer", "POST", `/api/security/hosts/${agentId}/remediate`, { controls: ["smx.files.passwd"] })).status).toBe(403);
  });

  test("scan results become violations, pass rates, score and export", async () => {
    await postScan();
    const v = (await (await call("viewer", "GET", `/api/security/posture/violations?agent=${agentId}&open=true`)).json()) as any;
    const ids = v.violations.map((x: any) => x.control_id);
    expect(ids).toContain("smx.ssh.root-login");
    expect(ids).toContain("smx.accounts.uid0");
    const rates = (await (await call("viewer", "GET", "/api/security/posture/controls")).json()) as any;
    expect(rates.controls.find((c: any) => c.control_id === "smx.files.passwd")).toMatchObject({ hosts: 1, passed: 0, failed: 1, pass_rate: 0 });
    const score = (await (await call("viewer", "GET", `/api/security/hosts/${agentId}/score`)).json()) as any;
    expect(score.score).toBeGreaterThanOrEqual(0);
    expect(score.score).toBeLessThan(70);
    expect(score.categories.config.score).toBeLessThan(60);
    expect(score.categories.agent.score).toBe(100);
    const card = await (await call("viewer", "GET", `/api/security/hosts/${agentId}/score`, undefined, true)).text();
    expect(card).toStartWith(`<section id="security-score-${agentId}"`);
    const trend = (await (await call("viewer", "GET", `/api/security/hosts/${agentId}/score/trend`)).json()) as any;
    expect(trend.points.length).toBe(2); // each computation is kept for the chart
    expect(trend.points[1][1]).toBe(score.score);
    const fleet = (await (await call("viewer", "GET", "/api/security/scores")).json()) as any;
    expect(fleet.hosts).toEqual([expect.objectContaining({ agent_id: agentId, hostname: "web-1", score: score.score })]);
    const svg = await (await call("viewer", "GET", `/api/security/hosts/${agentId}/score/trend`, undefined, true)).text();
    expect(svg).toStartWith(`<figure id="score-trend-${agentId}"`);
    expect(svg).toContain(`<path class="line s0"`); // the console's chart (src/web/chart/svg.ts)

    const target = v.violations.find((x: any) => x.control_id === "smx.accounts.uid0");
    const ack = await call("admin", "POST", `/api/security/posture/violations/${target.id}/ack`, { note: "<script>known test host</script>" }, true);
    const row = await ack.text();
    expect(row).toContain("by alice (1)");
    expect(row).not.toContain("<script>");
    expect(row).toContain("&lt;script&gt;known test host&lt;/script&gt;");
    const csv = await (await call("admin", "GET", "/api/security/posture/export?format=csv")).text();
    expect(csv.split("\n")[0]).toStartWith("id,hostname,agent_id,control_id");
    expect(csv).toContain('"smx.accounts.uid0"');
    expect(csv).toContain('"alice (1)"');
  });

  test("remediation: dry run, confirmation, signed apply, verify, rollback, verify; all audited", async () => {
    const controls = ["smx.ssh.root-login", "smx.files.passwd", "smx.sysctl.net.ipv4.ip_forward"];
    const dry = (await (await call("admin", "POST", `/api/security/hosts/${agentId}/remediate`, { controls })).json()) as any;
    expect(dry.result).toMatchObject({ ok: true, dryRun: true });
    expect(dry.result.changes.map((c: any) => c.path)).toEqual(["/etc/passwd", "/etc/ssh/sshd_config", "/etc/sysctl.d/99-sysctl.conf"]);

    const unconfirmed = await call("admin", "POST", `/api/security/hosts/${agentId}/remediate`, { controls, dryRun: false });
    expect(unconfirmed.status).toBe(428);
    expect(((await unconfirmed.json()) as any).error.phrase).toBe("remediate web-1");

    const applied = (await (await call("admin", "POST", `/api/security/hosts/${agentId}/remediate`, { controls, dryRun: false, confirm: "remediate web-1" })).json()) as any;
    expect(applied.result.ok).toBe(true);
    for (const c of controls) expect(applied.result.verdicts[c]).toBe("pass");
    const open = (await (await call("viewer", "GET", `/api/security/posture/violations?agent=${agentId}`)).json()) as any;
    for (const c of controls) expect(open.violations.find((x: any) => x.control_id === c)).toMatchObject({ resolved_by: "remediation by user:1 alice" });

    const rb = (await (await call("admin", "POST", `/api/security/hosts/${agentId}/rollback`, { snapshot: applied.result.snapshot, confirm: `rollback web-1` })).json()) as any;
    expect(rb.result.ok).toBe(true);
    for (const c of controls) expect(rb.result.verdicts[c]).toBe("fail");
    const again = (await (await call("viewer", "GET", `/api/security/posture/violations?agent=${agentId}&open=true`)).json()) as any;
    for (const c of controls) expect(again.violations.map((x: any) => x.control_id)).toContain(c); // reopened as new violations

    const acts = audits.filter((a) => a.action.startsWith("cis.re") || a.action === "cis.rollback").map((a) => [a.action, a.success, a.actor.name]);
    expect(acts).toEqual([
      ["cis.remediate.dry-run", true, "alice"],
      ["cis.remediate", true, "alice"],
      ["cis.rollback", true, "alice"],
    ]);
    const cmds = await db.sql`select action, status, requested_by from security_commands where agent_id = ${agentId} order by issued_at`;
    expect(cmds.map((c) => [c.action, c.status])).toEqual([["cis.remediate", "ok"], ["cis.remediate", "ok"], ["cis.rollback", "ok"]]);
  });

  test("htmx form post: dry run returns the diff partial, escaped", async () => {
    const r = await app.handle(new Request(`http://127.0.0.1/api/security/hosts/${agentId}/remediate`, { method: "POST", headers: { "x-test-user": "admin", "hx-request": "true", "content-type": "application/x-www-form-urlencoded" }, body: "controls=smx.ssh.root-login,smx.packages.no-telnetd&dryRun=true" }));
    const body = await r.text();
    expect(r.headers.get("content-type")).toContain("text/html");
    expect(body).toStartWith('<div id="remediation-result" class="remediation"><p>Dry run: nothing was changed.</p>');
    // the dry run carries the typed confirmation that applies exactly the planned controls
    expect(body).toContain('<input type="hidden" name="controls" value="smx.ssh.root-login,smx.packages.no-telnetd"><input type="hidden" name="dryRun" value="false">');
    expect(body).toContain('<strong class="phrase">remediate web-1</strong>');
    expect(body).toContain("+PermitRootLogin no");
    expect(body).toContain("Skipped: smx.packages.no-telnetd");
  });

  test("incidents correlate FIM, auth failures and new CIS failures on one timeline", async () => {
    const t = Date.now() - 60_000;
    await db.sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data) values
      (${agentId}, ${++batch}, ${new Date(t)}, 'fim.modify', 8, '/etc/shadow', '{"changes":["content"]}'),
      (${agentId}, ${batch}, ${new Date(t - 3 * 3_600_000)}, 'fim.modify', 2, '/usr/bin/ls', '{"packageManager":{"via":"lock"}}')`;
    await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message)
      select ${agentId}, ${++batch}, ${new Date(t - 120_000)}::timestamptz + make_interval(secs => g), 4, 'sshd', 'Failed password for root from 203.0.113.9 port 22 ssh2'
      from generate_series(1, 25) g`;
    const r = (await (await call("admin", "GET", `/api/security/hosts/${agentId}/incidents`)).json()) as any;
    const inc = r.incidents[0];
    expect(inc.kinds).toEqual(expect.arrayContaining(["auth", "fim", "cis"]));
    expect(inc.severity).toBeGreaterThanOrEqual(8);
    expect(inc.timeline.map((s: any) => s.ts)).toEqual([...inc.timeline.map((s: any) => s.ts)].sort((a: number, b: number) => a - b));
    // the package-manager change 3 h earlier stands alone at low severity: no incident
    expect(r.incidents.some((i: any) => i.timeline.some((s: any) => s.summary.includes("/usr/bin/ls")))).toBe(false);
    const partial = await (await call("admin", "GET", `/api/security/hosts/${agentId}/incidents`, undefined, true)).text();
    expect(partial).toContain(`id="incidents-${agentId}"`);
  });
});
