/**
 * What compressing and signing costs the agent: lz4 block compression (the pure-TS codec in
 * src/ingest/frame/lz4.ts, the one the cross-compiled agent ships) of realistic bodies, and a
 * whole encodeFrame (compress + header + Ed25519 signature). Prints one JSON line.
 *
 *   bun bench/agent-lz4.bench.ts [--seconds 2]
 */
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { createHostFs } from "../agent/collect/collector.ts";
import { createMetricCollectors } from "../agent/collect/registry.ts";
import { collectMetrics } from "../agent/collect/process.ts";
import { toLogsBody } from "../agent/collect/logs/batch.ts";
import { encodeFrame, packLogs, packMetrics } from "../src/ingest/frame/encode.ts";
import { FrameKind } from "../src/ingest/frame/frame.ts";
import { lz4Compress, lz4Decompress } from "../src/ingest/frame/lz4.ts";
import { environment } from "./support.ts";

const i = process.argv.indexOf("--seconds");
const seconds = i >= 0 ? Number(process.argv[i + 1]) : 2;

// one real tick of every collector on this machine, and ten of them in one frame
const collectors = createMetricCollectors({ fs: createHostFs("/"), now: Date.now });
collectMetrics(collectors, new Map());
await Bun.sleep(200);
const tick = collectMetrics(collectors, new Map());
const now = Date.now();
const one = packMetrics({ ts: Float64Array.of(now), names: tick.names, values: Float64Array.from(tick.values) });
const ten = packMetrics({
  ts: Float64Array.from({ length: 10 }, (_, k) => now + k * 10_000),
  names: tick.names,
  values: Float64Array.from({ length: tick.names.length * 10 }, (_, k) => tick.values[Math.floor(k / 10)]! * (1 + (k % 10) * 0.001)),
});
// 1,000 log lines: this machine's dpkg log, repeated as needed
const src = readFileSync("/var/log/dpkg.log", "utf8").split("\n").filter(Boolean);
const lines = Array.from({ length: 1000 }, (_, k) => ({ ts: now + k, severity: 6, source: "/var/log/dpkg.log", message: src[k % src.length]! }));
const logs = packLogs(toLogsBody(lines));

function rate(body: Uint8Array) {
  let n = 0;
  let out = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    out = lz4Compress(body).length;
    n++;
  }
  const s = (performance.now() - t0) / 1000;
  const c = lz4Compress(body);
  let d = 0;
  const t1 = performance.now();
  while (performance.now() - t1 < seconds * 500) {
    lz4Decompress(c, body.length);
    d++;
  }
  const ds = (performance.now() - t1) / 1000;
  return { raw_bytes: body.length, lz4_bytes: out, ratio: Math.round((body.length / out) * 100) / 100, compress_mb_s: Math.round((body.length * n) / s / 1e6), decompress_mb_s: Math.round((body.length * d) / ds / 1e6) };
}

const key = generateKeyPairSync("ed25519").privateKey;
let frames = 0;
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  encodeFrame({ kind: FrameKind.Logs, agentId: 1, seq: frames + 1, batchId: frames + 1, createdMs: now, items: 1000 }, logs, key);
  frames++;
}
const encodeUs = ((performance.now() - t0) * 1000) / frames;

console.log(JSON.stringify({
  bench: "agent-lz4",
  metrics_1_tick: { series: tick.names.length, ...rate(one) },
  metrics_10_ticks: rate(ten),
  logs_1000_lines: rate(logs),
  encode_frame_logs_1000_us: Math.round(encodeUs),
  ...environment(),
}));
