/**
 * Alert transitions on the host's incident timeline (issue #18: "each transition stored and
 * shown on the incident timeline and the host page"): the evaluator fires and resolves the
 * starter "Host offline" rule for a real host on a real PostgreSQL, and the host's incidents
 * then hold those transitions beside the other signals.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../support/db.ts";
import { Evaluator } from "../../src/alerts/evaluator.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { findHost } from "../../src/store/postgres/queries-console.ts";
import { gatherSignals, hostIncidents } from "../../src/security/incidents.ts";
import { addHost, setSeen } from "./support.ts";

let db: TestDb;
beforeAll(async () => {
  db = await testDatabase(4);
}, 60_000);
afterAll(() => db?.drop());

test("a critical alert firing is an incident of its own; its resolution joins the same timeline", async () => {
  const t0 = Date.now();
  const id = await addHost(db.sql, "edge-7", [], t0 - 600_000); // silent for 10 minutes
  const ev = new Evaluator(db.sql);
  await ev.load();
  await ev.cycle(t0);
  await setSeen(db.sql, [id], t0 + 20_000); // back
  await ev.cycle(t0 + 20_000);
  const states = await db.sql`select t.to_state from alert_transitions t join alert_instances i on i.id = t.instance_id where i.agent_id = ${id} order by t.id`;
  expect(states.map((r) => r.to_state)).toEqual(["firing", "resolved"]);

  const host = (await findHost(db.sql, HostScope.system("test"), id))!;
  const window = { fromMs: t0 - 3_600_000, toMs: t0 + 3_600_000 };
  const alerts = (await gatherSignals(db.sql, host, window)).filter((s) => s.kind === "alert");
  expect(alerts.map((s) => [s.severity, s.summary.split(":")[0]])).toEqual([
    [1, 'alert "Host offline" resolved'],
    [8, 'alert "Host offline" firing'],
  ]);
  const incidents = await hostIncidents(db.sql, host, window);
  const withAlert = incidents.find((i) => i.kinds.includes("alert"));
  expect(withAlert).toBeDefined();
  expect(withAlert!.severity).toBeGreaterThanOrEqual(8);
  expect(withAlert!.timeline.filter((s) => s.kind === "alert").map((s) => s.ref?.state)).toEqual(["firing", "resolved"]);
}, 60_000);
