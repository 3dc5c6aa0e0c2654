/**
 * A heartbeat holding what jsonb cannot (U+0000, NaN) is written in its display form, and does
 * not fail the agent-state flush that also writes every other agent's status and latest values
 * (issue #13).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
setDefaultTimeout(60_000);
import { testDatabase, type TestDb } from "../../support/db.ts";
import { AgentState } from "../../../src/store/postgres/agent-state.ts";

let db: TestDb;
beforeAll(async () => {
  db = await testDatabase(2);
});
afterAll(async () => {
  await db?.drop();
});

test("a heartbeat with NUL and NaN is stored in display form beside a clean one", async () => {
  const ids: number[] = [];
  for (const h of ["poisoned", "clean"]) ids.push(Number((await db.sql`insert into agents (hostname, public_key) values (${h}, ${Buffer.alloc(32, ids.length + 1)}) returning id`)[0]!.id));
  const state = new AgentState(db.sql, 60_000);
  state.heartbeat(ids[0]!, { "pro\u0000c": "a\u0000b", load: NaN, ok: 1 });
  state.heartbeat(ids[1]!, { ok: 2 });
  state.metrics(ids[1]!, { ts: Float64Array.of(Date.UTC(2026, 0, 1)), names: ["m"], values: Float64Array.of(7) });
  await state.flush();
  const rows = await db.sql<{ id: string; status: Record<string, unknown> }[]>`select id, status from agents order by id`;
  expect(rows.map((r) => r.status)).toEqual([{ "pro\uFFFDc": "a\uFFFDb", load: null, ok: 1 }, { ok: 2 }]);
  const [latest] = await db.sql<{ vals: number[] }[]>`select vals from metric_latest where agent_id = ${ids[1]!}`;
  expect(latest!.vals.map(Number)).toEqual([7]);
});
