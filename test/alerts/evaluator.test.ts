/**
 * The evaluator against a real PostgreSQL: rule kinds, pending -> firing -> resolved with every
 * transition stored, hysteresis, grouping (one outage of many hosts is one notification),
 * silences and maintenance windows, and the starter rules installed by the migration.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../support/db.ts";
import { Evaluator } from "../../src/alerts/evaluator.ts";
import { AgentState } from "../../src/store/postgres/agent-state.ts";
import { LatestCache } from "../../src/alerts/store.ts";
import { addHost, addRule, disableStarterRules, queued, rule, setLatest, setSeen, transitionsOf } from "./support.ts";

let db: TestDb;
let channelId: number;

beforeEach(async () => {
  db = await testDatabase(4);
  const [c] = await db.sql`insert into notification_channels (name, kind, config, created_by) values ('hook', 'webhook', '{"url": "http://127.0.0.1:9/"}', 'test') returning id`;
  channelId = Number(c!.id);
});
afterEach(async () => {
  await db?.drop();
});

test("the starter rules are installed and enabled: host offline, disk over 90 %, critical CIS violation", async () => {
  const rows = await db.sql`select name, kind, enabled, params from alert_rules where builtin order by id`;
  expect(rows.map((r) => [r.name, r.kind, r.enabled])).toEqual([
    ["Host offline", "host_offline", true],
    ["Disk over 90 %", "metric_threshold", true],
    ["Critical CIS violation", "cis_critical", true],
  ]);
  expect(rows[1]!.params).toEqual({ metric: "disk.used_pct", op: ">", threshold: 90, clear: 85 });
});

test("the starter disk rule fires per mount after its for-duration, and host offline fires for a silent host", async () => {
  const t0 = Date.now();
  const a = await addHost(db.sql, "web-1", [], t0);
  const b = await addHost(db.sql, "db-1", [], t0 - 600_000);
  await setLatest(db.sql, a, t0, { 'disk.used_pct{mount="/"}': 95, 'disk.used_pct{mount="/var"}': 40, "cpu.usage_pct": 10 });
  const ev = new Evaluator(db.sql);
  await ev.load();
  await ev.cycle(t0);
  const open = () => db.sql`select i.subject, i.state from alert_instances i where i.state <> 'resolved' order by i.subject`;
  expect((await open()).map((r) => [r.subject, r.state])).toEqual([["db-1", "firing"], ['web-1 disk.used_pct{mount="/"}', "pending"]]);
  await setLatest(db.sql, a, t0 + 301_000, { 'disk.used_pct{mount="/"}': 96, 'disk.used_pct{mount="/var"}': 40 });
  await setSeen(db.sql, [a], t0 + 301_000);
  await ev.cycle(t0 + 301_000);
  expect((await open()).map((r) => [r.subject, r.state])).toEqual([["db-1", "firing"], ['web-1 disk.used_pct{mount="/"}', "firing"]]);
});

test("threshold with for-duration and hysteresis: pending, firing, stays firing above the clear value, resolves below it; every transition stored", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const h = await addHost(db.sql, "app-1", ["group:app"], t0);
  const id = await addRule(db.sql, rule({ name: "CPU high", kind: "metric_threshold", params: { metric: "cpu.usage_pct", op: ">", threshold: 90, clear: 80 }, forSeconds: 60 }));
  const fp = `${id}:${h}`;
  const ev = new Evaluator(db.sql);
  await ev.load();
  const at = async (dt: number, cpu: number) => {
    await setLatest(db.sql, h, t0 + dt, { "cpu.usage_pct": cpu });
    await setSeen(db.sql, [h], t0 + dt);
    return ev.cycle(t0 + dt);
  };
  await at(0, 95);
  expect(await transitionsOf(db.sql, fp)).toEqual(["->pending"]);
  await at(30_000, 97);
  expect(await transitionsOf(db.sql, fp)).toEqual(["->pending"]);
  const s = await at(61_000, 93);
  expect(s.fired).toBe(1);
  expect(await transitionsOf(db.sql, fp)).toEqual(["->pending", "pending>firing"]);
  expect((await queued(db.sql)).map((n) => [n.channel_id, n.payload.title])).toEqual([[channelId, "[FIRING:1] CPU high"]]);
  await at(70_000, 85); // below 90 but above the clear value: still firing
  expect(await transitionsOf(db.sql, fp)).toEqual(["->pending", "pending>firing"]);
  await at(80_000, 79);
  expect(await transitionsOf(db.sql, fp)).toEqual(["->pending", "pending>firing", "firing>resolved"]);
  const [i] = await db.sql`select state, value, fired_at is not null as fired, resolved_at is not null as resolved from alert_instances where fingerprint = ${fp}`;
  expect(i).toEqual({ state: "resolved", value: 79, fired: true, resolved: true });
  // a pending alert whose condition fails before the for-duration resolves without firing
  await at(90_000, 99);
  await at(100_000, 50);
  const rows = await db.sql`select state, fired_at from alert_instances where fingerprint = ${fp} order by id`;
  expect(rows.map((r) => [r.state, r.fired_at === null])).toEqual([["resolved", false], ["resolved", true]]);
});

test("grouping: 50 hosts going offline together are one notification after group_wait; later changes wait group_interval; resolution is told once", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const ids: number[] = [];
  for (let i = 0; i < 51; i++) ids.push(await addHost(db.sql, `node-${String(i).padStart(2, "0")}`, ["dc:east"], t0));
  await addRule(db.sql, rule({ name: "Offline", kind: "host_offline", severity: "critical", params: { offline_seconds: 60 }, groupWaitSeconds: 30, groupIntervalSeconds: 300 }));
  const ev = new Evaluator(db.sql);
  await ev.load();
  await setSeen(db.sql, ids.slice(0, 50), t0 - 120_000); // 50 hosts silent for two minutes
  let s = await ev.cycle(t0);
  expect(s.opened).toBe(50);
  expect(await queued(db.sql)).toEqual([]); // group_wait gathers them
  s = await ev.cycle(t0 + 31_000);
  let q = await queued(db.sql);
  expect(q.length).toBe(1);
  expect(q[0]!.payload.counts).toEqual({ firing: 50, resolved: 0 });
  expect(q[0]!.payload.alerts.length).toBe(50);
  expect(q[0]!.payload.title).toBe("[FIRING:50] Offline");

  await setSeen(db.sql, [ids[50]!], t0 - 60_000); // a 51st host joins the outage
  await ev.cycle(t0 + 41_000);
  expect((await queued(db.sql)).length).toBe(1); // not before group_interval
  await ev.cycle(t0 + 332_000);
  q = await queued(db.sql);
  expect(q.length).toBe(2);
  expect(q[1]!.payload.counts).toEqual({ firing: 51, resolved: 0 });

  await setSeen(db.sql, ids, t0 + 600_000); // all back
  s = await ev.cycle(t0 + 605_000);
  expect(s.resolved).toBe(51);
  expect((await queued(db.sql)).length).toBe(2); // group_interval since the last notification has not passed
  await setSeen(db.sql, ids, t0 + 630_000);
  await ev.cycle(t0 + 633_000);
  q = await queued(db.sql);
  expect(q.length).toBe(3);
  expect(q[2]!.payload.status).toBe("resolved");
  expect(q[2]!.payload.counts).toEqual({ firing: 0, resolved: 51 });
  expect((await db.sql`select count(*)::int as n from alert_groups`)[0]!.n).toBe(0);
  await setSeen(db.sql, ids, t0 + 990_000);
  await ev.cycle(t0 + 1_000_000);
  expect((await queued(db.sql)).length).toBe(3);
});

test("group_by splits a rule's alerts into one notification per label value", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  for (const n of ["a", "b", "c"]) await addHost(db.sql, n, [], t0 - 600_000);
  await addRule(db.sql, rule({ name: "Offline by host", kind: "host_offline", params: { offline_seconds: 60 }, groupBy: ["host"] }));
  const ev = new Evaluator(db.sql);
  await ev.load();
  await ev.cycle(t0);
  const q = await queued(db.sql);
  expect(q.map((n) => n.payload.group_labels.host).sort()).toEqual(["a", "b", "c"]);
});

test("a silence by tag keeps matching alerts out of notifications; a maintenance window keeps them from opening", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  await addHost(db.sql, "quiet", ["env:staging"], t0 - 600_000);
  await addHost(db.sql, "maint", ["env:maint"], t0 - 600_000);
  await addHost(db.sql, "loud", ["env:prod"], t0 - 600_000);
  await addRule(db.sql, rule({ name: "Offline", kind: "host_offline", params: { offline_seconds: 60 } }));
  await db.sql`insert into alert_silences (kind, tags, starts_at, ends_at, comment, created_by) values
    ('silence', ${["env:staging"]}, ${new Date(t0 - 1000)}, ${new Date(t0 + 3_600_000)}, 'known', 'test'),
    ('maintenance', ${["env:maint"]}, ${new Date(t0 - 1000)}, ${new Date(t0 + 3_600_000)}, 'patching', 'test')`;
  const ev = new Evaluator(db.sql);
  await ev.load();
  await ev.cycle(t0);
  const open = await db.sql`select subject, state from alert_instances order by subject`;
  expect(open.map((r) => [r.subject, r.state])).toEqual([["loud", "firing"], ["quiet", "firing"]]);
  const q = await queued(db.sql);
  expect(q.length).toBe(1);
  expect(q[0]!.payload.alerts.map((a: any) => a.subject)).toEqual(["loud"]);
});

test("rate of change, absence of data, and the rule's tag scope", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const web = await addHost(db.sql, "web", ["role:web"], t0);
  const dbh = await addHost(db.sql, "db", ["role:db"], t0);
  const rate = await addRule(db.sql, rule({ name: "Disk filling", kind: "metric_rate", params: { metric: "disk.used_pct", op: ">", threshold: 1, window_seconds: 600 } }));
  const absent = await addRule(db.sql, rule({ name: "No memory data", kind: "metric_absent", params: { metric: "mem.used_pct", absent_seconds: 120 }, scopeTags: ["role:db"] }));
  const ev = new Evaluator(db.sql);
  await ev.load();
  await setLatest(db.sql, web, t0, { "disk.used_pct": 50, "mem.used_pct": 10 });
  await setLatest(db.sql, dbh, t0, { "disk.used_pct": 50 });
  await ev.cycle(t0);
  await setLatest(db.sql, web, t0 + 60_000, { "disk.used_pct": 53, "mem.used_pct": 10 }); // +3 %/min
  await setLatest(db.sql, dbh, t0 + 60_000, { "disk.used_pct": 50.5 }); // +0.5 %/min
  await setSeen(db.sql, [web, dbh], t0 + 60_000);
  await ev.cycle(t0 + 60_000);
  const rows = await db.sql`select rule_id, subject, state, value from alert_instances order by rule_id, subject`;
  expect(rows.map((r) => [Number(r.rule_id), r.subject, r.state])).toEqual([[rate, "web disk.used_pct", "firing"], [absent, "db", "firing"]]);
  expect(rows[0]!.value).toBeCloseTo(3, 6);
});

test("security and log rules: critical CIS violation, score drop, FIM change on a critical path, failed sign-ins, log pattern", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const h = await addHost(db.sql, "sec-1", [], t0);
  const other = await addHost(db.sql, "sec-2", [], t0);
  const cis = await addRule(db.sql, rule({ name: "CIS", kind: "cis_critical", params: { min_severity: 7 } }));
  const drop = await addRule(db.sql, rule({ name: "Score", kind: "security_score_drop", params: { drop: 10, window_seconds: 86_400 } }));
  const fim = await addRule(db.sql, rule({ name: "FIM", kind: "fim_critical_path", params: { window_seconds: 600, paths: ["/etc/ssh/", "/etc/shadow"] } }));
  const signin = await addRule(db.sql, rule({ name: "Sign-ins", kind: "failed_signins", params: { window_seconds: 600, min_count: 5 } }));
  const logs = await addRule(db.sql, rule({ name: "OOM", kind: "log_pattern", params: { window_seconds: 600, min_count: 2, pattern: "out of memory" } }));
  const now = new Date(t0);
  await db.sql`insert into cis_violations (agent_id, control_id, severity, first_seen, last_seen) values
    (${h}, 'ssh-root-login', 9, ${now}, ${now}), (${h}, 'motd-perms', 3, ${now}, ${now})`;
  await db.sql`insert into security_scores (agent_id, ts, score, breakdown) values
    (${h}, ${new Date(t0 - 3_600_000)}, 90, '{}'), (${h}, ${now}, 70, '{}'), (${other}, ${now}, 50, '{}')`;
  await db.sql`insert into security_events (agent_id, batch_id, ts, type, severity, path) values
    (${h}, 1, ${now}, 'fim.modified', 7, '/etc/ssh/sshd_config'), (${other}, 1, ${now}, 'fim.modified', 3, '/var/tmp/x')`;
  await db.sql`insert into signin_throttle (key, failures, last_failure_at) values ('acct:alice', 7, ${now}), ('acct:bob', 2, ${now}), ('ip:127.0.0.1', 40, ${now})`;
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values
    (${other}, 1, ${now}, 3, 'kernel', 'Out of memory: Killed process 42'), (${other}, 1, ${now}, 3, 'kernel', 'out of memory again'),
    (${h}, 1, ${now}, 3, 'kernel', 'Out of memory once')`;
  const ev = new Evaluator(db.sql);
  await ev.load();
  await ev.cycle(t0);
  const rows = await db.sql`select rule_id, subject, state from alert_instances order by rule_id, subject`;
  expect(rows.map((r) => [Number(r.rule_id), r.subject, r.state])).toEqual([
    [cis, "sec-1 ssh-root-login", "firing"],
    [drop, "sec-1", "firing"],
    [fim, "sec-1", "firing"],
    [signin, "account alice", "firing"],
    [logs, "sec-2", "firing"],
  ]);
  // the violation resolves: so does its alert
  await db.sql`update cis_violations set resolved_at = ${now} where control_id = 'ssh-root-login'`;
  await ev.cycle(t0 + 10_000);
  const [c] = await db.sql`select state from alert_instances where rule_id = ${cis}`;
  expect(c!.state).toBe("resolved");
});

test("a new evaluator (another leader) continues from the stored open alerts and groups: no duplicate alert, no repeated notification", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  await addHost(db.sql, "gone", [], t0 - 600_000);
  await addRule(db.sql, rule({ name: "Offline", kind: "host_offline", params: { offline_seconds: 60 } }));
  const first = new Evaluator(db.sql);
  await first.load();
  await first.cycle(t0);
  expect((await queued(db.sql)).length).toBe(1);
  const second = new Evaluator(db.sql);
  await second.load();
  await second.cycle(t0 + 10_000);
  expect((await db.sql`select count(*)::int as n from alert_instances`)[0]!.n).toBe(1);
  expect((await queued(db.sql)).length).toBe(1);
});

test("a resolution the old leader held back for group_interval is told by the new leader, once", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const a = await addHost(db.sql, "edge-a", [], t0 - 600_000);
  await addHost(db.sql, "edge-b", [], t0 - 600_000);
  await addRule(db.sql, rule({ name: "Offline", kind: "host_offline", params: { offline_seconds: 60 }, groupWaitSeconds: 0, groupIntervalSeconds: 300 }));
  const first = new Evaluator(db.sql);
  await first.load();
  await first.cycle(t0);
  expect((await queued(db.sql)).map((n) => n.payload.status)).toEqual(["firing"]);
  // edge-a comes back: resolved at once, its notification waits for group_interval in the leader's memory
  await setSeen(db.sql, [a], t0 + 20_000);
  await first.cycle(t0 + 20_000);
  expect((await queued(db.sql)).length).toBe(1);
  // the leader dies; the next one takes over
  const second = new Evaluator(db.sql);
  await second.load();
  await second.cycle(t0 + 200_000);
  expect((await queued(db.sql)).length).toBe(1); // group_interval still holds
  await second.cycle(t0 + 301_000);
  const sent = await queued(db.sql);
  expect(sent.length).toBe(2);
  expect(JSON.stringify(sent[1]!.payload)).toContain("edge-a");
  await second.cycle(t0 + 700_000);
  expect((await queued(db.sql)).length).toBe(2); // told once
});

test("the evaluator reads this node's in-memory latest values (AgentState) before they reach metric_latest", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const h = await addHost(db.sql, "mem-1", [], t0);
  await addRule(db.sql, rule({ name: "Load", kind: "metric_threshold", params: { metric: "load.1m", op: ">=", threshold: 8 } }));
  const state = new AgentState(db.sql); // not started: nothing is flushed to metric_latest
  state.metrics(h, { ts: new Float64Array([t0 - 1000, t0]), names: ["load.1m", "load.5m"], values: new Float64Array([3, 9, 2, 2]) });
  state.touch(h, 1, "wss");
  const ev = new Evaluator(db.sql, state);
  await ev.load();
  await ev.cycle(t0);
  expect((await db.sql`select count(*)::int as n from metric_latest`)[0]!.n).toBe(0);
  const rows = await db.sql`select subject, state, value from alert_instances`;
  expect(rows.map((r) => [r.subject, r.state, r.value])).toEqual([["mem-1 load.1m", "firing", 9]]);
});

test("metric_latest read incrementally: a row whose sample time went backwards (agent clock set back) is seen at the next full read", async () => {
  const t0 = Date.now();
  const a = await addHost(db.sql, "skewed", [], t0);
  const b = await addHost(db.sql, "steady", [], t0);
  const cache = new LatestCache(db.sql, undefined, 3);
  await setLatest(db.sql, a, t0, { "cpu.usage_pct": 10 });
  await setLatest(db.sql, b, t0, { "cpu.usage_pct": 10 });
  expect((await cache.refresh()).get(a)!.values[0]).toBe(10); // refresh 1: full
  await setLatest(db.sql, a, t0 - 120_000, { "cpu.usage_pct": 99 }); // the agent's clock went back two minutes
  await setLatest(db.sql, b, t0 + 10_000, { "cpu.usage_pct": 20 });
  let m = await cache.refresh(); // refresh 2: incremental
  expect([m.get(a)!.values[0], m.get(b)!.values[0]]).toEqual([10, 20]);
  m = await cache.refresh(); // refresh 3: incremental
  expect(m.get(a)!.values[0]).toBe(10);
  m = await cache.refresh(); // refresh 4: full again
  expect([m.get(a)!.values[0], m.get(b)!.values[0]]).toEqual([99, 20]);
});

test("metric_latest read by name set: hosts that report the same series share one names array; a host's new set is read when it appears", async () => {
  const t0 = Date.now();
  const a = await addHost(db.sql, "set-a", [], t0);
  const b = await addHost(db.sql, "set-b", [], t0);
  const cache = new LatestCache(db.sql, undefined, 3);
  await setLatest(db.sql, a, t0, { "cpu.usage_pct": 10, "mem.used_pct": 5 });
  await setLatest(db.sql, b, t0, { "cpu.usage_pct": 30, "mem.used_pct": 6 });
  let m = await cache.refresh();
  expect(m.get(a)!.names).toBe(m.get(b)!.names);
  expect(m.get(a)!.key).toBe(m.get(b)!.key);
  expect([...m.get(a)!.names]).toEqual(["cpu.usage_pct", "mem.used_pct"]);
  expect([m.get(a)!.values, m.get(b)!.values]).toEqual([[10, 5], [30, 6]]);
  await setLatest(db.sql, b, t0 + 10_000, { "load.1m": 2 });
  m = await cache.refresh(); // incremental: b's row names a set not read before
  expect([...m.get(b)!.names]).toEqual(["load.1m"]);
  expect(m.get(b)!.values).toEqual([2]);
  expect([...m.get(a)!.names]).toEqual(["cpu.usage_pct", "mem.used_pct"]);
});

test("metric_latest: values of an agent this node holds as new in memory are not read from the database; a newer row (written by another node) is", async () => {
  const t0 = Date.now();
  const a = await addHost(db.sql, "local-a", [], t0);
  const b = await addHost(db.sql, "remote-b", [], t0);
  const state = new AgentState(db.sql);
  const names = ["cpu.usage_pct"];
  state.metrics(a, { ts: Float64Array.of(t0), names, values: Float64Array.of(10), namesKey: names[0]! });
  await state.flush(); // this node writes a's row, as its flush timer would
  await setLatest(db.sql, b, t0, { "cpu.usage_pct": 30 });
  const statements: Array<{ text: string; args: unknown[] }> = [];
  const spy = ((strings: TemplateStringsArray, ...args: unknown[]) => {
    statements.push({ text: strings.join("?").replace(/\s+/g, " ").trim(), args });
    return (db.sql as any)(strings, ...args);
  }) as unknown as typeof db.sql;
  const cache = new LatestCache(spy, state, 100);
  // the agents whose values were read from the database, refresh by refresh
  const valuesRead = () => {
    const read = statements.filter((s) => /\bvals\b/.test(s.text));
    statements.length = 0;
    expect(read.every((s) => s.text === "select agent_id, extract(epoch from ts) * 1000 as t, names_set, vals from metric_latest_rows where agent_id = any(?::int8[])")).toBe(true);
    return read.flatMap((s) => (s.args[0] as number[]).map(Number));
  };
  expect((await db.sql`select count(*)::int as n from metric_latest_rows`)[0]!.n).toBe(2);
  let m = await cache.refresh();
  expect([m.get(a)!.values[0], m.get(b)!.values[0]]).toEqual([10, 30]);
  expect(valuesRead()).toEqual([b]); // a's values came from memory
  state.metrics(a, { ts: Float64Array.of(t0 + 10_000), names, values: Float64Array.of(11), namesKey: names[0]! });
  await state.flush();
  m = await cache.refresh(); // a changed, by this node: its values are not read
  expect(m.get(a)!.values[0]).toBe(11);
  expect(valuesRead()).not.toContain(a);
  await setLatest(db.sql, a, t0 + 20_000, { "cpu.usage_pct": 77 }); // a moved to another node, which wrote a newer row
  m = await cache.refresh();
  expect([m.get(a)!.values[0], m.get(b)!.values[0]]).toEqual([77, 30]);
  expect(valuesRead()).toContain(a);
});

test("metric_latest read by name set: past its bound the cache starts over and still names every host's series", async () => {
  const t0 = Date.now();
  const a = await addHost(db.sql, "bound-a", [], t0);
  const b = await addHost(db.sql, "bound-b", [], t0);
  const cache = new LatestCache(db.sql, undefined, 100, 1); // one set kept at most
  await setLatest(db.sql, a, t0, { "bound.a": 1 });
  let m = await cache.refresh();
  expect([...m.get(a)!.names]).toEqual(["bound.a"]);
  await setLatest(db.sql, a, t0 + 10_000, { "bound.a": 2 });
  await setLatest(db.sql, b, t0 + 10_000, { "bound.b": 3 });
  m = await cache.refresh(); // b's set does not fit beside a's: both are read again
  expect([...m.get(a)!.names]).toEqual(["bound.a"]);
  expect([...m.get(b)!.names]).toEqual(["bound.b"]);
  expect([m.get(a)!.values, m.get(b)!.values]).toEqual([[2], [3]]);
});

test("a rule whose query fails (a pattern PostgreSQL refuses) is skipped: other rules go on, its open alerts stay open", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const h = await addHost(db.sql, "logs-1", [], t0);
  await addHost(db.sql, "gone-1", [], t0 - 600_000);
  const logs = await addRule(db.sql, rule({ name: "Errors", kind: "log_pattern", params: { window_seconds: 600, min_count: 1, pattern: "error" } }));
  await addRule(db.sql, rule({ name: "Offline", kind: "host_offline", params: { offline_seconds: 60 } }));
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${h}, 1, ${new Date(t0)}, 3, 'app', 'error: disk')`;
  const logged: string[] = [];
  const ev = new Evaluator(db.sql, undefined, (m) => logged.push(m));
  await ev.load();
  await ev.cycle(t0);
  expect((await db.sql`select count(*)::int as n from alert_instances where state = 'firing'`)[0]!.n).toBe(2);
  // valid in JavaScript (validateRule accepts it), refused by PostgreSQL's regular expressions
  await db.sql`update alert_rules set params = ${db.sql.json({ window_seconds: 600, min_count: 1, pattern: "(?<name>error)" })}, updated_at = now() where id = ${logs}`;
  await ev.cycle(t0 + 10_000);
  expect(logged.some((m) => m.includes(`alert rule ${logs} (Errors) could not be evaluated`))).toBe(true);
  const rows = await db.sql`select r.name, i.state from alert_instances i join alert_rules r on r.id = i.rule_id order by r.name`;
  expect(rows.map((r) => [r.name, r.state])).toEqual([["Errors", "firing"], ["Offline", "firing"]]);
});

test("after a cycle that failed part-way, the next one reloads the stored state first (no alert without its row)", async () => {
  await disableStarterRules(db.sql);
  const t0 = Date.now();
  const h = await addHost(db.sql, "flaky-1", [], t0 - 600_000);
  await addRule(db.sql, rule({ name: "Offline", kind: "host_offline", params: { offline_seconds: 60 } }));
  const ev = new Evaluator(db.sql);
  await ev.load();
  // the transitions table refuses writes for a moment: the cycle fails after the evaluation
  await db.sql`create function refuse() returns trigger language plpgsql as $$ begin raise exception 'refused'; end $$`;
  await db.sql`create trigger refuse before insert on alert_transitions for each statement execute function refuse()`;
  await expect(ev.cycle(t0)).rejects.toThrow(/refused/);
  expect(ev.openAlerts.size).toBe(1); // memory ran ahead of the database
  await db.sql`drop trigger refuse on alert_transitions`;
  await ev.cycle(t0 + 10_000);
  const rows = await db.sql`select state from alert_instances where agent_id = ${h}`;
  expect(rows.map((r) => r.state)).toEqual(["firing"]);
  expect(await transitionsOf(db.sql, [...ev.openAlerts.keys()][0]!)).toEqual(["->firing"]);
});
