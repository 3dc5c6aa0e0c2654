/**
 * The series dictionary as one row per agent (migration 550): a database migrated up to 545 with
 * series registered the old way keeps every id; new ids come after every id handed out before,
 * rolled-back ones included; registrations that race hand out one id per series without
 * deadlocking; and a series costs a few bytes instead of a hundred.
 * The latest values with their names stored once per set (migration 560): rows written before
 * read back the same through the metric_latest view, with the fleet's three columns.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { migrate } from "../../../src/store/postgres/migrate.ts";
import { SeriesCache } from "../../../src/store/postgres/series.ts";
import { AgentState } from "../../../src/store/postgres/agent-state.ts";
import { createPgClient } from "../../../src/store/postgres/client.ts";
import { migrateDatabaseTo, testDatabase, type TestDb } from "../../support/db.ts";

let db: TestDb;
const agents: number[] = [];
let before: Array<{ id: number; agent_id: number; name: string }>;
let latestBefore: unknown[];

beforeAll(async () => {
  db = await testDatabase(4);
  await migrateDatabaseTo(db, "545");
  for (const h of ["a", "b", "c"]) {
    const [r] = await db.sql`insert into agents (hostname, public_key) values (${h}, ${Buffer.alloc(32, h.charCodeAt(0))}) returning id`;
    agents.push(Number(r!.id));
  }
  // the old layout: interleaved registrations, then ids handed out in a transaction rolled back
  for (const n of ["cpu.usage_pct", "mem.used_pct", "load.1"]) {
    for (const a of agents.slice(0, 2)) await db.sql`insert into metric_series (agent_id, name) values (${a}, ${n})`;
  }
  await db.sql.begin(async (tx) => {
    await tx`insert into metric_series (agent_id, name) values (${agents[2]!}, 'lost.1'), (${agents[2]!}, 'lost.2')`;
    await tx`select 1/0`;
  }).catch(() => {});
  before = (await db.sql`select id::int, agent_id::int, name from metric_series order by id`) as never;
  // latest values: two agents with the same names in the same order, one with others
  const same = ["cpu.usage_pct", "mem.used_pct", 'disk.used_pct{mount="/"}', "load.1"];
  await db.sql`insert into metric_latest (agent_id, ts, names, vals) values
    (${agents[0]!}, ${new Date(1e12)}, ${same}, '{12.5,40,NULL,1.5}'),
    (${agents[1]!}, ${new Date(1e12)}, ${same}, '{99,41,70.25,2}'),
    (${agents[2]!}, ${new Date(1e12)}, ${["load.1", 'odd "quoted", name']}, '{3,4}')`;
  latestBefore = (await db.sql`select agent_id::int, ts, names, vals, cpu, mem, disk from metric_latest order by agent_id`) as never;
  await migrate(db.sql); // 550 and anything after
});

afterAll(async () => {
  await db?.drop();
});

test("every series keeps its id behind the metric_series view, in registration order per agent", async () => {
  expect(before.length).toBe(6);
  const after = await db.sql`select id::int, agent_id::int, name from metric_series order by id`;
  expect([...after]).toEqual(before);
  const [row] = await db.sql`select name_ids, ids from metric_agent_series where agent_id = ${agents[0]!}`;
  expect(row!.ids).toEqual(before.filter((r) => r.agent_id === agents[0]).map((r) => r.id));
  expect((await db.sql`select to_regclass('metric_series_ids') as t`)[0]!.t).toBeNull();
});

test("new series get ids after every id handed out before, rolled back ones included, in the frame's order", async () => {
  const cache = new SeriesCache();
  const names = ["disk.used_pct", "cpu.usage_pct", "net.rx_bytes_per_s", "swap.used_pct"];
  await cache.resolve(db.sql, [{ agentId: agents[0]!, names }]);
  const ids = [...cache.ids(agents[0]!, names)!];
  const old = before.find((r) => r.agent_id === agents[0] && r.name === "cpu.usage_pct")!.id;
  expect(ids[1]).toBe(old);
  const fresh = [ids[0]!, ids[2]!, ids[3]!];
  expect(fresh[0]).toBeGreaterThan(Math.max(...before.map((r) => r.id)) + 2); // after the two rolled back
  expect(fresh[1]).toBe(fresh[0]! + 1);
  expect(fresh[2]).toBe(fresh[1]! + 1);
  // registering again hands out nothing
  await new SeriesCache().resolve(db.sql, [{ agentId: agents[0]!, names }]);
  expect((await db.sql`select count(*)::int as n from metric_series where agent_id = ${agents[0]!}`)[0]!.n).toBe(6);
  // the view's insert returns the same id for a series that exists
  const [again] = await db.sql`insert into metric_series (agent_id, name) values (${agents[0]!}, 'cpu.usage_pct') returning id`;
  expect(Number(again!.id)).toBe(old);
});

test("registrations racing from several connections (the runtime role's too) hand out one id per series and do not deadlock", async () => {
  const names = Array.from({ length: 300 }, (_, i) => `race.m${i}`);
  // one of them as the server's least-privilege runtime role
  const runtime = await db.runtimeUrl();
  const clients = Array.from({ length: 4 }, (_, c) => createPgClient(c === 3 ? runtime : db.url, 1));
  try {
    // each connection registers every agent's names, agents and names in its own order
    const results = await Promise.all(clients.map((sql, c) => {
      const order = c % 2 ? [...agents].reverse() : agents;
      const cache = new SeriesCache();
      const wanted = order.map((agentId) => ({ agentId, names: c % 2 ? [...names].reverse() : names }));
      return cache.resolve(sql, wanted).then(() => agents.map((a) => [...cache.ids(a, names)!]));
    }));
    for (const r of results) expect(r).toEqual(results[0]!);
    const all = results[0]!.flat();
    expect(new Set(all).size).toBe(agents.length * names.length);
    const [n] = await db.sql`select count(*)::int as n from metric_series where name like 'race.%'`;
    expect(n!.n).toBe(agents.length * names.length);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
});

test("a series costs about 9 bytes, where a row per series cost about 108", async () => {
  const [{ agent }] = await db.sql`insert into agents (hostname, public_key) values ('big', ${Buffer.alloc(32, 9)}) returning id::int as agent` as never as [{ agent: number }];
  const names = Array.from({ length: 200 }, (_, i) => `size.m${i}`);
  await new SeriesCache().resolve(db.sql, [{ agentId: agent, names }]);
  const [r] = await db.sql`select pg_column_size(s.*)::int as b from metric_agent_series s where agent_id = ${agent}`;
  expect(r!.b / names.length).toBeLessThan(10);
});

test("a bad call is refused with a message, and an unknown agent registers nothing", async () => {
  await expect(db.sql`select * from metric_series_register(array[1]::int8[], array['a', 'b'])`).rejects.toThrow(/1 agents for 2 names/);
  await expect(new SeriesCache().resolve(db.sql, [{ agentId: 999_999, names: ["x.y"] }])).rejects.toThrow(/foreign key/);
  expect((await db.sql`select count(*)::int as n from metric_agent_series where agent_id = 999999`)[0]!.n).toBe(0);
});

test("latest values read back the same after migration 560, with each set of names stored once", async () => {
  const after = await db.sql`select agent_id::int, ts, names, vals, cpu, mem, disk from metric_latest order by agent_id`;
  expect([...after]).toEqual(latestBefore as never);
  expect(after[0]).toMatchObject({ cpu: 12.5, mem: 40, disk: null });
  expect(after[2]!.names).toEqual(["load.1", 'odd "quoted", name']);
  expect((await db.sql`select count(*)::int as n from metric_name_sets`)[0]!.n).toBe(2);
  // through the view: an insert replaces the row, an update rewrites it, a delete removes it
  await db.sql`insert into metric_latest (agent_id, ts, names, vals) values (${agents[2]!}, now(), '{mem.used_pct}', '{7}')`;
  expect((await db.sql`select mem, names from metric_latest where agent_id = ${agents[2]!}`)[0]).toEqual({ mem: 7, names: ["mem.used_pct"] });
  await db.sql`update metric_latest set vals[1] = 8 where agent_id = ${agents[2]!}`;
  expect((await db.sql`select mem from metric_latest where agent_id = ${agents[2]!}`)[0]!.mem).toBe(8);
  await db.sql`delete from metric_latest where agent_id = ${agents[2]!}`;
  expect((await db.sql`select count(*)::int as n from metric_latest_rows where agent_id = ${agents[2]!}`)[0]!.n).toBe(0);
  await expect(db.sql`insert into metric_latest (agent_id, ts, names, vals) values (${agents[2]!}, now(), null, '{}')`).rejects.toThrow(/names must not be null/);
});

test("the ingest flush writes a row per agent that refers to its name set, looked up once, with the fleet's columns", async () => {
  const state = new AgentState(db.sql);
  const a = ["cpu.usage_pct", "flush.only", 'disk.used_pct{mount="/"}'];
  const b = ["flush.other", "mem.used_pct"];
  const frame = (names: string[], values: number[]) => ({ ts: Float64Array.of(2e12), names, values: Float64Array.from(values), namesKey: names.join("\n") });
  state.metrics(agents[0]!, frame(a, [12.5, 1, NaN]));
  state.metrics(agents[1]!, frame(a, [50, 2, 75.5]));
  state.metrics(agents[2]!, frame(b, [3, 44]));
  const sets0 = (await db.sql`select count(*)::int as n from metric_name_sets`)[0]!.n;
  await state.flush();
  expect((await db.sql`select count(*)::int as n from metric_name_sets`)[0]!.n).toBe(sets0 + 2);
  const rows = await db.sql`select agent_id::int, names, vals, cpu, mem, disk from metric_latest where agent_id = any(${agents}::int8[]) order by agent_id`;
  expect([...rows]).toEqual([
    // (postgres.js reads a NULL element of a float8[] as NaN)
    { agent_id: agents[0], names: a, vals: [12.5, 1, NaN], cpu: 12.5, mem: null, disk: null },
    { agent_id: agents[1], names: a, vals: [50, 2, 75.5], cpu: 50, mem: null, disk: 75.5 },
    { agent_id: agents[2], names: b, vals: [3, 44], cpu: null, mem: 44, disk: null },
  ]);
  const [r0, r1] = await db.sql`select names_set from metric_latest_rows where agent_id = any(${agents.slice(0, 2)}::int8[])`;
  expect(r0!.names_set).toBe(r1!.names_set);
  // values only: no lookup, the same set
  state.metrics(agents[0]!, frame(a, [13, 1, 60]));
  await state.flush();
  expect((await db.sql`select cpu, disk from metric_latest where agent_id = ${agents[0]!}`)[0]).toEqual({ cpu: 13, disk: 60 });
  expect((await db.sql`select count(*)::int as n from metric_name_sets`)[0]!.n).toBe(sets0 + 2);
});
