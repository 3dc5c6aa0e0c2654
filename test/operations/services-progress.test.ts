/**
 * Reading a service operation back while it runs (src/operations/services.ts operationProgress,
 * runProgress) over a real PostgreSQL: output lines from command_output in chunk order and from
 * a given chunk on; only hosts within the scope; an operation left unfinished longer than
 * LOST_AFTER_S (its server stopped waiting) reads as failed, so the console stops polling it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../support/db.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { LOST_AFTER_S, operationProgress, runProgress } from "../../src/operations/services.ts";

let db: TestDb;
const all = HostScope.forPermission([{ permissions: ["services.view"], tags: [] }], "services.view");
const dbOnly = HostScope.forPermission([{ permissions: ["services.view"], tags: ["group:db"] }], "services.view");
const RUN = "0b0e9a52-7d7e-4c1a-9f43-2b6f0e1d2a3b";

beforeAll(async () => {
  db = await testDatabase();
}, 60_000);
afterAll(async () => {
  await db?.drop();
});

test("output in chunk order and from a chunk on, within the scope; a row unfinished for too long reads as failed", async () => {
  const { sql } = db;
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values ('web-1', ${Buffer.alloc(32, 1)}, ${["group:web"]}, now()) returning id`;
  const agent = Number(a!.id);
  await sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at) values ('cmd-running', ${agent}, 'service.action', '{}', 'user:1 a', now())`;
  const [fresh] = await sql`insert into service_operations (run_id, command_id, agent_id, unit, op, requested_by, status)
    values (${RUN}, 'cmd-running', ${agent}, 'x.service', 'start', 'user:1 a', 'sent') returning id`;
  const [old] = await sql`insert into service_operations (run_id, agent_id, unit, op, requested_by, status, requested_at)
    values (${RUN}, ${agent}, 'x.service', 'start', 'user:1 a', 'queued', now() - make_interval(secs => ${LOST_AFTER_S + 5})) returning id`;
  // chunks stored out of order
  await sql`insert into command_output (command_id, seq, lines) values
    ('cmd-running', 1, ${sql.json([{ ts: 2, src: "journal", text: "b" }])}), ('cmd-running', 0, ${sql.json([{ ts: 1, src: "state", text: "a" }])})`;

  const p = await operationProgress(sql, all, Number(fresh!.id));
  expect(p).toMatchObject({ status: "sent", finished: false, unit: "x.service", host: { id: agent, hostname: "web-1" }, last: 1 });
  expect(p!.lines.map((l) => l.text)).toEqual(["a", "b"]);
  expect((await operationProgress(sql, all, Number(fresh!.id), 0))!.lines.map((l) => l.text)).toEqual(["b"]);
  expect((await operationProgress(sql, all, Number(fresh!.id), 1))!).toMatchObject({ lines: [], last: 1 });
  expect(await operationProgress(sql, dbOnly, Number(fresh!.id))).toBeUndefined();
  expect(await operationProgress(sql, all, 999_999)).toBeUndefined();

  const lost = await operationProgress(sql, all, Number(old!.id));
  expect(lost).toMatchObject({ status: "failed", finished: true, error: expect.stringContaining(`no result within ${LOST_AFTER_S} s`) });

  const rows = await runProgress(sql, all, RUN);
  expect(rows.map((r) => [r.id, r.status, r.finished])).toEqual([[Number(fresh!.id), "sent", false], [Number(old!.id), "failed", true]]);
  expect(await runProgress(sql, dbOnly, RUN)).toEqual([]);
  expect(await runProgress(sql, all, "not-a-run")).toEqual([]);
});
