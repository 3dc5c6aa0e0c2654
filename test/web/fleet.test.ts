import { test, expect, afterAll } from "bun:test";
import { HostScope } from "../../src/auth/host-scope.ts";
import { consoleHarness } from "../support/console-app.ts";
import { FLEET_METRICS, fleetOverview } from "../../src/store/postgres/queries-console.ts";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TEST_PASSWORD } from "../support/console-app.ts";
import { PRE_CSRF_COOKIE } from "../../src/web/guard.ts";

const h = await consoleHarness();
afterAll(() => h.close());
const { sql } = h.db;
const ALL = HostScope.system("test");

async function agent(hostname: string, tags: string[], seenAgoS: number | null, latest?: Record<string, number>) {
  const [{ id }] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
    values (${hostname}, ${Buffer.alloc(32, hostname.length + tags.length + (seenAgoS ?? 7))}, ${tags}, '1.2.3', 'wss', 'linux', 'x64',
      ${seenAgoS === null ? null : new Date(Date.now() - seenAgoS * 1000)}) returning id`;
  if (latest) {
    await sql`insert into metric_latest (agent_id, ts, names, vals) values (${id}, now(), ${Object.keys(latest)}, ${Object.values(latest)})`;
  }
  return Number(id);
}

const web1 = await agent("web-1", ["env=prod", "group:web"], 5, { "cpu.usage_pct": 91.5, "mem.used_pct": 40, 'disk.used_pct{mount="/"}': 77 });
const db1 = await agent("db-1", ["env=prod"], 3600, { "cpu.usage_pct": 12.25, "mem.used_pct": 80 });
await agent("lab-1", ["env=lab"], null);

test("fleet overview: status, metrics at a glance, sort and search", async () => {
  const all = await fleetOverview(sql, ALL, { sort: "cpu", desc: true });
  expect(all.map((r) => [r.hostname, r.online, r.cpu])).toEqual([["web-1", true, 91.5], ["db-1", false, 12.25], ["lab-1", false, null]]);
  expect((await fleetOverview(sql, ALL, { search: "db" })).map((r) => r.hostname)).toEqual(["db-1"]);
  expect((await fleetOverview(sql, ALL, { search: "env=lab" })).map((r) => r.hostname)).toEqual(["lab-1"]);
  expect((await fleetOverview(sql, HostScope.forPermission([{ permissions: ["hosts.view"], tags: ["group:web"] }], "hosts.view"), {})).map((r) => r.hostname)).toEqual(["web-1"]);

  const admin = await h.userWithRole("admin");
  const page = await (await h.send("/hosts?sort=cpu&dir=desc", { session: admin })).text();
  expect(page).toContain('id="fleet-table"');
  expect(page).toContain('hx-trigger="every 10s"');
  expect(page.indexOf("web-1")).toBeLessThan(page.indexOf("db-1"));
  expect(page).toContain("91.5%");
  expect(page).toMatch(/<span class="n">1<\/span> online/);
  // htmx request aimed at the table gets only the partial
  const partial = await (await h.send("/hosts?q=web", { session: admin, headers: { "hx-request": "true", "hx-target": "fleet-table" } })).text();
  expect(partial.startsWith('<div id="fleet-table"')).toBe(true);
  expect(partial).not.toContain("<html");
  expect(partial).toContain("web-1");
  expect(partial).not.toContain("db-1");
});

test("a custom role scoped to a tag sees only those hosts, and its missing permissions refuse pages", async () => {
  const s = await h.userWith(["hosts.view", "metrics.view"]);
  await sql`update console_roles set scope_tags = ${["group:web"]} where name = ${`r-${s.username}`}`;
  const page = await (await h.send("/hosts", { session: s })).text();
  expect(page).toContain("web-1");
  expect(page).not.toContain("db-1");
  expect((await h.send(`/hosts/${db1}`, { session: s })).status).toBe(404);
  expect((await h.send(`/hosts/${web1}`, { session: s })).status).toBe(200);
  expect((await h.send(`/hosts/${web1}/logs`, { session: s })).status).toBe(403);
  expect((await h.send("/users", { session: s })).status).toBe(403);
  // the navigation shows only what the role allows
  expect(page).toContain('href="/hosts"');
  expect(page).not.toContain('href="/users"');
});

test("host detail serves the charts panel and its columnar data from metric_blocks over the chosen range, and live logs", async () => {
  const names = ["cpu.usage_pct", "mem.used_pct", "load.1"];
  const ids: number[] = [];
  for (const n of names) ids.push(Number((await sql`insert into metric_series (agent_id, name) values (${web1}, ${n}) returning id`)[0]!.id));
  const now = Date.now();
  // 12 frames of 10 timestamps, 10 s apart: series-major values
  for (let f = 0; f < 12; f++) {
    const t0 = now - 3000_000 + f * 100_000;
    const off = Array.from({ length: 10 }, (_, i) => i * 10_000);
    const vals: number[] = [];
    for (let s = 0; s < 3; s++) for (let t = 0; t < 10; t++) vals.push(s === 2 && t === 3 ? NaN : (s + 1) * 10 + t);
    await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (${web1}, ${f}, ${new Date(t0)}, ${new Date(t0 + 90_000)}, ${off}, ${ids}, ${vals})`;
  }

  const admin = await h.userWithRole("admin");
  const detail = await (await h.send(`/hosts/${web1}`, { session: admin })).text();
  expect(detail).toContain('hx-get="/hosts/' + web1 + '/charts?range=1h"');
  // the charts panel; assets/charts.js draws it from the columnar data (test/web/chart/data-route.test.ts)
  const charts = await (await h.send(`/hosts/${web1}/charts?range=1h`, { session: admin })).text();
  expect(charts).toContain(`data-src="/api/hosts/${web1}/charts"`);
  expect(charts).toContain('data-range="1h"');
  const data = await (await h.send(`/api/hosts/${web1}/charts?range=1h&width=600`, { session: admin })).json();
  expect(data.charts.map((c: { id: string }) => c.id)).toEqual(["cpu", "mem", "load"]);
  expect(data.charts[0].series[0].values.filter((v: number | null) => v !== null).length).toBeGreaterThan(50);
  const empty = await (await h.send(`/api/hosts/${web1}/charts?range=15m`, { session: admin })).json();
  expect(empty.charts.every((c: { t: number[] }) => c.t.length === 0)).toBe(true);

  await sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values
    (${web1}, 1, now() - interval '1 minute', 3, 'sshd', 'Failed password for root'),
    (${web1}, 1, now(), 6, 'cron', 'job started')`;
  const logs = await (await h.send(`/hosts/${web1}/logs?q=failed`, { session: admin })).text();
  expect(logs).toContain("Failed password for root");
  expect(logs).not.toContain("job started");
  expect(logs).toContain('hx-trigger="every 5s"');
  const errOnly = await (await h.send(`/hosts/${web1}/logs?severity=3`, { session: admin, headers: { "hx-request": "true", "hx-target": "logs-table" } })).text();
  expect(errOnly.startsWith('<div id="logs-table"')).toBe(true);
  expect(errOnly).toContain("sshd");
  expect(errOnly).not.toContain("cron");
});

test("inventory and agent processes render from inventory_current and agents.status", async () => {
  await sql`insert into inventory_current (agent_id, collected_at, hash, data) values (${web1}, now(), ${Buffer.alloc(32)},
    ${sql.json({ os: { name: "Debian", version: "13" }, packages: [{ name: "openssl", version: "3.5.1" }, { name: "bash", version: "5.2" }], kernel: "6.12.0" })})`;
  await sql`update agents set status = ${sql.json({ processes: [{ name: "collector", pid: 4242, state: "running" }, { name: "shipper", pid: 4243, state: "running" }] })} where id = ${web1}`;
  const admin = await h.userWithRole("admin");
  const page = await (await h.send(`/hosts/${web1}`, { session: admin })).text();
  expect(page).toContain("openssl");
  expect(page).toContain("6.12.0");
  expect(page).toContain("Packages (2)");
  expect(page).toContain("4242");
  expect(page).toContain("shipper");
});

test("first-run setup needs the printed code, then closes", async () => {
  const h2 = await consoleHarness();
  try {
    expect(h2.setupCode).toMatch(/^[0-9A-F]{4}(-[0-9A-F]{4}){4}$/);
    expect(readFileSync(join(h2.dataDir, "setup-code"), "utf8").trim()).toBe(h2.setupCode!);
    const login = await h2.send("/login");
    expect(login.headers.get("location")).toBe("/setup");
    const page = await h2.send("/setup");
    const pre = /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie")!)![1]!;
    const post = (form: Record<string, string>) => h2.send("/setup", { form: { _csrf: pre, ...form }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}` } });
    const wrong = await post({ code: "0000-0000-0000-0000-0000", username: "root", password: TEST_PASSWORD, password2: TEST_PASSWORD });
    expect(wrong.status).toBe(403);
    const weak = await post({ code: h2.setupCode!, username: "root", password: "weak", password2: "weak" });
    expect(weak.status).toBe(422);
    const ok = await post({ code: h2.setupCode!.toLowerCase(), username: "root", password: TEST_PASSWORD, password2: TEST_PASSWORD });
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/account/mfa"); // TOTP enrolment next (test/web/signin.test.ts)
    expect(existsSync(join(h2.dataDir, "setup-code"))).toBe(false);
    const again = await post({ code: h2.setupCode!, username: "root2", password: TEST_PASSWORD, password2: TEST_PASSWORD });
    expect(again.status).toBe(409);
    const [u] = await h2.db.sql`select u.username, r.name from console_users u join user_roles ur on ur.user_id = u.id join console_roles r on r.id = ur.role_id`;
    expect(u).toMatchObject({ username: "root", name: "admin" });
    const acts = (await h2.db.sql`select action, success from audit_log order by id`).map((r) => `${r.action}:${r.success}`);
    expect(acts).toEqual(["setup.code_rejected:false", "setup.admin_created:true"]);
  } finally {
    await h2.close();
  }
});

test("hosts.edit sets a host's tags, which scope custom roles (host groups)", async () => {
  const admin = await h.userWithRole("admin");
  const bad = await h.send(`/hosts/${db1}/tags`, { session: admin, form: { tags: "ok, <bad>" }, headers: { "hx-request": "true" } });
  expect(bad.status).toBe(422);
  expect(await bad.text()).toContain("Bad tags: &lt;bad&gt;");
  expect((await h.send(`/hosts/${db1}/tags`, { session: admin, form: { tags: "env=prod, group:db" } })).status).toBe(303);
  const s = await h.userWith(["hosts.view"]);
  await sql`update console_roles set scope_tags = ${["group:db"]} where name = ${`r-${s.username}`}`;
  const page = await (await h.send("/hosts", { session: s })).text();
  expect(page).toContain("db-1");
  expect(page).not.toContain("web-1");
  const [rec] = await sql`select details from audit_log where action = 'hosts.tags'`;
  expect(rec!.details).toEqual({ before: ["env=prod"], after: ["env=prod", "group:db"] });
});

test("the fleet table pages through large fleets, counts the whole fleet, and shows all on request", async () => {
  await sql`insert into agents (hostname, public_key, last_seen)
    select 'bulk-' || lpad(g::text, 4, '0'), sha256(('bulk' || g)::bytea), now() from generate_series(1, 260) g`;
  const admin = await h.userWithRole("admin");
  const p1 = await (await h.send("/hosts?q=bulk", { session: admin })).text();
  expect((p1.match(/<tr class="host-\w+"><td><span class="dot/g) ?? []).length).toBe(250);
  expect(p1).toContain("Hosts 1–250 of 260");
  expect(p1).toMatch(/<span class="n">260<\/span> hosts/);
  expect(p1).toContain('href="/hosts?q=bulk&amp;sort=hostname&amp;dir=asc&amp;page=2"');
  const p2 = await (await h.send("/hosts?q=bulk&page=2", { session: admin, headers: { "hx-request": "true", "hx-target": "fleet-table" } })).text();
  expect((p2.match(/<tr class="host-\w+"><td><span class="dot/g) ?? []).length).toBe(10);
  expect(p2).toContain("Hosts 251–260 of 260");
  expect(p2).toContain("bulk-0260");
  expect(p2).toContain('hx-get="/hosts?q=bulk&amp;sort=hostname&amp;dir=asc&amp;page=2"'); // the poll keeps the page
  const all = await (await h.send("/hosts?q=bulk&per=all", { session: admin })).text();
  expect((all.match(/<tr class="host-\w+"><td><span class="dot/g) ?? []).length).toBe(260);
  expect(all).not.toContain("Hosts 1–");
  expect((await h.send("/hosts?page=-3&per=bogus", { session: admin })).status).toBe(200);
});

test("the fleet's CPU, memory and disk columns (migrations 545, 560) follow metric_latest as its trigger writes it: FLEET_METRICS names in any order, values-only updates, a missing value", async () => {
  const id = await agent("order-1", [], 200, { "x.other": 1, [FLEET_METRICS.disk]: 55, [FLEET_METRICS.mem]: 44, [FLEET_METRICS.cpu]: 33 });
  const row = async () => (await fleetOverview(sql, ALL, { search: "order-1" })).map((r) => [r.cpu, r.mem, r.disk])[0];
  expect(await row()).toEqual([33, 44, 55]);
  // the values alone, names unchanged (as the ingest flush often writes them); NaN is written as NULL
  await sql`update metric_latest set vals = '{2,NULL,66,11}'::float8[] where agent_id = ${id}`;
  expect(await row()).toEqual([11, 66, null]);
  await sql`update metric_latest set names = '{cpu.other}', vals = '{5}' where agent_id = ${id}`;
  expect(await row()).toEqual([null, null, null]);
  await sql`delete from metric_latest where agent_id = ${id}`;
  await sql`delete from agents where id = ${id}`;
});

test("the fleet page counts '1 host', and an empty fleet tells a newcomer where hosts come from", async () => {
  const scoped = async (perms: string[], tag: string) => {
    const s = await h.userWith(perms);
    await sql`update console_roles set scope_tags = ${[tag]} where name = ${`r-${s.username}`}`;
    return s;
  };
  const one = await (await h.send("/hosts", { session: await scoped(["hosts.view"], "group:web") })).text();
  expect(one).toMatch(/<span class="n">1<\/span> host<\/div>/);
  expect((await (await h.send("/hosts", { session: await h.userWithRole("admin") })).text())).toMatch(/<span class="n">(?!1<)\d+<\/span> hosts<\/div>/);

  // nothing in scope yet: where hosts come from, with the way to add them for who may
  const enroller = await (await h.send("/hosts", { session: await scoped(["hosts.view", "agents.enroll"], "group:none") })).text();
  expect(enroller).toContain("No hosts here yet.");
  expect(enroller).toContain('<a href="/enrollment">Add hosts</a>: create an activation token');
  expect(enroller).not.toContain("No hosts match");
  const viewer = await scoped(["hosts.view"], "group:none");
  const plain = await (await h.send("/hosts", { session: viewer })).text();
  expect(plain).toContain("They appear once an administrator enrolls their agents.");
  expect(plain).not.toContain('href="/enrollment"');
  // the live refresh (the table alone) says the same
  const partial = await (await h.send("/hosts", { session: viewer, headers: { "hx-request": "true", "hx-target": "fleet-table" } })).text();
  expect(partial).toContain("No hosts here yet.");
  // a search that matches nothing says so
  const none = await (await h.send("/hosts?q=no-such-host", { session: await h.userWithRole("admin") })).text();
  expect(none).toContain("No hosts match. Clear the search to see all hosts.");
});
