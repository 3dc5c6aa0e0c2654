/**
 * The security API (/api/security/*) through the console's one guard over a real PostgreSQL,
 * with a real remediation executor behind the command channel: permissions, scan results to
 * posture, remediation with confirmation, rollback, incidents.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCisRoot } from "../support/cis-root.ts";
import { consoleHarness, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { consoleRoutes } from "../../src/web/plugin.ts";
import { consumeScanEvents } from "../../src/security/posture.ts";
import { createRemediator } from "../../agent/control/remediate/executor.ts";
import { scanEvent, scanRoot } from "../../agent/monitor/cis/scan.ts";

let h: ConsoleHarness;
let agentId: number;
let batch = 0;
const root = makeCisRoot("bad");
const snapDir = mkdtempSync(join(tmpdir(), "servermind-route-snap-"));
const key = generateKeyPairSync("ed25519");
const users: Record<string, TestSession> = {};
let remediator: ReturnType<typeof createRemediator>;
const apiRoutes = () => consoleRoutes(h.services).filter((r) => r.path.startsWith("/api/security/"));

async function postScan() {
  const e = scanEvent(scanRoot(root, { runtime: false }));
  await h.db.sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data) values (${agentId}, ${++batch}, ${new Date()}, ${e.type}, ${e.severity}, null, ${h.db.sql.json(e.data as any)})`;
  expect(await consumeScanEvents(h.db.sql)).toBe(1);
}

const call = (user: string | null, method: string, path: string, body?: Record<string, unknown>, htmx = false) =>
  h.send(path, { method, session: user ? users[user] : undefined, json: method === "POST" ? body ?? {} : undefined, headers: { "user-agent": "routes-test/1", ...(htmx ? { "hx-request": "true" } : {}) } });

beforeAll(async () => {
  h = await consoleHarness(undefined, {
    security: {
      commandKey: key.privateKey,
      dispatch: async (_id, cmd) => {
        if (cmd.action === "cis.scan") return { ok: true };
        const r = remediator.execute(JSON.parse(JSON.stringify(cmd))); // as it crosses the wire
        if (r.ok) await postScan(); // Monitor reports the effect with its next scan
        return r;
      },
    },
  });
  const [a] = await h.db.sql`insert into agents (hostname, public_key, tags, last_seen, status) values ('web-1', ${Buffer.alloc(32, 1)}, ${["prod"]}, now(), ${h.db.sql.json({ processes: { collector: "ok", monitor: "ok", control: "ok", platform: "ok" } })}) returning id`;
  agentId = Number(a!.id);
  remediator = createRemediator({ root, snapshotDir: snapDir, publicKey: key.publicKey, agentId });
  users.admin = await h.userWith([...new Set(apiRoutes().map((r) => r.access))], "alice");
  await h.reauth(users.admin);
  users.viewer = await h.userWith(["compliance.view"], "bob");
  users.nobody = await h.userWith([], "eve");
}, 30_000);

afterAll(async () => {
  await h.close();
  rmSync(root, { recursive: true, force: true });
  rmSync(snapDir, { recursive: true, force: true });
});

const audits = async () => h.db.sql`select actor_name, action, success, ip, user_agent from audit_log where action like 'cis.%' order by id`;

describe("security routes", () => {
  test("every route enforces its permission (JSON refusal) and audits refusals", async () => {
    expect(apiRoutes().length).toBe(14);
    for (const r of apiRoutes()) {
      const path = r.path.replace(":id", String(agentId));
      const anon = await call(null, r.method, path);
      expect({ path, status: anon.status, to: anon.headers.get("location")?.split("?")[0] }).toEqual({ path, status: 303, to: "/login" });
      const res = await call("nobody", r.method, path);
      expect({ path, status: res.status }).toEqual({ path, status: 403 });
      expect(await res.json()).toEqual({ error: { code: "forbidden", message: `this needs the ${r.access} permission` } });
      const [last] = await h.db.sql`select action, success, details from audit_log order by id desc limit 1`;
      expect(last).toMatchObject({ action: "access.denied", success: false, details: { permission: r.access } });
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
    expect(row).toContain(`by alice (${users.admin!.userId})`);
    expect(row).not.toContain("<script>");
    expect(row).toContain("&lt;script&gt;known test host&lt;/script&gt;");
    const csv = await (await call("admin", "GET", "/api/security/posture/export?format=csv")).text();
    expect(csv.split("\n")[0]).toStartWith("id,hostname,agent_id,control_id");
    expect(csv).toContain('"smx.accounts.uid0"');
    expect(csv).toContain(`"alice (${users.admin!.userId})"`);
  });

  test("remediation: dry run, confirmation, signed apply, verify, rollback, verify; all audited", async () => {
    const controls = ["smx.ssh.root-login", "smx.files.passwd", "smx.sysctl.net.ipv4.ip_forward"];
    const dry = (await (await call("admin", "POST", `/api/security/hosts/${agentId}/remediate`, { controls })).json()) as any;
    expect(dry.result).toMatchObject({ ok: true, dryRun: true });
    expect(dry.result.changes.map((c: any) => c.path)).toEqual(["/etc/passwd", "/etc/ssh/sshd_config", "/etc/sysctl.d/99-sysctl.conf"]);

    const unconfirmed = await call("admin", "POST", `/api/security/hosts/${agentId}/remediate`, { controls, dryRun: false });
    expect(unconfirmed.status).toBe(403);
    expect(await unconfirmed.json()).toEqual({ error: { code: "confirmation_required", message: "Type remediate web-1 exactly to confirm this action." } });

    const applied = (await (await call("admin", "POST", `/api/security/hosts/${agentId}/remediate`, { controls, dryRun: false, confirm: "remediate web-1" })).json()) as any;
    expect(applied.result.ok).toBe(true);
    for (const c of controls) expect(applied.result.verdicts[c]).toBe("pass");
    const open = (await (await call("viewer", "GET", `/api/security/posture/violations?agent=${agentId}`)).json()) as any;
    for (const c of controls) expect(open.violations.find((x: any) => x.control_id === c)).toMatchObject({ resolved_by: `remediation by user:${users.admin!.userId} alice` });

    const rb = (await (await call("admin", "POST", `/api/security/hosts/${agentId}/rollback`, { snapshot: applied.result.snapshot, confirm: `rollback web-1` })).json()) as any;
    expect(rb.result.ok).toBe(true);
    for (const c of controls) expect(rb.result.verdicts[c]).toBe("fail");
    const again = (await (await call("viewer", "GET", `/api/security/posture/violations?agent=${agentId}&open=true`)).json()) as any;
    for (const c of controls) expect(again.violations.map((x: any) => x.control_id)).toContain(c); // reopened as new violations

    const acts = (await audits()).filter((a) => a.action.startsWith("cis.re") || a.action === "cis.rollback");
    expect(acts.map((a) => [a.action, a.success, a.actor_name])).toEqual([
      ["cis.remediate.dry-run", true, "alice"],
      ["cis.remediate", true, "alice"],
      ["cis.rollback", true, "alice"],
    ]);
    // the console's request context: the client's address and user agent are on every record
    for (const a of acts) expect({ ip: a.ip, ua: a.user_agent }).toEqual({ ip: "192.0.2.10", ua: "routes-test/1" });
    const cmds = await h.db.sql`select action, status, requested_by from security_commands where agent_id = ${agentId} order by issued_at`;
    expect(cmds.map((c) => [c.action, c.status])).toEqual([["cis.remediate", "ok"], ["cis.remediate", "ok"], ["cis.rollback", "ok"]]);
  });

  test("htmx form post: dry run returns the diff partial, escaped", async () => {
    const r = await h.send(`/api/security/hosts/${agentId}/remediate`, { session: users.admin, headers: { "hx-request": "true" }, form: { controls: "smx.ssh.root-login,smx.packages.no-telnetd", dryRun: "true" } });
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
    await h.db.sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data) values
      (${agentId}, ${++batch}, ${new Date(t)}, 'fim.modify', 8, '/etc/shadow', '{"changes":["content"]}'),
      (${agentId}, ${batch}, ${new Date(t - 3 * 3_600_000)}, 'fim.modify', 2, '/usr/bin/ls', '{"packageManager":{"via":"lock"}}')`;
    await h.db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message)
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
