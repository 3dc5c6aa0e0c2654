/**
 * The alerting pages through the console's guard (in-process, real PostgreSQL): rules and
 * channels created and validated, secrets sealed and never audited, silences, the alert list
 * within the host scope, acknowledgement (stored as a transition, refused outside the scope),
 * a test notification to a local receiver recorded as a delivery, and every change audited.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { consoleHarness, type ConsoleHarness } from "../support/console-app.ts";
import { Evaluator } from "../../src/alerts/evaluator.ts";
import { addHost, addRule, disableStarterRules, rule } from "./support.ts";

let h: ConsoleHarness;

beforeAll(async () => {
  h = await consoleHarness();
}, 30_000);
afterAll(async () => {
  await h?.close();
});

const audits = (action: string) => h.db.sql`select actor_name, target, success, details from audit_log where action = ${action} order by id`;

test("rules: the list shows the starter set; a valid rule is created and audited, an invalid one refused with reasons", async () => {
  const admin = await h.userWithRole("admin", "rules-admin");
  const page = await h.send("/alerts/rules", { session: admin });
  expect(page.status).toBe(200);
  const html = await page.text();
  for (const n of ["Host offline", "Disk over 90 %", "Critical CIS violation"]) expect(html).toContain(n);

  const bad = await h.send("/alerts/rules", { session: admin, form: { name: "x", kind: "metric_threshold", severity: "warning", metric: "cpu.usage_pct", op: ">", threshold: "90", clear: "95" }, headers: { "hx-request": "true" } });
  expect(bad.status).toBe(422);
  expect(await bad.text()).toContain("The clear value must be on the safe side of the threshold");

  const ok = await h.send("/alerts/rules", { session: admin, form: { name: "CPU hot", kind: "metric_threshold", severity: "critical", enabled: "on", metric: "cpu.usage_pct", op: ">", threshold: "90", clear: "80", for_seconds: "300", scope_tags: "group:web", labels: "team=ops", group_by: "host" }, headers: { "hx-request": "true" } });
  expect(ok.status).toBe(204);
  const [r] = await h.db.sql`select kind, severity, params, for_seconds, scope_tags, labels, group_by, created_by from alert_rules where name = 'CPU hot'`;
  expect(r).toEqual({ kind: "metric_threshold", severity: "critical", params: { metric: "cpu.usage_pct", op: ">", threshold: 90, clear: 80 }, for_seconds: 300, scope_tags: ["group:web"], labels: { team: "ops" }, group_by: ["host"], created_by: "rules-admin" });
  const a = await audits("alerts.rule.create");
  expect(a.map((x) => [x.actor_name, x.success])).toEqual([["rules-admin", false], ["rules-admin", true]]);

  // a viewer sees rules but may not change them
  const viewer = await h.userWithRole("viewer", "rules-viewer");
  expect((await h.send("/alerts/rules", { session: viewer })).status).toBe(200);
  expect((await h.send("/alerts/rules", { session: viewer, form: { name: "y", kind: "host_offline", offline_seconds: "60" } })).status).toBe(403);
});

test("channels: the secret is sealed and never in the audit record; a test notification reaches the receiver and is recorded", async () => {
  const admin = await h.userWithRole("admin", "chan-admin");
  const got: string[] = [];
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, async fetch(req) {
    got.push(await req.text());
    return new Response("ok");
  } });
  try {
    const res = await h.send("/alerts/channels", { session: admin, form: { name: "ops-hook", kind: "webhook", enabled: "on", url: `http://127.0.0.1:${server.port}/x`, secret: "very-secret-signing-key" }, headers: { "hx-request": "true" } });
    expect(res.status).toBe(204);
    const [c] = await h.db.sql`select id, secret from notification_channels where name = 'ops-hook'`;
    expect(c!.secret.startsWith("v1.")).toBe(true);
    const [a] = await audits("notifications.channel.create");
    expect(JSON.stringify(a)).not.toContain("very-secret");
    expect(a!.details).toMatchObject({ kind: "webhook", secret_set: true });

    const t = await h.send(`/alerts/channels/${c!.id}/test`, { session: admin, form: {}, headers: { "hx-request": "true" } });
    expect(await t.text()).toContain("Test notification sent (200)");
    expect(got.length).toBe(1);
    expect(JSON.parse(got[0]!).title).toBe("[TEST] ServerMind test notification from chan-admin");
    const [n] = await h.db.sql`select status, attempts from alert_notifications where channel_id = ${c!.id}`;
    expect(n).toEqual({ status: "sent", attempts: 1 });
    const page = await (await h.send("/alerts/channels", { session: admin })).text();
    expect(page).toContain("[TEST] ServerMind test notification from chan-admin");
    expect(page).not.toContain("very-secret");

    // the viewer role does not hold notifications.view (channel settings name URLs and recipients)
    const viewer = await h.userWithRole("viewer", "chan-viewer");
    expect((await h.send("/alerts/channels", { session: viewer })).status).toBe(403);
  } finally {
    server.stop(true);
  }
});

test("silences: created and ended, both audited", async () => {
  const s = await h.userWith(["alerts.view", "alerts.silence"], "silencer");
  const local = (ms: number) => new Date(ms).toISOString().slice(0, 16); // datetime-local, UTC
  const start = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
  const res = await h.send("/alerts/silences", { session: s, form: { kind: "maintenance", tags: "group:db", starts_at: local(start), ends_at: local(start + 86_400_000), comment: "kernel upgrades" }, headers: { "hx-request": "true" } });
  expect(res.status).toBe(204);
  const [x] = await h.db.sql`select id, kind, tags, starts_at, comment, created_by from alert_silences`;
  expect(x).toMatchObject({ kind: "maintenance", tags: ["group:db"], comment: "kernel upgrades", created_by: "silencer" });
  expect(x!.starts_at.getTime()).toBe(start);
  expect((await h.send(`/alerts/silences/${x!.id}/expire`, { session: s, form: {}, headers: { "hx-request": "true" } })).status).toBe(204);
  expect((await h.db.sql`select expired_at is not null as e from alert_silences`)[0]!.e).toBe(true);
  expect((await audits("alerts.maintenance.create")).length).toBe(1);
  expect((await audits("alerts.silence.expire")).map((a) => a.success)).toEqual([true]);
  const bad = await h.send("/alerts/silences", { session: s, form: { kind: "silence", starts_at: local(start), ends_at: local(start - 60_000), comment: "" }, headers: { "hx-request": "true" } });
  expect(bad.status).toBe(422);
});

test("the alert list and acknowledgement stay within the host scope; an acknowledgement is a stored transition and audited", async () => {
  await disableStarterRules(h.db.sql);
  const t0 = Date.now();
  const web = await addHost(h.db.sql, "web-scope-1", ["group:web"], t0 - 600_000);
  const dbh = await addHost(h.db.sql, "db-hidden-7", ["group:db"], t0 - 600_000);
  await addRule(h.db.sql, rule({ name: "Offline now", kind: "host_offline", params: { offline_seconds: 60 } }));
  const ev = new Evaluator(h.db.sql);
  await ev.load();
  await ev.cycle(t0);
  const ids = Object.fromEntries((await h.db.sql`select id, agent_id from alert_instances`).map((r) => [Number(r.agent_id), Number(r.id)]));

  const scoped = await h.userWith(["alerts.view", "alerts.acknowledge"], "web-oncall", ["group:web"]);
  const list = await (await h.send("/alerts", { session: scoped })).text();
  expect(list).toContain("web-scope-1");
  expect(list).not.toContain("db-hidden-7");

  const out = await h.send(`/alerts/instances/${ids[dbh]}/acknowledge`, { session: scoped, form: { note: "mine?" }, headers: { "hx-request": "true" } });
  expect(out.status).toBe(404);
  const ok = await h.send(`/alerts/instances/${ids[web]}/acknowledge`, { session: scoped, form: { note: "on it" }, headers: { "hx-request": "true" } });
  expect(ok.status).toBe(204);
  const [i] = await h.db.sql`select acknowledged_by, ack_note, state from alert_instances where id = ${ids[web]!}`;
  expect(i).toEqual({ acknowledged_by: "web-oncall", ack_note: "on it", state: "firing" });
  const tr = await h.db.sql`select from_state, to_state, actor, note from alert_transitions where instance_id = ${ids[web]!} order by id`;
  expect(tr.map((t) => [t.from_state, t.to_state, t.actor, t.note])).toEqual([[null, "firing", "evaluator", ""], ["firing", "acknowledged", "web-oncall", "on it"]]);
  const a = await audits("alerts.acknowledge");
  expect(a.map((x) => [x.actor_name, x.success])).toEqual([["web-oncall", false], ["web-oncall", true]]);
  // twice: nothing left to acknowledge
  expect((await h.send(`/alerts/instances/${ids[web]}/acknowledge`, { session: scoped, form: {}, headers: { "hx-request": "true" } })).status).toBe(404);
  // the page shows who acknowledged, and the timeline
  const after = await (await h.send("/alerts", { session: scoped })).text();
  expect(after).toContain("web-oncall");
  expect(after).toContain("acknowledged");

  // the host page's alerts section: the host's alerts and their history, within the scope
  const section = await h.send(`/hosts/${web}/alerts`, { session: scoped, headers: { "hx-request": "true" } });
  expect(section.status).toBe(200);
  const text = await section.text();
  expect(text).toContain("Offline now");
  expect(text).toContain("web-scope-1 not seen for");
  expect(text).toContain("acknowledged");
  expect((await h.send(`/hosts/${dbh}/alerts`, { session: scoped, headers: { "hx-request": "true" } })).status).toBe(404);
  const admin = await h.userWithRole("admin", "host-page-admin");
  const page = await (await h.send(`/hosts/${web}`, { session: admin })).text();
  expect(page).toContain(`hx-get="/hosts/${web}/alerts"`);
});

test("ids that are not whole numbers within range (1e400, 20 digits, NaN) are refused as missing, never a database error", async () => {
  const admin = await h.userWithRole("admin", "garbage-admin");
  for (const bad of ["1e400", "99999999999999999999", "abc", "-1"]) {
    expect({ bad, status: (await h.send(`/alerts/rules/${bad}`, { session: admin })).status }).toEqual({ bad, status: 404 });
    expect({ bad, status: (await h.send(`/alerts/channels/${bad}`, { session: admin })).status }).toEqual({ bad, status: 404 });
    expect({ bad, status: (await h.send(`/alerts/instances/${bad}/acknowledge`, { session: admin, form: {}, headers: { "hx-request": "true" } })).status }).toEqual({ bad, status: 404 });
    const local = (ms: number) => new Date(ms).toISOString().slice(0, 16);
    const silence = await h.send("/alerts/silences", { session: admin, form: { kind: "silence", rule_id: bad, starts_at: local(Date.now()), ends_at: local(Date.now() + 3_600_000), comment: "x" }, headers: { "hx-request": "true" } });
    expect({ bad, status: silence.status }).toEqual({ bad, status: 422 });
    const r = await h.send("/alerts/rules", { session: admin, form: { name: `g-${bad}`, kind: "host_offline", offline_seconds: "60", channel_ids: bad }, headers: { "hx-request": "true" } });
    expect({ bad, status: r.status }).toEqual({ bad, status: 422 });
  }
});
