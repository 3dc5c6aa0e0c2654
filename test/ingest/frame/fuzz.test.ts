/**
 * Fuzzes the frame decoder with 120,000 mutated frames (seeded; the seed is printed so a
 * failure can be replayed with FUZZ_SEED). Every frame must either decode to a well-formed
 * body or be refused with a FrameError: no other exception, no crash, bounded memory. Some seeds
 * are sealed with a session: no mutated frame may pass the session check.
 */
import { expect, test } from "bun:test";
import { fuzzSeed, rng } from "../../support/rng.ts";
import { generateKeyPairSync } from "node:crypto";
import { heapStats } from "bun:jsc";
import { encodeFrame, packLogs, packMap, packMetrics, packSecurity } from "../../../src/ingest/frame/encode.ts";
import { decodeFrameBody, splitFrames, verifyFrame, verifySealedFrame } from "../../../src/ingest/frame/decode.ts";
import { FLAG_SESSION, FrameError, FrameKind, HEADER_SIZE, SIGNATURE_SIZE } from "../../../src/ingest/frame/frame.ts";

const ITERATIONS = 120_000;
const seed = fuzzSeed();


test(`decoder survives ${ITERATIONS} mutated frames (seed ${seed})`, () => {
  console.log(`fuzz seed ${seed}`);
  const rand = rng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const now = 1_790_000_000_000;
  const f = (kind: FrameKind, items: number, body: Uint8Array) => encodeFrame({ kind, agentId: 1, seq: 1, batchId: 1, createdMs: now, items }, body, privateKey);
  const session = { id: 0xc0ffee, key: new Uint8Array(32).fill(9) };
  const signedSeeds = [
    f(FrameKind.Metrics, 1000, packMetrics({ ts: Float64Array.from({ length: 10 }, (_, i) => now + i * 1000), names: Array.from({ length: 100 }, (_, i) => `m${i}`), values: new Float64Array(1000).map((_, i) => i) })),
    f(FrameKind.Metrics, 6, packMetrics({ ts: Float64Array.of(now, now + 1, now + 2), names: ["a", "b"], values: Float64Array.of(1, 2, 3, 4, 5, 6) })),
    f(FrameKind.Logs, 3, packLogs({ ts: Float64Array.of(now, now, now), severity: Uint8Array.of(1, 2, 3), sources: ["x", "y"], sourceIndex: Uint16Array.of(0, 1, 1), messages: ["a", "bb", "c".repeat(300)] })),
    f(FrameKind.SecurityEvents, 1, packSecurity({ events: [{ ts: now, type: "fim.modify", severity: 4, path: "/etc/a", data: { x: [1, { y: 2 }] } }] })),
    f(FrameKind.Inventory, 1, packMap({ os: { id: "debian" }, packages: Array.from({ length: 50 }, (_, i) => ({ name: `p${i}`, version: "1.0" })) })),
    f(FrameKind.Heartbeat, 1, packMap({ up: 1 })),
  ];
  const sealedSeeds = [
    encodeFrame({ kind: FrameKind.Metrics, agentId: 1, seq: 2, batchId: 2, createdMs: now, items: 6 }, packMetrics({ ts: Float64Array.of(now, now + 1, now + 2), names: ["a", "b"], values: Float64Array.of(1, 2, 3, 4, 5, 6) }), session),
    encodeFrame({ kind: FrameKind.Heartbeat, agentId: 1, seq: 3, batchId: 0, createdMs: now, items: 1 }, packMap({ up: 1 }), session),
  ];
  const seeds = [...signedSeeds, ...sealedSeeds];
  const sealedHex = new Set(sealedSeeds.map((x) => Buffer.from(x).toString("hex")));
  let sealedChecked = 0;
  const interesting = [0, 1, 0x7f, 0x80, 0xff, 0xc1, 0xdc, 0xdd, 0xde, 0xdf, 0xc4, 0xc5, 0xc6, 0xd4, 0xd5, 0xc7, 0xc8, 0xc9, 0x91, 0x81];
  let decoded = 0;
  let refused = 0;
  const codes = new Map<string, number>();
  const before = heapStats().heapSize;
  const t0 = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    const base = seeds[int(seeds.length)]!;
    let m = base.slice();
    const ops = 1 + int(4);
    for (let k = 0; k < ops; k++) {
      switch (int(8)) {
        case 0: m[int(m.length)]! ^= 1 << int(8); break; // bit flip
        case 1: m[int(m.length)] = interesting[int(interesting.length)]!; break;
        case 2: m = m.subarray(0, int(m.length)); break; // truncate
        case 3: { const at = HEADER_SIZE + int(Math.max(1, m.length - HEADER_SIZE)); m[at] = int(256); break; } // body byte
        case 4: new DataView(m.buffer, m.byteOffset).setUint32([48, 52, 56][int(3)]!, [0, 1, 0xffffffff, int(1 << 20), m.length][int(5)]!, true); break; // lengths
        case 5: { const o = seeds[int(seeds.length)]!; const c = new Uint8Array(m.length + o.length); c.set(m); c.set(o, m.length); m = c; break; } // concat
        case 6: m[5] = int(8); break; // kind
        case 7: { const dv = new DataView(m.buffer, m.byteOffset); if (m.length >= HEADER_SIZE) { if (rand() < 0.5) dv.setUint16(6, int(4), true); else dv.setUint32(60, [0, 1, session.id, int(2 ** 32)][int(4)]!, true); } break; } // flags, session id
      }
      if (m.length < 8) break;
    }
    let entries;
    try {
      entries = splitFrames(m);
    } catch (e) {
      throw new Error(`splitFrames threw ${e} (iteration ${i}, seed ${seed})`);
    }
    for (const e of entries) {
      if (e.error) {
        expect(e.error).toBeInstanceOf(FrameError);
        refused++;
        codes.set(e.error.code, (codes.get(e.error.code) ?? 0) + 1);
        continue;
      }
      if (e.frame.header.flags & FLAG_SESSION) {
        sealedChecked++;
        if (verifySealedFrame(e.frame, session.key)) {
          const whole = Buffer.from(m.buffer, e.frame.signed.byteOffset, e.frame.signed.length + SIGNATURE_SIZE).toString("hex");
          expect(sealedHex.has(whole)).toBe(true); // only an unchanged sealed frame passes
        }
      } else if (i % 20 === 0) verifyFrame(e.frame, publicKey);
      try {
        const b = decodeFrameBody(e.frame.header, e.frame.body);
        if (b.kind === FrameKind.Metrics) expect(b.body.values.length).toBe(b.body.names.length * b.body.ts.length);
        decoded++;
      } catch (err) {
        if (!(err instanceof FrameError)) throw new Error(`decodeFrameBody threw ${err} (iteration ${i}, seed ${seed})`);
        refused++;
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
      }
    }
  }
  Bun.gc(true);
  const grown = (heapStats().heapSize - before) / 2 ** 20;
  console.log(JSON.stringify({ iterations: ITERATIONS, decoded, refused, sealed_checked: sealedChecked, ms: Math.round(performance.now() - t0), heap_growth_mb: Math.round(grown), codes: Object.fromEntries(codes) }));
  expect(refused).toBeGreaterThan(ITERATIONS / 2);
  expect(decoded).toBeGreaterThan(0);
  expect(codes.size).toBeGreaterThanOrEqual(6);
  expect(sealedChecked).toBeGreaterThan(ITERATIONS / 10);
  expect(grown).toBeLessThan(256);
}, 120_000);
