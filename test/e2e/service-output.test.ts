/**
 * Output of service operations streams back while they run, end to end: the compiled agent's
 * Control process drives a real `systemd --user` (with a real systemd-journald beside it,
 * test/support/systemd-user.ts) and sends the unit's journal lines, its state changes and
 * systemctl's own output up the agent's connection as `command-output` chunks; the server
 * stores them and the console reads them back (/api/services/operations/:op, the htmx live
 * fragment) before the command's result arrives. A group run answers at once and its per-host
 * table fills in host by host (/api/services/runs/:run).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { consoleHarness, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { until, type E2eServer } from "../support/agent-harness.ts";
import { serviceFleetAvailable, startServiceFleet, type ServiceFleet } from "../support/service-fleet.ts";

setDefaultTimeout(180_000);

const run = serviceFleetAvailable({ journal: true });

let fleet: ServiceFleet;
let server: E2eServer;
let agentId: number;
let idleId: number;
let h: ConsoleHarness;
let op: TestSession;
/** A unit that takes about 3 s to start and prints a line every 0.6 s while it does. */
const TICKER = "sm-e2e-ticker.service";
const TICKS = 5;

beforeAll(async () => {
  if (!run) return;
  const ticker = `[Unit]\nDescription=ServerMind e2e ticker\n[Service]\nType=oneshot\nRemainAfterExit=no\nExecStart=/bin/sh -c 'for i in ${Array.from({ length: TICKS }, (_, i) => i + 1).join(" ")}; do echo "tick $i"; sleep 0.6; done'\n`;
  fleet = await startServiceFleet({ journal: true, units: { [TICKER]: ticker }, tag: "group:out" });
  ({ server, agentId, idleId } = fleet);
  h = await consoleHarness(server.db, { security: { commandKey: server.commandKey, dispatch: server.dispatch } });
  op = await h.userWith(["services.view", "services.start", "services.stop", "services.restart", "services.enable"], "svc-out");
  // the agent's command channel is up once a status comes back
  await until("the agent answers service commands", async () => {
    const r = await call("GET", `/api/hosts/${agentId}/services/status?unit=${TICKER}`);
    return r.json?.ok ? r : null;
  }, 60_000, 1000);
});

afterAll(async () => {
  await h?.close();
  await fleet?.stop();
});

const call = (method: "GET" | "POST", path: string, body?: Record<string, unknown>, o: { htmx?: boolean } = {}) => h.call(method, path, op, body, o);

describe.if(run)("service operation output streams back while the operation runs", () => {
  test("JSON API: the unit's journal lines and state changes arrive before the result; chunks are stored in order", async () => {
    const t0 = performance.now();
    const started = await call("POST", `/api/hosts/${agentId}/services/start`, { unit: TICKER, wait: "false" });
    const answeredMs = performance.now() - t0;
    expect(started.status).toBe(202);
    expect(started.json).toMatchObject({ status: "sent", follow: `/api/services/operations/${started.json.operation}` });
    const seen: Array<{ ms: number; src: string; text: string; finished: boolean }> = [];
    let last = -1;
    let final: any = null;
    const deadline = Date.now() + 60_000;
    while (!final && Date.now() < deadline) {
      const r = await call("GET", `/api/services/operations/${started.json.operation}?after=${last}`);
      expect(r.status).toBe(200);
      const ms = performance.now() - t0;
      for (const l of r.json.lines) seen.push({ ms, src: l.src, text: l.text, finished: r.json.finished });
      last = r.json.last;
      if (r.json.finished) final = { ...r.json, ms };
      else await Bun.sleep(100);
    }
    expect(final).not.toBeNull();
    // a malformed `after` is a 400 that says what it must be, not a silent "from the start"
    for (const bad of ["abc", "1.5", "-2"]) {
      const r = await call("GET", `/api/services/operations/${started.json.operation}?after=${bad}`);
      expect({ bad, status: r.status, message: r.json.error.message }).toEqual({ bad, status: 400, message: "after must be a whole number, -1 or more (the last of the previous answer)" });
    }
    expect(final).toMatchObject({ ok: true, status: "ok", unit: TICKER, op: "start", host: { id: agentId } });
    const journal = seen.filter((l) => l.src === "journal").map((l) => l.text);
    expect(journal).toEqual(Array.from({ length: TICKS }, (_, i) => `tick ${i + 1}`));
    expect(seen.some((l) => l.src === "state" && l.text === `${TICKER}: activating (start)`)).toBe(true);
    // the first chunk (and the first journal line) came while the command was still running
    const first = seen[0]!;
    const firstJournal = seen.find((l) => l.src === "journal")!;
    expect(first.finished).toBe(false);
    expect(firstJournal.finished).toBe(false);
    expect(final.ms - firstJournal.ms).toBeGreaterThan(1500);
    console.log(`service output: answered in ${answeredMs.toFixed(0)} ms, first chunk after ${first.ms.toFixed(0)} ms (${first.src}), first journal line after ${firstJournal.ms.toFixed(0)} ms, result after ${final.ms.toFixed(0)} ms; ${seen.length} lines`);
    // stored as numbered chunks of the command, in order; the command itself finished ok
    const [row] = await server.db.sql`select command_id from service_operations where id = ${started.json.operation}`;
    const chunks = await server.db.sql`select seq from command_output where command_id = ${row!.command_id} order by seq`;
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
    expect((await server.db.sql`select status from security_commands where id = ${row!.command_id}`)[0]!.status).toBe("ok");
    const [a] = await server.db.sql`select details from audit_log where category = 'service_operation' and action = 'service.start' and details->>'command' = ${row!.command_id}`;
    expect(a!.details).toMatchObject({ unit: TICKER, result: "ok" });
  });

  test("console (htmx): the action answers a live fragment that polls, shows the lines as they come, and stops polling when done", async () => {
    const r = await call("POST", `/api/hosts/${agentId}/services/restart`, { unit: TICKER }, { htmx: true });
    expect(r.status).toBe(200);
    const id = /data-operation="(\d+)"/.exec(r.text)?.[1];
    expect(id).toBeDefined();
    expect(r.text).toContain(`hx-get="/api/services/operations/${id}"`);
    expect(r.text).toContain("running");
    const running = await until("a fragment with output while still running", async () => {
      const f = await call("GET", `/api/services/operations/${id}`, undefined, { htmx: true });
      if (f.text.includes('data-status="ok"') || f.text.includes('data-status="failed"')) throw new Error("finished before any output was seen");
      return f.text.includes("journal: tick 1") ? f : null;
    }, 30_000, 100);
    expect(running.text).toContain(`hx-get="/api/services/operations/${id}"`);
    const done = await until("the finished fragment", async () => {
      const f = await call("GET", `/api/services/operations/${id}`, undefined, { htmx: true });
      return f.text.includes('data-status="ok"') ? f : null;
    }, 30_000, 200);
    expect(done.text).not.toContain("hx-get=");
    expect(done.text).toContain(`journal: tick ${TICKS}`);
    expect(done.text).toContain("done");
  });

  test("a group run answers at once; its per-host table fills in host by host", async () => {
    await h.reauth(op);
    const t0 = performance.now();
    const r = await call("POST", "/api/services/run/start", { group: "group:out", unit: TICKER, wait: "false", confirm: `start ${TICKER} on group:out` });
    const answeredMs = performance.now() - t0;
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ hosts: 2, follow: `/api/services/runs/${r.json.run}` });
    // the offline host fails at once while the running one is still at work
    const partial = await until("one host finished, one running", async () => {
      const s = await call("GET", `/api/services/runs/${r.json.run}`);
      const by = Object.fromEntries(s.json.results.map((x: any) => [x.host.id, x]));
      return by[idleId]?.finished && !by[agentId]?.finished ? s : null;
    }, 10_000, 50);
    const partialMs = performance.now() - t0;
    expect(partial.json).toMatchObject({ finished: false, failed: 1, pending: 1 });
    const html = await call("GET", `/api/services/runs/${r.json.run}?group=group:out`, undefined, { htmx: true });
    expect(html.text).toContain(`hx-get="/api/services/runs/${r.json.run}?group=group%3Aout"`);
    expect(html.text).toContain("still running");
    const done = await until("every host finished", async () => {
      const s = await call("GET", `/api/services/runs/${r.json.run}`);
      return s.json.finished ? s : null;
    }, 30_000, 200);
    const doneMs = performance.now() - t0;
    expect(done.json).toMatchObject({ hosts: 2, ok: 1, failed: 1, pending: 0 });
    const finalHtml = await call("GET", `/api/services/runs/${r.json.run}?group=group:out`, undefined, { htmx: true });
    expect(finalHtml.text).toContain("1 of 2 hosts done, 1 failed");
    expect(finalHtml.text).not.toContain("hx-get=");
    console.log(`group run: answered in ${answeredMs.toFixed(0)} ms, offline host's row filled in by ${partialMs.toFixed(0)} ms, running host's by ${doneMs.toFixed(0)} ms`);
  });
});
