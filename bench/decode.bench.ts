/**
 * Frame decode alone on one core (npm run bench:decode [-- --quick]): frames/s, samples/s and
 * MB/s of splitFrames + decodeFrameBody (LZ4 block + msgpack + validation), with and without
 * the Ed25519 check, and sealed with a session (HMAC-SHA256, docs/protocol.md 3.5), next to
 * plain msgpackr unpack of the same (uncompressed) bodies.
 * Also sizes and decode speed of the alternative body encodings we rejected, to justify the
 * packed float64 layout: one msgpack map per sample, and per-series arrays of numbers.
 */
import { generateKeyPairSync } from "node:crypto";
import { Packr, unpack } from "msgpackr";
import { encodeFrame, packLogs, packMetrics } from "../src/ingest/frame/encode.ts";
import { decodeFrameBody, splitFrames, verifyFrame, verifySealedFrame, type Inflate } from "../src/ingest/frame/decode.ts";
import { loadNativeLz4 } from "../src/ingest/lz4-native.ts";
import { FrameKind } from "../src/ingest/frame/frame.ts";
import { lz4Compress, lz4Decompress } from "../src/ingest/frame/lz4.ts";
import { arg, environment, flag, median, round } from "./support.ts";

const quick = flag("quick");
const SECONDS = Number(arg("seconds", quick ? "0.5" : "2"));
const REPEAT = Number(arg("repeat", quick ? "3" : "5"));
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const packr = new Packr({ useRecords: false });

/** Runs fn for `SECONDS`, REPEAT times; returns the median rate in calls per second. */
function rate(fn: () => void): number {
  const rates: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < SECONDS * 1000) {
      for (let i = 0; i < 100; i++) fn();
      n += 100;
      t = performance.now();
    }
    rates.push(n / ((t - t0) / 1000));
  }
  return median(rates);
}

const now = Date.now();
const names = Array.from({ length: 100 }, (_, i) => `system.metric_${i}`);
const ts = Float64Array.from({ length: 10 }, (_, i) => now + i * 10_000);
// realistic values: gauges with two decimals, counters, a few constants
const values = Float64Array.from({ length: 1000 }, (_, i) => (i % 3 === 0 ? Math.round(Math.random() * 10000) / 100 : i % 3 === 1 ? 1e9 + i * 4096 : 0));
const metricsBody = packMetrics({ ts, names, values });
const metricsFrame = encodeFrame({ kind: FrameKind.Metrics, agentId: 1, seq: 1, batchId: 1, createdMs: now, items: 1000 }, metricsBody, privateKey);
const session = { id: 1, key: new Uint8Array(32).fill(5) };
const sealedFrame = encodeFrame({ kind: FrameKind.Metrics, agentId: 1, seq: 1, batchId: 1, createdMs: now, items: 1000 }, metricsBody, session);
const lines = Array.from({ length: 200 }, (_, i) => `sshd[${4000 + i}]: Accepted publickey for deploy from 10.1.2.${i % 250} port ${50000 + i} ssh2: ED25519 SHA256:abc`);
const logsBody = packLogs({ ts: Float64Array.from(lines, (_, i) => now + i), severity: new Uint8Array(200).fill(6), sources: ["sshd"], sourceIndex: new Uint16Array(200), messages: lines });
const logsFrame = encodeFrame({ kind: FrameKind.Logs, agentId: 1, seq: 2, batchId: 2, createdMs: now, items: 200 }, logsBody, privateKey);

function decodeOnly(frame: Uint8Array, inflate?: Inflate) {
  const e = splitFrames(frame)[0]!.frame!;
  decodeFrameBody(e.header, e.body, inflate);
}
function decodeVerified(frame: Uint8Array) {
  const e = splitFrames(frame)[0]!.frame!;
  if (!verifyFrame(e, publicKey)) throw new Error("signature");
  decodeFrameBody(e.header, e.body);
}

function decodeSealed(frame: Uint8Array) {
  const e = splitFrames(frame)[0]!.frame!;
  if (!verifySealedFrame(e, session.key)) throw new Error("session tag");
  decodeFrameBody(e.header, e.body);
}

// Rejected alternatives, same samples
const perSample = packr.pack(names.flatMap((n, s) => Array.from(ts, (t, j) => ({ name: n, t, v: values[s * 10 + j] }))));
const perSeries = packr.pack({ t: Array.from(ts), s: names.map((n, s) => ({ n, v: Array.from(values.subarray(s * 10, s * 10 + 10)) })) });

const mFrames = rate(() => decodeOnly(metricsFrame));
const mFramesSig = rate(() => decodeVerified(metricsFrame));
const mFramesSealed = rate(() => decodeSealed(sealedFrame));
const mPlain = rate(() => unpack(metricsBody));
const lFrames = rate(() => decodeOnly(logsFrame));
const lPlain = rate(() => unpack(logsBody));
const perSampleRate = rate(() => unpack(perSample));
const perSeriesRate = rate(() => unpack(perSeries));
const lz4c = lz4Compress(metricsBody);
const lz4Rate = rate(() => lz4Decompress(lz4c, metricsBody.length));
// The server's default: liblz4 through bun:ffi when the system has it (src/ingest/lz4-native.ts)
const native = loadNativeLz4();
const nativeRates = "inflate" in native
  ? { library: native.library, frames_per_s: Math.round(rate(() => decodeOnly(metricsFrame, native.inflate))), lz4_decompress_mb_per_s: round((rate(() => native.inflate(lz4c, metricsBody.length)) * metricsBody.length) / 1e6, 1) }
  : { error: native.error };

console.log(JSON.stringify({
  bench: "decode",
  ...environment(),
  quick,
  metrics: {
    frame_bytes: metricsFrame.length,
    raw_body_bytes: metricsBody.length,
    samples_per_frame: 1000,
    frames_per_s: Math.round(mFrames),
    samples_per_s: Math.round(mFrames * 1000),
    wire_mb_per_s: round((mFrames * metricsFrame.length) / 1e6, 1),
    frames_per_s_with_signature: Math.round(mFramesSig),
    frames_per_s_sealed_with_session: Math.round(mFramesSealed),
    plain_msgpackr_unpack_per_s: Math.round(mPlain),
    ratio_to_plain_unpack: round(mFrames / mPlain, 2),
    lz4_decompress_mb_per_s: round((lz4Rate * metricsBody.length) / 1e6, 1),
    with_liblz4: nativeRates,
  },
  logs: {
    frame_bytes: logsFrame.length,
    raw_body_bytes: logsBody.length,
    frames_per_s: Math.round(lFrames),
    lines_per_s: Math.round(lFrames * 200),
    wire_mb_per_s: round((lFrames * logsFrame.length) / 1e6, 1),
    plain_msgpackr_unpack_per_s: Math.round(lPlain),
    ratio_to_plain_unpack: round(lFrames / lPlain, 2),
  },
  body_encodings: {
    packed_float64: { bytes: metricsBody.length, lz4_bytes: lz4c.length, samples_per_s: Math.round(mPlain * 1000) },
    map_per_sample: { bytes: perSample.length, lz4_bytes: lz4Compress(perSample).length, samples_per_s: Math.round(perSampleRate * 1000) },
    array_per_series: { bytes: perSeries.length, lz4_bytes: lz4Compress(perSeries).length, samples_per_s: Math.round(perSeriesRate * 1000) },
  },
}));
