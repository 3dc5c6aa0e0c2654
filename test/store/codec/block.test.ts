/**
 * The metric block codec: exact round trips of bit patterns over random and shaped series, the
 * mode each shape gets (its size), and a decoder that answers malformed bytes with CodecError only.
 */
import { expect, test } from "bun:test";
import { BLOCK_VERSION_ZSTD, ByteSink, CodecError, decodeBlock, encodeBlock, zstdBlock } from "../../../src/store/codec/block.ts";

/** Deterministic PRNG (mulberry32), so a failure names its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIALS = [NaN, Infinity, -Infinity, -0, 0, Number.MIN_VALUE, -Number.MIN_VALUE, 2.2250738585072014e-308 / 3,
  Number.MAX_VALUE, -Number.MAX_VALUE, 2 ** 53, -(2 ** 53), 2 ** 50 - 1, -(2 ** 50 - 1), 0.1, 1e-300, 123.456];

/** Values of one series of `nts` samples, in one of several shapes; some set raw bit patterns. */
function series(r: () => number, nts: number, out: Float64Array, at: number): void {
  const words = new Uint32Array(out.buffer);
  const shape = Math.floor(r() * 10);
  let x = Math.floor(r() * 1e6);
  const scale = [1, 10, 100, 1000, 1e6][Math.floor(r() * 5)]!;
  for (let i = 0; i < nts; i++) {
    let v: number;
    switch (shape) {
      case 0: v = 42.5; break; // constant
      case 1: x += Math.floor(r() * 10); v = x; break; // counter
      case 2: x += Math.floor(r() * 21) - 10; v = x / scale; break; // decimal gauge
      case 3: v = (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20); break; // noisy doubles
      case 4: v = SPECIALS[Math.floor(r() * SPECIALS.length)]!; break;
      case 5: v = r() < 0.3 ? NaN : (x += 3); break; // counter with gaps
      case 6: v = r() < 0.5 ? -0 : 0; break;
      case 7: v = 0; break;
      case 8: v = (x + Math.floor(r() * 5000)) / scale; break; // noise around a level (frame of reference)
      default: v = 0; break;
    }
    out[at + i] = v;
    if (shape === 9) {
      // arbitrary bit patterns: NaN payloads, signalling NaNs, subnormals
      words[2 * (at + i)] = Math.floor(r() * 2 ** 32);
      words[2 * (at + i) + 1] = r() < 0.5 ? (0x7ff00000 | Math.floor(r() * 0x100000)) >>> 0 : Math.floor(r() * 2 ** 32);
    }
  }
}

function bits(a: Float64Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length * 2);
}

/** One series encoded alone at 10 s steps: its block, checked to decode to the same bits. */
function encodeSeries(vals: number[]): Uint8Array {
  const sink = new ByteSink();
  encodeBlock(sink, Int32Array.from(vals, (_, i) => i * 10_000), [1], 0, 1, Float64Array.from(vals), 0);
  const b = sink.bytes().slice();
  expect([...bits(decodeBlock(b).values)]).toEqual([...bits(Float64Array.from(vals))]);
  return b;
}

test("random blocks of every shape round-trip bit for bit (2,000 blocks)", () => {
  const sink = new ByteSink(16); // tiny initial size: exercises growth
  for (let seed = 1; seed <= 2000; seed++) {
    const r = rng(seed);
    const nts = 1 + Math.floor(r() * (seed % 10 === 0 ? 300 : 12));
    const n = 1 + Math.floor(r() * 30);
    const tsOff = new Int32Array(nts);
    let t = Math.floor((r() - 0.5) * 1e6);
    for (let i = 0; i < nts; i++) {
      tsOff[i] = t;
      t += r() < 0.8 ? 10_000 : Math.floor((r() - 0.3) * 1e5);
    }
    const first = Math.floor((r() - 0.5) * 2 ** 31);
    const sids = Int32Array.from({ length: n + 3 }, (_, i) => (r() < 0.8 ? first + i : Math.floor((r() - 0.5) * 2 ** 32)));
    const pad = Math.floor(r() * 3);
    const values = new Float64Array(pad + n * nts + 2);
    for (let j = 0; j < n; j++) series(r, nts, values, pad + j * nts);
    const sidFrom = Math.floor(r() * 3);
    sink.reset();
    encodeBlock(sink, tsOff, sids, sidFrom, n, values, pad);
    const got = decodeBlock(sink.bytes());
    expect([...got.tsOff], `seed ${seed}`).toEqual([...tsOff]);
    expect([...got.sids], `seed ${seed}`).toEqual([...sids.subarray(sidFrom, sidFrom + n)]);
    expect([...bits(got.values)], `seed ${seed}`).toEqual([...bits(values.subarray(pad, pad + n * nts))]);
    // the filtered read keeps the wanted series only, in order
    const want = new Set([sids[sidFrom]!, sids[sidFrom + n - 1]!]);
    const some = decodeBlock(sink.bytes(), want);
    const idx = [...sids.subarray(sidFrom, sidFrom + n)].map((id, j) => [id, j] as const).filter(([id]) => want.has(id));
    expect([...some.sids]).toEqual(idx.map(([id]) => id));
    for (let k = 0; k < idx.length; k++) {
      const j = idx[k]![1];
      expect([...bits(some.values.subarray(k * nts, (k + 1) * nts))]).toEqual([...bits(values.subarray(pad + j * nts, pad + (j + 1) * nts))]);
    }
  }
});

test("every special value, alone and mixed, keeps its exact bit pattern", () => {
  const sink = new ByteSink();
  for (const a of SPECIALS) {
    for (const b of SPECIALS) {
      const values = Float64Array.of(a, b, a, a, b);
      sink.reset();
      encodeBlock(sink, Int32Array.of(0, 1, 2, 3, 4), [7], 0, 1, values, 0);
      expect([...bits(decodeBlock(sink.bytes()).values)]).toEqual([...bits(values)]);
    }
  }
  // a NaN that is not the canonical one is not mistaken for a missing sample
  const values = Float64Array.of(1, 2, 3, 4);
  new Uint32Array(values.buffer)[3] = 0x7ff80001;
  new Uint32Array(values.buffer)[2] = 5;
  sink.reset();
  encodeBlock(sink, Int32Array.of(0, 1, 2, 3), [1], 0, 1, values, 0);
  expect([...bits(decodeBlock(sink.bytes()).values)]).toEqual([...bits(values)]);
});

test("shapes get their compact modes: constant, counter, decimal gauge, regular timestamps", () => {
  const sink = new ByteSink();
  const nts = 10;
  const tsOff = Int32Array.from({ length: nts }, (_, i) => i * 10_000);
  const size = (vals: number[]) => {
    sink.reset();
    encodeBlock(sink, tsOff, [1], 0, 1, Float64Array.from(vals), 0);
    return sink.pos;
  };
  const header = size(Array(nts).fill(Math.PI)) - 9; // version, counts, timestamps, one id run
  expect(header).toBeLessThanOrEqual(3 + 1 + 3 + 8 + 3);
  expect(size(Array(nts).fill(-Math.E)) - header).toBe(9); // constant: mode + 8 bytes
  expect(size(Array(nts).fill(0)) - header).toBe(2); // whole constant: mode + varint
  expect(size(Array(nts).fill(4096)) - header).toBe(3);
  expect(size(Array(nts).fill(123.456)) - header).toBe(4); // short decimal constant
  expect(size(Array.from({ length: nts }, (_, i) => 1_000_000 + i * 3)) - header).toBeLessThanOrEqual(1 + 3 + 9); // counter
  expect(size(Array.from({ length: nts }, (_, i) => 20 + ((i * 7) % 5) / 10)) - header).toBeLessThanOrEqual(1 + 2 + 9); // 1-decimal gauge
  expect(size([NaN, 1, 2, NaN, 4, 5, 6, 7, 8, 9]) - header).toBeLessThanOrEqual(1 + 2 + 9); // counter with missing samples
});

test("the decoder answers malformed bytes with CodecError only: truncations, flips, random bytes; a read of one series refuses the same and gives the same values", () => {
  const sink = new ByteSink();
  const r = rng(99);
  const samples: Uint8Array[] = [];
  for (let k = 0; k < 40; k++) {
    const nts = 1 + Math.floor(r() * 12), n = 1 + Math.floor(r() * 8);
    const values = new Float64Array(n * nts);
    for (let j = 0; j < n; j++) series(r, nts, values, j * nts);
    sink.reset();
    encodeBlock(sink, Int32Array.from({ length: nts }, (_, i) => i * 10_000), Int32Array.from({ length: n }, (_, i) => 100 + i), 0, n, values, 0);
    samples.push(sink.bytes().slice());
  }
  // and version 4 (zstd around a block), where wrapping made one smaller
  for (let k = 0; k < 6; k++) {
    const nts = 30 + Math.floor(r() * 60), n = 2 + Math.floor(r() * 4);
    const values = new Float64Array(n * nts);
    for (let j = 0; j < n; j++) for (let i = 0; i < nts; i++) values[j * nts + i] = j === 0 ? 42 : 100 + ((i * (j + 2)) % 11) / 10; // deltas that repeat: zstd finds them
    sink.reset();
    encodeBlock(sink, Int32Array.from({ length: nts }, (_, i) => i * 10_000), Int32Array.from({ length: n }, (_, i) => 100 + i), 0, n, values, 0);
    const z = zstdBlock(sink.bytes());
    expect(z[0]).toBe(BLOCK_VERSION_ZSTD);
    samples.push(z);
  }
  let refused = 0, decoded = 0;
  const one = new Set([101]);
  const attempt = (b: Uint8Array, want?: Set<number>) => {
    try {
      return decodeBlock(b, want);
    } catch (e) {
      if (!(e instanceof CodecError)) throw new Error(`not a CodecError on ${Buffer.from(b).toString("hex")}: ${e}`);
      return undefined;
    }
  };
  const tryDecode = (b: Uint8Array) => {
    const full = attempt(b);
    if (full) decoded++;
    else refused++;
    // a read of one series passes over the others' packed values by their length: it must refuse
    // exactly what the whole decode refuses, and give that series' values bit for bit
    const part = attempt(b, one);
    expect(part === undefined).toBe(full === undefined);
    if (full && part) {
      const j = Array.from(full.sids).indexOf(101), nts = full.tsOff.length;
      const want = j < 0 ? new Float64Array(0) : full.values.slice(j * nts, (j + 1) * nts);
      expect(bits(part.values)).toEqual(bits(want));
    }
  };
  const started = Date.now();
  for (const s of samples) {
    for (let len = 0; len < s.length; len++) tryDecode(s.subarray(0, len)); // every truncation
    tryDecode(Buffer.concat([s, Uint8Array.of(0)])); // trailing byte
    for (let k = 0; k < 300; k++) {
      const b = s.slice();
      const flips = 1 + Math.floor(r() * 3);
      for (let f = 0; f < flips; f++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      tryDecode(b);
    }
  }
  for (let k = 0; k < 5000; k++) tryDecode(Uint8Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
  // huge counts in a short input are refused before anything is allocated
  tryDecode(Uint8Array.of(1, 0xff, 0xff, 0x03, 0xff, 0xff, 0x03));
  tryDecode(Uint8Array.of(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
  expect(Date.now() - started).toBeLessThan(20_000);
  expect(refused).toBeGreaterThan(samples.length * 100);
  expect(decoded + refused).toBe(samples.reduce((a, s) => a + s.length + 301, 0) + 5002);
});

test("version 4 wraps a block in zstd when smaller: the same values bit for bit, series picked by `want`; a bad wrapper is refused", () => {
  const sink = new ByteSink();
  const r = rng(8);
  const nts = 360, n = 6;
  const ts = Int32Array.from({ length: nts }, (_, i) => i * 10_000);
  const values = new Float64Array(n * nts);
  for (let j = 0; j < n; j++) series(r, nts, values, j * nts);
  sink.reset();
  encodeBlock(sink, ts, Int32Array.from({ length: n }, (_, i) => 7 + i), 0, n, values, 0);
  const inner = sink.bytes().slice();
  const z = zstdBlock(inner);
  expect(z[0]).toBe(BLOCK_VERSION_ZSTD);
  expect(z.length).toBeLessThan(inner.length);
  const a = decodeBlock(inner), b = decodeBlock(z);
  expect([...b.tsOff]).toEqual([...a.tsOff]);
  expect([...b.sids]).toEqual([...a.sids]);
  expect(bits(b.values)).toEqual(bits(a.values));
  const some = decodeBlock(z, new Set([8, 10]));
  expect([...some.sids]).toEqual([8, 10]);
  expect(bits(some.values)).toEqual(bits(decodeBlock(inner, new Set([8, 10])).values));

  // not smaller: left as it is (a single constant over two timestamps)
  sink.reset();
  encodeBlock(sink, Int32Array.of(0, 10_000), Int32Array.of(1), 0, 1, Float64Array.of(5, 5), 0);
  const tiny = sink.bytes().slice();
  expect(zstdBlock(tiny)).toBe(tiny);
  expect(() => zstdBlock(z)).toThrow(CodecError); // never wrapped twice

  const refuse = (b: Uint8Array, msg: RegExp) => {
    let err: unknown;
    try {
      decodeBlock(b);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CodecError);
    expect(String(err)).toMatch(msg);
  };
  const wrap = (declared: number, payload: Uint8Array) => {
    const head = [BLOCK_VERSION_ZSTD];
    for (let u = declared; ; u = Math.floor(u / 128)) {
      if (u < 128) {
        head.push(u);
        break;
      }
      head.push((u % 128) | 128);
    }
    return Buffer.concat([Uint8Array.from(head), payload]);
  };
  const frame = Bun.zstdCompressSync(inner);
  refuse(wrap(inner.length - 1, frame), /zstd block/); // grows past what it declares
  refuse(wrap(inner.length + 1, frame), /declares/); // shorter than declared
  refuse(wrap(0, frame), /out of range/);
  refuse(wrap(1 << 27, frame), /out of range/);
  refuse(wrap(inner.length, frame.subarray(0, frame.length - 3)), /zstd block/); // truncated
  refuse(wrap(z.length, Bun.zstdCompressSync(z)), /version 2 or 3/); // nested
  // a frame of 64 MiB of zeros declared as 100 bytes: refused as it grows, not allocated whole
  refuse(wrap(100, Bun.zstdCompressSync(new Uint8Array(1 << 26))), /zstd block/);
});

test("the encoder refuses what it cannot store: empty blocks, non-int4 offsets or ids", () => {
  const sink = new ByteSink();
  expect(() => encodeBlock(sink, [], [1], 0, 1, new Float64Array(0), 0)).toThrow(CodecError);
  expect(() => encodeBlock(sink, [0], [1], 0, 0, new Float64Array(1), 0)).toThrow(CodecError);
  expect(() => encodeBlock(sink.reset(), [2 ** 31], [1], 0, 1, new Float64Array(1), 0)).toThrow(CodecError);
  expect(() => encodeBlock(sink.reset(), [0], [2 ** 31], 0, 1, new Float64Array(1), 0)).toThrow(CodecError);
});

test("version 2 bit-packs integer deltas: a counter of even steps and a 2-decimal random gauge take fewer bytes than varints", () => {
  const nts = 10;
  const enc = (vals: number[]) => {
    const b = encodeSeries(vals);
    expect([2, 3]).toContain(b[0]!); // 3: the same value modes, run-length coded timestamps
    return b.length;
  };
  const header = enc(Array(nts).fill(Math.PI)) - 9;
  // deltas 3 or 4: varints need 9 bytes for them, 3 bits each fit in 4 (+ the width byte)
  expect(enc(Array.from({ length: nts }, (_, i) => 1_000_000 + i * 3 + (i % 2))) - header).toBeLessThanOrEqual(1 + 3 + 1 + 4);
  // hash-random values (k / 100, k < 100,000): 18-bit deltas instead of 3-byte varints
  const r = rng(7);
  const gauge = Array.from({ length: nts }, () => Math.round(r() * 100_000) / 100);
  expect(enc(gauge) - header).toBeLessThanOrEqual(1 + 3 + 1 + Math.ceil((9 * 18) / 8));
  // a timestamp-like series of exact steps: all deltas of deltas are zero, width 0
  expect(enc(Array.from({ length: nts }, (_, i) => 1_700_000_000_000 + i * 10_000)) - header).toBeLessThanOrEqual(1 + 6 + 3 + 1);
  // counters with gaps still pack around the NaN bitmap
  expect(enc([NaN, 1, 2, NaN, 4, 5, 6, 7, 8, 9]) - header).toBeLessThanOrEqual(1 + 2 + 1 + 1 + 3);
});

/** Zig-zag, varint bytes and bit width the slow, obvious way: the reference for the encoder's sizes. */
const refZz = (v: number) => (v >= 0 ? 2 * v : -2 * v - 1);
function refVarintBytes(z: number): number {
  let n = 1;
  for (; z >= 128; n++) z = Math.floor(z / 128);
  return n;
}
function refWidth(z: number): number {
  let w = 0;
  for (; z >= 1; w++) z = Math.floor(z / 2);
  return w;
}

test("integer deltas across the zig-zag and varint boundaries (2^30, 2^31, 2^32 and beyond, either sign) round-trip and get the size a plain reference computes", () => {
  const enc = (vals: number[]) => encodeSeries(vals).length;
  const header = enc([Math.PI, Math.PI]) - 9;
  // the reference: refZz, refVarintBytes, refWidth
  const edges = [1, 63, 64, 8191, 8192, 2 ** 30 - 1, 2 ** 30, 2 ** 30 + 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, 2 ** 42 + 5, 2 ** 49];
  for (const e of edges) {
    for (const d of [e, -e]) {
      // [0, d]: k0 = 0 takes one byte; the delta as a varint, or packed at its width when that is smaller
      const z = refZz(d);
      const w = refWidth(z);
      const varint = 1 + refVarintBytes(z);
      const packed = w <= 32 ? 1 + 1 + Math.ceil(w / 8) : Infinity;
      expect(enc([0, d]) - header).toBe(1 + Math.min(varint, packed));
      // and a longer series whose deltas straddle the edge with random signs
      const r = rng(e);
      const vals = [0];
      for (let i = 1; i < 40; i++) vals.push(vals[i - 1]! + (r() < 0.5 ? -1 : 1) * (e + Math.floor(r() * 3) - 1));
      enc(vals);
    }
  }
});

test("integers on either side of the 32-bit path's limit (within 2^29 - 1 of the first value) and of twice it, from small or large first values, get the smallest of every integer mode, as a plain reference computes it, and round-trip", () => {
  const nts = 12;
  const enc = (vals: number[]) => encodeSeries(vals).length;
  const header = enc(Array(nts).fill(Math.PI)) - 9;
  // the reference (refZz, refVarintBytes, refWidth): every integer mode's bytes, the smallest wins
  const reference = (k: number[]) => {
    const d = k.slice(1).map((x, i) => x - k[i]!);
    const dd = d.slice(1).map((x, i) => x - d[i]!);
    const lo = Math.min(...k);
    const wD = Math.max(0, ...d.map((x) => refWidth(refZz(x))));
    const wDD = Math.max(0, ...dd.map((x) => refWidth(refZz(x))));
    const wF = refWidth(Math.max(...k) - lo);
    const sizes = [
      refVarintBytes(refZz(k[0]!)) + d.reduce((n, x) => n + refVarintBytes(refZz(x)), 0),
      refVarintBytes(refZz(k[0]!)) + refVarintBytes(refZz(d[0]!)) + dd.reduce((n, x) => n + refVarintBytes(refZz(x)), 0),
      wD <= 32 ? refVarintBytes(refZz(k[0]!)) + 1 + Math.ceil((d.length * wD) / 8) : Infinity,
      wDD <= 32 ? refVarintBytes(refZz(k[0]!)) + refVarintBytes(refZz(d[0]!)) + 1 + Math.ceil((dd.length * wDD) / 8) : Infinity,
      wF <= 32 ? refVarintBytes(refZz(lo)) + 1 + Math.ceil((k.length * wF) / 8) : Infinity,
    ];
    return 1 + Math.min(...sizes);
  };
  const LIMIT = 2 ** 29 - 1;
  const r = rng(29);
  const shapes: Array<(i: number) => number> = [
    (i) => (i % 2 ? LIMIT : -LIMIT), // deltas of 2^30 - 2, deltas of deltas of 2^31 - 4: 32-bit widths
    (i) => (i % 2 ? LIMIT + 1 : -LIMIT), // one step past the limit
    () => LIMIT - Math.floor(r() * 4),
    () => -LIMIT + Math.floor(r() * 4),
    () => (r() < 0.5 ? LIMIT : -LIMIT),
    () => (r() < 0.9 ? Math.floor(r() * 1000) : LIMIT + Math.floor(r() * 4)), // mostly small, now and then past it
    () => Math.round((r() - 0.5) * 2 ** 31),
    // twice the limit from a first value of 0: deltas near 2^31, deltas of deltas past 2^32
    (i) => (i === 0 ? 0 : i % 2 ? 2 * LIMIT + 1 : -2 * LIMIT - 1),
    (i) => (i === 0 ? 0 : (r() < 0.5 ? 1 : -1) * (2 * LIMIT + 1 - Math.floor(r() * 4))),
    (i) => 5 * i, // an even counter
    (i) => 1_700_000_000_000 + 5 * i + Math.floor(r() * 3), // a large counter: small moves from its first value
    (i) => 2 ** 45 + (i % 2 ? LIMIT : 0), // the limit, measured from a large first value
    (i) => 2 ** 45 + (i % 2 ? LIMIT + 1 : 0),
    (i) => -(2 ** 45) + (i % 2 ? -LIMIT : 0),
    () => 7, // a constant but for one value (set below)
  ];
  for (const shape of shapes) {
    for (let rep = 0; rep < 20; rep++) {
      const vals = Array.from({ length: nts }, (_, i) => shape(i));
      if (vals.every((v) => v === vals[0])) vals[nts - 1] = vals[0]! + 1; // not CONST
      expect(enc(vals) - header).toBe(reference(vals));
    }
  }
});

test("a gauge of noise around a level is packed as distances from its lowest value (frame of reference): fewer bits than its deltas, bit for bit, passed over when not wanted; the mode bit anywhere else is refused", () => {
  const sink = new ByteSink();
  const nts = 360;
  const tsOff = Int32Array.from({ length: nts }, (_, i) => i * 10_000);
  const enc = (cols: number[][]) => {
    sink.reset();
    encodeBlock(sink, tsOff, cols.map((_, j) => j + 1), 0, cols.length, Float64Array.from(cols.flat()), 0);
    return sink.bytes().slice();
  };
  const header = enc([Array(nts).fill(Math.PI)]).length - 9; // the bytes before the first mode byte
  const r = rng(11);
  // 4e9 plus up to 2^20 of noise: deltas span 2^21 either way (22 bits zig-zagged), distances 20 bits
  const level = Array.from({ length: nts }, () => 4e9 + Math.floor(r() * 2 ** 20));
  const lowest = Math.min(...level);
  const b = enc([level]);
  expect(b[header]! & 0x80).toBe(0x80);
  expect(b[header]! & 15).toBe(1 | 8); // DELTA, PACKED
  const zzLowest = 2 * lowest; // zig-zag of a positive number
  let varint = 1;
  for (let z = zzLowest; z >= 128; varint++) z = Math.floor(z / 128);
  expect(b.length).toBe(header + 1 + varint + 1 + Math.ceil((nts * bitsOf(Math.max(...level) - lowest)) / 8));
  expect([...bits(decodeBlock(b).values)]).toEqual([...bits(Float64Array.from(level))]);
  // negative levels, two decimals, missing samples: the same mode, bit for bit
  const cents = level.map((v, i) => (i % 17 === 5 ? NaN : (-v + 123_456) / 100));
  const c = enc([cents]);
  expect(c[header]! & 0x80).toBe(0x80);
  expect([...bits(decodeBlock(c).values)]).toEqual([...bits(Float64Array.from(cents))]);
  // beside other series: picked alone, or passed over by its length when only the others are wanted
  const counter = Array.from({ length: nts }, (_, i) => 1e6 + 7 * i);
  const both = enc([cents, counter, level]);
  expect([...bits(decodeBlock(both, new Set([1])).values)]).toEqual([...bits(Float64Array.from(cents))]);
  expect([...bits(decodeBlock(both, new Set([2, 3])).values)]).toEqual([...bits(Float64Array.from([...counter, ...level]))]);
  // the mode bit with anything but packed deltas, or in a version-1 block: refused
  for (const bad of [b[header]! & ~8, (b[header]! & ~3) | 2, (b[header]! & ~3) | 3, 0x80 | 8 | (1 << 4)]) {
    const x = b.slice();
    x[header] = bad;
    expect(() => decodeBlock(x)).toThrow(CodecError);
  }
  const v1 = b.slice();
  v1[0] = 1;
  expect(() => decodeBlock(v1)).toThrow(CodecError);
});

function bitsOf(u: number): number {
  let w = 0;
  for (; u >= 1; w++) u = Math.floor(u / 2);
  return w;
}

test("blocks of version 1 (written before packed integers) still decode bit for bit, and a packed mode in one is refused", async () => {
  const fx = (await Bun.file(new URL("./block-v1.fixture.json", import.meta.url)).json()) as { block: string; tsOff: number[]; sids: number[]; valueBits: string };
  const block = new Uint8Array(Buffer.from(fx.block, "hex"));
  expect(block[0]).toBe(1);
  const d = decodeBlock(block);
  expect([...d.tsOff]).toEqual(fx.tsOff);
  expect([...d.sids]).toEqual(fx.sids);
  expect(Buffer.from(d.values.buffer, d.values.byteOffset, d.values.byteLength).toString("hex")).toBe(fx.valueBits);
  // the same series re-encoded today are version 2 and no larger
  const sink = new ByteSink();
  encodeBlock(sink, Int32Array.from(fx.tsOff), fx.sids, 0, fx.sids.length, d.values, 0);
  expect(sink.bytes()[0]).toBe(2);
  expect(sink.pos).toBeLessThanOrEqual(block.length);
  // set PACKED on every DELTA/DOD mode byte we can find by decoding each variant: any such flip must be refused or decode as version 1 did
  let refused = 0;
  for (let i = 1; i < block.length; i++) {
    const k = block[i]! & 3;
    if ((k !== 1 && k !== 2) || (block[i]! & 8) !== 0) continue;
    const bad = block.slice();
    bad[i] = bad[i]! | 8;
    try {
      decodeBlock(bad);
    } catch (e) {
      expect(e).toBeInstanceOf(CodecError);
      refused++;
    }
  }
  expect(refused).toBeGreaterThan(0);
});

test("noisy doubles take Gorilla's bit windows when smaller, bit for bit, whatever the window (full 64 bits, high word only, reused)", () => {
  const sink = new ByteSink();
  const nts = 10;
  const tsOff = Int32Array.from({ length: nts }, (_, i) => i * 10_000);
  const r = rng(11);
  const roundTrip = (vals: Float64Array) => {
    sink.reset();
    encodeBlock(sink, tsOff, [1], 0, 1, vals, 0);
    expect([...bits(decodeBlock(sink.bytes().slice()).values)]).toEqual([...bits(vals)]);
    return sink.pos;
  };
  const header = roundTrip(new Float64Array(nts).fill(Math.PI)) - 9;
  // a gauge with 1 % noise: the byte-aligned XOR costs 7 bytes a value or more, Gorilla less
  let total = 0;
  for (let k = 0; k < 200; k++) {
    const base = 1 + r() * 100;
    total += roundTrip(Float64Array.from({ length: nts }, () => base * (1 + (r() - 0.5) * 0.02))) - header - 9;
  }
  expect(total / 200 / (nts - 1)).toBeLessThan(6.9);
  // windows of every shape: sign flips (64-bit XOR), low words only, high words only, repeats
  const w = new Float64Array(nts);
  const u = new Uint32Array(w.buffer);
  for (let k = 0; k < 300; k++) {
    for (let i = 0; i < nts; i++) {
      const shape = Math.floor(r() * 4);
      u[2 * i] = shape === 2 && i > 0 ? u[2 * i - 2]! : Math.floor(r() * 2 ** 32);
      u[2 * i + 1] = shape === 1 && i > 0 ? u[2 * i - 1]! : shape === 3 ? (i > 0 ? u[2 * i - 1]! ^ 0x80000000 : 0x40000000) : Math.floor(r() * 2 ** 32);
      if (shape === 0 && i > 0 && r() < 0.3) w[i] = w[i - 1]!;
    }
    roundTrip(w);
  }
});

test("version 3 run-length codes regular timestamps: an hour at 10 s costs a few bytes; jittered ones stay version 2; bad runs are refused", () => {
  const sink = new ByteSink();
  const enc = (ts: ArrayLike<number>) => {
    sink.reset();
    encodeBlock(sink, ts, [5], 0, 1, new Float64Array(ts.length).fill(3), 0);
    return sink.bytes().slice();
  };
  const hour = Int32Array.from({ length: 360 }, (_, i) => i * 10_000);
  const regular = enc(hour);
  expect(regular[0]).toBe(3);
  expect(regular.length).toBeLessThan(20); // versus 360+ bytes of one varint a timestamp
  expect([...decodeBlock(regular).tsOff]).toEqual([...hour]);
  // a gap and a late sample break the runs but still round-trip
  const gappy = Int32Array.from(hour, (t, i) => t + (i >= 100 ? 60_000 : 0) + (i === 200 ? 7 : 0));
  const g = enc(gappy);
  expect(g[0]).toBe(3);
  expect([...decodeBlock(g).tsOff]).toEqual([...gappy]);
  // ms jitter everywhere: runs would be longer than one varint each, so version 2
  const r = rng(7);
  const jitter = Int32Array.from(hour, (t) => t + Math.floor(r() * 40));
  const j = enc(jitter);
  expect(j[0]).toBe(2);
  expect([...decodeBlock(j).tsOff]).toEqual([...jitter]);
  // runs that do not add up to the timestamps, or a zero-length run, are CodecErrors
  const bad = (patch: (b: Uint8Array) => void) => {
    const b = regular.slice();
    patch(b);
    expect(() => decodeBlock(b)).toThrow(CodecError);
  };
  // layout: version, nts (2 bytes: 360), n, zz(t0)=0, runs=2, zz(10000) (2 bytes), 1, 0, 358, ...
  expect([...regular.subarray(0, 6)]).toEqual([3, 0xe8, 0x02, 1, 0, 2]);
  bad((b) => (b[5] = 0)); // no runs for 359 deltas
  bad((b) => (b[5] = 100)); // more runs than deltas
  bad((b) => (b[9] = 0)); // a run of length 0
  for (let cut = 1; cut < regular.length; cut++) expect(() => decodeBlock(regular.subarray(0, cut))).toThrow(CodecError);
});
