/**
 * The alerting JSON API (src/web/alerts/api.ts) through the console's guard, in-process on a real
 * PostgreSQL: the alert list and acknowledgement within the caller's host scope, silences
 * created (validated, audited) and ended, rules, and channels whose secrets show only as "set".
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { consoleHarness, type ConsoleHarness } from "../support/console-app.ts";
import { Evaluator } from "../../src/alerts/evaluator.ts";
import { addHost, addRule, disableStarterRules, rule } from "./support.ts";

let h: ConsoleHarness;
const ids: Record<string, number> = {};

beforeAll(async () => {
  h = await consoleHarness();
  await disableStarterRules(h.db.sql);
  const t0 = Date.now();
  const web = await addHost(h.db.sql, "web-api-1", ["group:web"], t0 - 600_000);
  const db = await addHost(h.db.sql, "db-api-hidden", ["group:db"], t0 - 600_000);
  await addRule(h.db.sql, rule({ name: "Offline (api)", kind: "host_offline", params: { offline_seconds: 60 } }));
  const ev = new Evaluator(h.db.sql);
  await ev.load();
  await ev.cycle(t0);
  for (const r of await h.db.sql`select id, agent_id from alert_instances`) ids[Number(r.agent_id) === web ? "web" : Number(r.agent_id) === db ? "db" : "other"] = Number(r.id);
}, 30_000);

afterAll(async () => {
  await h?.close();
});

test("GET /api/alerts lists only the hosts in the caller's scope; a bad parameter is a 400 with a message", async () => {
  const scoped = await h.userWith(["alerts.view"], "api-web-viewer", ["group:web"]);
  const r = await h.call("GET", "/api/alerts", scoped);
  expect(r.status).toBe(200);
  expect(r.json.alerts.map((a: any) => [a.host.hostname, a.state, a.rule.name])).toEqual([["web-api-1", "firing", "Offline (api)"]]);
  expect(r.json.alerts[0].acknowledged).toBeNull();
  const admin = await h.userWithRole("admin", "api-admin");
  const all = await h.call("GET", "/api/alerts?state=all&days=30", admin);
  expect(all.json.alerts.map((a: any) => a.host.hostname).sort()).toEqual(["db-api-hidden", "web-api-1"]);
  for (const [q, msg] of [["state=closed", 'state must be "open" or "all"'], ["days=0", "days must be a whole number from 1 to 90"], ["days=abc", "days must be"]] as const) {
    const bad = await h.call("GET", `/api/alerts?${q}`, admin);
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("bad_request");
    expect(bad.json.error.message).toContain(msg);
  }
  // without alerts.view
  const none = await h.userWith(["hosts.view"], "api-no-alerts");
  expect((await h.call("GET", "/api/alerts", none)).status).toBe(403);
});

test("acknowledging through the API: only within the scope, once, audited with the note", async () => {
  const scoped = await h.userWith(["alerts.view", "alerts.acknowledge"], "api-web-oncall", ["group:web"]);
  const out = await h.call("POST", `/api/alerts/${ids.db}/acknowledge`, scoped, { note: "mine?" });
  expect(out.status).toBe(404);
  expect(out.json.error.code).toBe("not_found");
  const ok = await h.call("POST", `/api/alerts/${ids.web}/acknowledge`, scoped, { note: "looking" });
  expect(ok).toMatchObject({ status: 200, json: { acknowledged: true, subject: "web-api-1" } });
  expect((await h.call("POST", `/api/alerts/${ids.web}/acknowledge`, scoped, {})).status).toBe(404);
  expect((await h.call("POST", "/api/alerts/abc/acknowledge", scoped, {})).status).toBe(404);
  const [i] = await h.db.sql`select acknowledged_by, ack_note from alert_instances where id = ${ids.web!}`;
  expect(i).toEqual({ acknowledged_by: "api-web-oncall", ack_note: "looking" });
  const list = await h.call("GET", "/api/alerts", scoped);
  expect(list.json.alerts[0].acknowledged).toMatchObject({ by: "api-web-oncall", note: "looking" });
  const audits = await h.db.sql`select actor_name, success from audit_log where action = 'alerts.acknowledge' and actor_name = 'api-web-oncall' order by id`;
  expect(audits.map((a) => a.success)).toEqual([false, true, false, false]);
});

test("silences: created with validation, listed, ended once; each step audited", async () => {
  const op = await h.userWith(["alerts.view", "alerts.silence"], "api-silencer");
  const start = new Date(Date.now() - 60_000).toISOString();
  const end = new Date(Date.now() + 3_600_000).toISOString();
  const bad = await h.call("POST", "/api/alerts/silences", op, { kind: "silence", starts_at: end, ends_at: start, comment: "" });
  expect(bad.status).toBe(400);
  expect(bad.json.error.message).toContain("The end must be after the start.");
  expect(bad.json.error.message).toContain("A comment");
  const made = await h.call("POST", "/api/alerts/silences", op, { kind: "maintenance", tags: "group:web", starts_at: start, ends_at: end, comment: "kernel upgrade" });
  expect(made.status).toBe(200);
  const id = made.json.id as number;
  const listed = await h.call("GET", "/api/alerts/silences", op);
  expect(listed.json.silences.find((x: any) => x.id === id)).toMatchObject({ kind: "maintenance", tags: ["group:web"], comment: "kernel upgrade", created_by: "api-silencer", active: true });
  expect((await h.call("POST", `/api/alerts/silences/${id}/expire`, op, {})).json).toEqual({ expired: true });
  expect((await h.call("POST", `/api/alerts/silences/${id}/expire`, op, {})).status).toBe(404);
  const a = await h.db.sql`select action, success from audit_log where actor_name = 'api-silencer' order by id`;
  expect(a.map((x) => [x.action, x.success])).toEqual([
    ["alerts.silence.create", false], ["alerts.maintenance.create", true], ["alerts.silence.expire", true], ["alerts.silence.expire", false],
  ]);
  // a viewer may not silence
  const viewer = await h.userWith(["alerts.view"], "api-silence-viewer");
  expect((await h.call("POST", "/api/alerts/silences", viewer, { kind: "silence", starts_at: start, ends_at: end, comment: "x" })).status).toBe(403);
});

test("rules and channels: listed; a channel's secret only as set", async () => {
  const admin = await h.userWithRole("admin", "api-chan-admin");
  const made = await h.send("/alerts/channels", { session: admin, form: { name: "api-hook", kind: "webhook", enabled: "on", url: "http://127.0.0.1:9/hook", secret: "api-very-secret-key" }, headers: { "hx-request": "true" } });
  expect(made.status).toBe(204);
  const chans = await h.call("GET", "/api/alerts/channels", admin);
  expect(chans.status).toBe(200);
  expect(chans.json.channels.find((c: any) => c.name === "api-hook")).toEqual({ id: expect.any(Number), name: "api-hook", kind: "webhook", enabled: true, config: { url: "http://127.0.0.1:9/hook" }, secret: "set" });
  expect(chans.text).not.toContain("api-very-secret-key");
  const rules = await h.call("GET", "/api/alerts/rules", admin);
  expect(rules.json.rules.map((r: any) => r.name)).toContain("Offline (api)");
  const noNotify = await h.userWith(["alerts.view"], "api-rules-only");
  expect((await h.call("GET", "/api/alerts/rules", noNotify)).status).toBe(200);
  expect((await h.call("GET", "/api/alerts/channels", noNotify)).status).toBe(403);
});
