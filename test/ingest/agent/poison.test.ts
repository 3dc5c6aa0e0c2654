/**
 * Issue #13, poison frames, end to end over the real transport: agent A sends a NUL in a log
 * message and in security-event data (what a real log file or a process command line holds),
 * a series name with NUL and an inventory PostgreSQL cannot date, in the same requests as agent
 * B's ordinary frames. B's frames must be acknowledged `ok` promptly; A's must be stored exactly
 * or refused with their specific code; no connection may stay in an aborted transaction, and
 * the next batch must still commit. (Before the fix, the NUL wedged every store writer.)
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
setDefaultTimeout(60_000);
import { Unpackr } from "msgpackr";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, logsFrame, metricsFrame, post, type SimAgent } from "../../support/sim-agent.ts";
import { encodeFrame, packLogs, packMap, packMetrics, packSecurity } from "../../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";

let s: TestServer;
let a: SimAgent;
let b: SimAgent;
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" } as any);

beforeAll(async () => {
  s = await startTestServer();
  a = await enroll(s.url, await s.token(), "poisoned");
  b = await enroll(s.url, await s.token(), "bystander");
});
afterAll(async () => {
  await s?.close();
});

/** Posts within a bounded time: a wedged writer shows up as a timeout, not a hung test. */
async function postBounded(frames: Uint8Array[], ms = 10_000) {
  const t0 = performance.now();
  const r = await Promise.race([post(s.url, frames), Bun.sleep(ms).then(() => null)]);
  expect(r === null ? `no answer within ${ms} ms` : "answered").toBe("answered");
  return { ...r!, ms: performance.now() - t0 };
}

const frame = (x: SimAgent, kind: FrameKind, items: number, body: Uint8Array, createdMs = Date.now()) =>
  encodeFrame({ kind, agentId: x.id, seq: ++x.seq, batchId: ++x.batch, createdMs, items }, body, x.privateKey);

test("NUL in A's log message and event data neither blocks B nor wedges a writer; A's data is stored exactly", async () => {
  const now = Date.now();
  a.batch = 1000; // A's batch ids apart from B's, so acks and rejects (named by batch) tell them apart
  const message = "x\u0000y";
  const data = { cmdline: "sleep\u00001000", "k\u0000ey": [1, NaN], plain: "ok" };
  const logs = frame(a, FrameKind.Logs, 2, packLogs({ ts: Float64Array.of(now, now), severity: Uint8Array.of(3, 6), sources: ["/var/log/app.log"], sourceIndex: Uint16Array.of(0, 0), messages: [message, "after the NUL"] }));
  const event = frame(a, FrameKind.SecurityEvents, 1, packSecurity({ events: [{ ts: now, type: "proc.exec", severity: 5, path: "/usr/bin/sleep", data }] }));
  const badName = frame(a, FrameKind.Metrics, 1, packMetrics({ ts: Float64Array.of(now), names: ["cpu\u0000util"], values: Float64Array.of(1) }));
  // created at 9e18 ms: no date PostgreSQL (or JavaScript) can hold
  const undatable = frame(a, FrameKind.Inventory, 1, packMap({ os: "linux" }), 9e18);
  const ids = { logs: a.batch - 3, event: a.batch - 2, badName: a.batch - 1, undatable: a.batch };

  for (let round = 0; round < 5; round++) {
    const mine = [metricsFrame(b, 20, 5, now + round), logsFrame(b, 10, now + round)];
    const mixed = round === 0 ? [mine[0]!, logs, event, badName, undatable, mine[1]!] : mine;
    // B also sends alone, concurrently, so B's frames share batches with A's from another request
    const [together, alone] = await Promise.all([postBounded(mixed), postBounded([metricsFrame(b, 5, 2, now + round)])]);
    // B's frames (and A's storable ones) are all acknowledged ok, promptly
    expect(together.body.acks!.map((x) => x.status)).toEqual(round === 0 ? ["ok", "ok", "ok", "ok"] : ["ok", "ok"]);
    expect(alone.body.acks!.map((x) => x.status)).toEqual(["ok"]);
    expect(alone.body.rejects).toEqual([]);
    expect(Math.max(together.ms, alone.ms)).toBeLessThan(10_000);
    if (round === 0) {
      const acked = new Set(together.body.acks!.map((x) => x.batch));
      expect(acked.has(ids.logs) && acked.has(ids.event)).toBe(true);
      const rejects = Object.fromEntries(together.body.rejects!.map((r) => [r.batch, r.code]));
      expect(rejects[ids.badName]).toBe("bad_name");
      // a creation time PostgreSQL cannot hold is refused at decode (docs/protocol.md section 5)
      expect(rejects[ids.undatable]).toBe("bad_timestamp");
      expect(together.status).toBe(422);
      expect(Object.keys(rejects).length).toBe(2);
    }
  }

  // A's data reads back exactly
  const lines = await s.db.sql<{ message: string; message_raw: Buffer | null }[]>`select message, message_raw from logs where agent_id = ${a.id} order by message`;
  expect(lines.map((l) => (l.message_raw ? Buffer.from(l.message_raw).toString("utf8") : l.message)).sort()).toEqual([message, "after the NUL"].sort());
  expect(lines.find((l) => l.message_raw)!.message).toBe("x\uFFFDy");
  const [ev] = await s.db.sql<{ data: Record<string, unknown>; data_raw: Buffer }[]>`select data, data_raw from security_events where agent_id = ${a.id}`;
  expect(unpackr.unpack(ev!.data_raw)).toEqual(data);
  expect(ev!.data).toEqual({ cmdline: "sleep\uFFFD1000", "k\uFFFDey": [1, null], plain: "ok" });
  expect((await s.db.sql`select 1 from metric_series where agent_id = ${a.id}`).length).toBe(0);

  // every writer is healthy: nothing is left in a transaction, and a following batch commits
  const stuck = await s.db.sql<{ state: string }[]>`select state from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`;
  expect(stuck.map((r) => r.state)).toEqual([]);
  const after = await postBounded([metricsFrame(b, 3, 1, Date.now()), metricsFrame(a, 3, 1, Date.now())]);
  expect(after.body.acks!.map((x) => x.status)).toEqual(["ok", "ok"]);
  // a resend of A's NUL line is a duplicate, not a new failure
  const again = encodeFrame({ kind: FrameKind.Logs, agentId: a.id, seq: ++a.seq, batchId: ids.logs, createdMs: now, items: 2 }, packLogs({ ts: Float64Array.of(now, now), severity: Uint8Array.of(3, 6), sources: ["/var/log/app.log"], sourceIndex: Uint16Array.of(0, 0), messages: [message, "after the NUL"] }), a.privateKey);
  expect((await postBounded([again])).body.acks!.map((x) => x.status)).toEqual(["dup"]);
}, 60_000);
