/** The console's queries over data that went through the real ingest path. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, post, type SimAgent } from "../../support/sim-agent.ts";
import { encodeFrame, packLogs, packMetrics } from "../../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import { searchLogs, seriesRange } from "../../../src/store/postgres/queries.ts";

let s: TestServer;
let a: SimAgent;
let b: SimAgent;
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000; // an hour ago, on the hour

function metrics(agent: SimAgent, names: string[], startMs: number, stamps: number, value: (series: number, t: number) => number) {
  const ts = Float64Array.from({ length: stamps }, (_, i) => startMs + i * 10_000);
  const values = new Float64Array(names.length * stamps);
  for (let s = 0; s < names.length; s++) for (let t = 0; t < stamps; t++) values[s * stamps + t] = value(s, t);
  return encodeFrame({ kind: FrameKind.Metrics, agentId: agent.id, seq: ++agent.seq, batchId: ++agent.batch, createdMs: startMs, items: values.length }, packMetrics({ ts, names, values }), agent.privateKey);
}

beforeAll(async () => {
  s = await startTestServer();
  a = await enroll(s.url, await s.token(), "alpha");
  b = await enroll(s.url, await s.token(), "beta");
  const names = ["cpu.util", "mem.used", ...Array.from({ length: 13 }, (_, i) => `x.${i}`)];
  // 360 timestamps (one hour at 10 s) in frames of 10: value = minute index for cpu, NaN every 7th for mem
  const frames: Uint8Array[] = [];
  for (let f = 0; f < 36; f++) {
    frames.push(metrics(a, names, T0 + f * 100_000, 10, (series, t) => {
      const idx = f * 10 + t;
      if (series === 0) return Math.floor(idx / 6);
      if (series === 1) return idx % 7 === 0 ? NaN : 100;
      return series;
    }));
  }
  expect((await post(s.url, frames)).status).toBe(200);
  expect((await post(s.url, metrics(b, ["cpu.util"], T0, 3, () => 42))).status).toBe(200);
  const lines = ["kernel: eth0 link up", "sshd: Failed password for root from 10.0.0.9", "cron: job 100% done_ok", "sshd: Accepted publickey for deploy"];
  const logs = encodeFrame(
    { kind: FrameKind.Logs, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: T0, items: lines.length },
    packLogs({ ts: Float64Array.from(lines, (_, i) => T0 + i * 1000), severity: Uint8Array.of(6, 4, 6, 6), sources: ["syslog"], sourceIndex: new Uint16Array(lines.length), messages: lines }),
    a.privateKey,
  );
  expect((await post(s.url, logs)).status).toBe(200);
  await s.ingest.deps.state.flush();
});
afterAll(async () => {
  await s?.close();
});

test("metric_latest holds the newest value of every series of every host (the fleet page reads it)", async () => {
  const rows = await s.db.sql`
    select a.hostname, l.vals[array_position(l.names, 'cpu.util')] as cpu, l.vals[array_position(l.names, 'mem.used')] as mem
    from agents a join metric_latest l on l.agent_id = a.id order by a.hostname`;
  expect(rows.map((r) => r.hostname)).toEqual(["alpha", "beta"]);
  expect([rows[0]!.cpu, rows[0]!.mem]).toEqual([59, 100]); // last stamp: idx 359 -> minute 59; 359 % 7 != 0
  expect(rows[1]!.cpu).toBe(42);
  expect(rows[1]!.mem).toBeNull();
});

test("metric_latest: a series without a value is a NULL element; unchanged names are kept, new ones replace them", async () => {
  const c = await enroll(s.url, await s.token(), "gamma");
  const latest = async () => (await s.db.sql`select names, vals[1] as v1, vals[2] is null as v2_null, vals[2] as v2 from metric_latest where agent_id = ${c.id}`)[0]!;
  expect((await post(s.url, metrics(c, ["cpu.util", "none"], T0, 3, (series) => (series === 1 ? NaN : 7)))).status).toBe(200);
  await s.ingest.deps.state.flush();
  expect(await latest()).toMatchObject({ names: ["cpu.util", "none"], v1: 7, v2_null: true });
  expect((await post(s.url, metrics(c, ["cpu.util", "none"], T0 + 30_000, 3, (series) => (series === 1 ? NaN : 8)))).status).toBe(200);
  await s.ingest.deps.state.flush(); // names unchanged: written as NULL and kept
  expect(await latest()).toMatchObject({ names: ["cpu.util", "none"], v1: 8, v2_null: true });
  expect((await post(s.url, metrics(c, ["cpu.util", "mem.used"], T0 + 60_000, 3, (series) => (series === 1 ? 512 : 9)))).status).toBe(200);
  await s.ingest.deps.state.flush();
  expect(await latest()).toMatchObject({ names: ["cpu.util", "mem.used"], v1: 9, v2_null: false, v2: 512 });
});

test("seriesRange downsamples into at most maxPoints buckets, skipping missing samples", async () => {
  const [cpu, mem] = await seriesRange(s.db.sql, a.id, ["cpu.util", "mem.used"], new Date(T0), new Date(T0 + 3_600_000), 60);
  expect(cpu!.t.length).toBe(60);
  expect(cpu!.t[0]).toBe(T0);
  expect(cpu!.t[1]! - cpu!.t[0]!).toBe(60_000);
  expect(cpu!.avg.slice(0, 3)).toEqual([0, 1, 2]);
  expect(cpu!.max[59]).toBe(59);
  expect(mem!.avg.every((v) => v === 100)).toBe(true); // NaN samples skipped, not averaged in
  const fine = await seriesRange(s.db.sql, a.id, ["cpu.util"], new Date(T0 + 600_000), new Date(T0 + 660_000), 1000);
  expect(fine[0]!.t.length).toBe(6); // 10 s buckets: one minute = 6 samples
  expect(fine[0]!.avg).toEqual([10, 10, 10, 10, 10, 10]);
  const none = await seriesRange(s.db.sql, a.id, ["nope"], new Date(T0), new Date(T0 + 1000));
  expect(none).toEqual([{ name: "nope", t: [], avg: [], min: [], max: [] }]);
});

test("searchLogs: newest first, case-insensitive text, LIKE characters taken literally", async () => {
  const range = { agentId: a.id, from: new Date(T0), to: new Date(T0 + 60_000) };
  expect((await searchLogs(s.db.sql, range)).map((l) => l.message.slice(0, 4))).toEqual(["sshd", "cron", "sshd", "kern"]);
  expect((await searchLogs(s.db.sql, { ...range, text: "SSHD" })).length).toBe(2);
  expect((await searchLogs(s.db.sql, { ...range, text: "100%" })).map((l) => l.message)).toEqual(["cron: job 100% done_ok"]);
  expect((await searchLogs(s.db.sql, { ...range, text: "e_o" })).length).toBe(1); // "_" is not a wildcard
  expect(await searchLogs(s.db.sql, { ...range, agentId: b.id })).toEqual([]);
});
