/**
 * The compressed encoding of one metric block: the timestamps of a frame (offsets in ms from the
 * block's t0), a list of series ids, and each series' values over those timestamps (series-major).
 * Written by the server's writer into a `bytea`, read back by the server (docs/architecture.md,
 * "Metric storage layout").
 *
 * Layout, all integers as LEB128 varints (zig-zag where signed):
 *   u8 version (2 or 3; 1 is still read) | nts | nseries
 *   timestamps: zz(off[0]), then
 *     version 1, 2: zz of each delta-of-delta (the first delta counts from 0);
 *     version 3: the same deltas-of-deltas run-length coded: the number of runs, then per run
 *                zz(delta-of-delta) and how many times it repeats (regular timestamps, an hour
 *                of them at 10 s, cost 6 bytes instead of 360). The encoder writes version 3
 *                only when it is shorter; everything after the timestamps is version 2's.
 *   series ids: number of runs, then per run zz(start - end of the previous run) and its length
 *               (ids that count up by one, as the series dictionary hands them out, cost ~3 bytes)
 *   per series: a mode byte, then its payload:
 *     kind (bits 0-1) 0 CONST: the value's 8 bytes (little-endian bit pattern), or with bit 3
 *                              set zz(k), value = k / 10^scale (whole and short decimal constants)
 *                     1 DELTA: integers k (value = k / 10^scale): zz(k0), zz of each delta
 *                     2 DOD:   the same with zz(k0), zz(k1 - k0), zz of each delta-of-delta
 *                     3 XOR:   first value's 8 bytes, then per value the XOR with the previous
 *                              one: a byte (leading zero bytes << 4 | trailing zero bytes) and the
 *                              bytes between them
 *     bit 2: a bitmap of ceil(nts/8) bytes follows the mode byte, marking samples that are the
 *            canonical NaN (a missing sample); DELTA/DOD then cover only the other samples
 *     bits 4-6: scale (0-6) for DELTA/DOD
 *     bit 3 with XOR (version 2 and 3): the values after the first as Gorilla's bit windows
 *            (putGorilla below), chosen when smaller than the byte-aligned XOR
 *     bit 3 with DELTA/DOD (version 2 and 3): PACKED. zz(k0) (and for DOD zz(k1 - k0)) as varints,
 *            then a byte w (0-32), then the remaining zz deltas (DOD: deltas of deltas) in w bits
 *            each, least significant bit first, in ceil(count * w / 8) bytes: a counter growing by
 *            about the same step, or a gauge with small moves, costs a few bits a sample instead
 *            of whole varint bytes
 *     bit 7 with DELTA and PACKED (versions 2 and 3): FRAME OF REFERENCE. zz(lowest k) instead of
 *            zz(k0), the width byte w, then every k minus the lowest (all of them, unsigned) in w
 *            bits each as above: a gauge of noise around a level needs a bit less than its
 *            deltas, which span the noise twice. The scale takes bits 4-6 (0-6), so no block
 *            written before had bit 7 set.
 * Version 4 wraps a whole block of version 2 or 3: u8 4 | varint length of the inner block | one
 * zstd frame holding it. Compaction (src/store/postgres/compaction.ts) writes it for an hour's rows
 * when it is smaller (about a seventh on the realistic workload: zstd's entropy coding finds what
 * fixed-width packing and byte-aligned XORs leave); ingest's small blocks are not wrapped.
 * The encoder tries CONST, then integers at the smallest decimal scale that reproduces every value
 * bit for bit (by doing the decoder's division), and falls back to XOR; bit patterns (NaN
 * payloads, -0, subnormals, infinities) always round-trip exactly.
 *
 * Decoding malformed bytes throws CodecError and nothing else; every count is bounded before
 * anything is allocated, and every loop is bounded by the input's length.
 */

import { zstdDecompressSync } from "node:zlib";

export class CodecError extends Error {
  override name = "CodecError";
}

export const BLOCK_VERSION = 2;
/** Version 2 with run-length coded timestamps; written when that is shorter. */
export const BLOCK_VERSION_RLE = 3;
/** The first layout (migration 495): the same, without PACKED integers. Still decoded. */
export const BLOCK_VERSION_1 = 1;
/** A version-2 or -3 block compressed whole with zstd (zstdBlock). */
export const BLOCK_VERSION_ZSTD = 4;
/** The largest inner block version 4 may declare: far above any block the encoder writes. */
const MAX_ZSTD_INNER = 1 << 26;
/** Upper bounds of a block (a frame holds at most 1,000,000 samples, 100,000 series). */
export const MAX_BLOCK_TIMESTAMPS = 1 << 21;
export const MAX_BLOCK_SERIES = 1 << 17;
export const MAX_BLOCK_SAMPLES = 1 << 22;

const KIND_CONST = 0;
const KIND_DELTA = 1;
const KIND_DOD = 2;
const KIND_XOR = 3;
const NAN_MASK = 4;
/** CONST only: the value is zz(k) with value = k / 10^scale, not its 8 bytes. */
const CONST_VARINT = 8;
/** DELTA/DOD only (version 2): the deltas are bit-packed at a fixed width. */
const PACKED = 8;
/** DELTA with PACKED only (versions 2 and 3): frame of reference (see the layout above). */
const FOR = 128;
const MAX_PACK_BITS = 32;
const MAX_SCALE = 6;
const POW10 = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000];
/** Integers (scaled values) are kept below 2^50 so deltas of deltas stay exact in a double. */
const INT_LIMIT = 2 ** 50;
const NAN_HI = 0x7ff80000;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error("the block codec assumes a little-endian host");

/**
 * A buffer at least twice as long as `buf` with room for `need` bytes after the first `used`,
 * which it holds (the growth step of ByteSink and CopyWriter).
 */
export function grown(buf: Uint8Array, used: number, need: number): Uint8Array {
  let size = buf.length * 2;
  while (size < used + need) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, used));
  return next;
}

/** A growable output buffer (reused: `reset()` between blocks). */
export class ByteSink {
  buf: Uint8Array;
  pos = 0;
  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
  }
  reset(): this {
    this.pos = 0;
    return this;
  }
  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.buf = grown(this.buf, this.pos, n);
  }
  /** The bytes written since reset (a view, valid until the next write). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

function zz(v: number): number {
  // Integers only. Those of 31 bits in integer arithmetic, with no branch on the sign: a noisy
  // series' deltas change sign at random, and the mispredicted branch cost more than the rest.
  if (v >= -0x40000000 && v < 0x40000000) return ((v << 1) ^ (v >> 31)) >>> 0;
  // v * -2, not -v * 2: JSC compiles the unary minus so that negative doubles take a slow path
  // (series with negative deltas encoded 4-5x slower: 870-1,170 ns per 10 samples, now 190-250)
  return v >= 0 ? v * 2 : v * -2 - 1;
}

/** Bits needed for the unsigned integer u (0 for 0); above 32 for anything of 2^32 or more. */
function bitWidth(u: number): number {
  if (u === 0) return 0;
  if (u < 2 ** 32) return 32 - Math.clz32(u);
  return 33;
}

/** Varint bytes of a u32 by its count of leading zeros: (32 - clz) bits, 7 a byte, at least 1. */
const VARINT_BY_CLZ = Uint8Array.from({ length: 33 }, (_, clz) => Math.max(1, Math.ceil((32 - clz) / 7)));

function varintLen(u: number): number {
  // a table instead of comparisons: the lengths of a noisy series' deltas vary from value to
  // value, and each mispredicted comparison cost more than the lookup (docs/architecture.md)
  if (u < 0x100000000) return VARINT_BY_CLZ[Math.clz32(u)]!;
  let n = 3;
  u = Math.floor(u / 2097152);
  while (u > 0) {
    n++;
    u = Math.floor(u / 128);
  }
  return n;
}

/** Writes an unsigned integer (< 2^53); the caller has ensured 8 bytes of room. */
function putVarint(b: Uint8Array, p: number, u: number): number {
  while (u >= 0x80000000) {
    b[p++] = (u % 128) | 128;
    u = Math.floor(u / 128);
  }
  while (u >= 128) {
    b[p++] = (u & 127) | 128;
    u >>>= 7;
  }
  b[p++] = u;
  return p;
}

function put8(b: Uint8Array, p: number, lo: number, hi: number): number {
  b[p] = lo & 255;
  b[p + 1] = (lo >>> 8) & 255;
  b[p + 2] = (lo >>> 16) & 255;
  b[p + 3] = lo >>> 24;
  b[p + 4] = hi & 255;
  b[p + 5] = (hi >>> 8) & 255;
  b[p + 6] = (hi >>> 16) & 255;
  b[p + 7] = hi >>> 24;
  return p + 8;
}

/** Scratch space of the encoder, grown on demand. */
let ks = new Float64Array(1024);
let wordsOf: { buf: ArrayBufferLike | null; words: Uint32Array } = { buf: null, words: new Uint32Array(0) };

function words(a: Float64Array): Uint32Array {
  if (wordsOf.buf !== a.buffer) wordsOf = { buf: a.buffer, words: new Uint32Array(a.buffer, 0, a.buffer.byteLength >>> 2) };
  return wordsOf.words;
}

/** Whether the finite, non-negative-zero value v equals k / 10^s for an integer k below the limit. */
function scaled(v: number, s: number): number | undefined {
  if (s === 0) return Number.isInteger(v) && Math.abs(v) < INT_LIMIT ? v : undefined;
  const k = Math.round(v * POW10[s]!);
  return Math.abs(k) < INT_LIMIT && k / POW10[s]! === v ? k : undefined;
}

/**
 * Appends the encoding of one block to `out`: timestamps `tsOff[0..nts)`, series ids
 * `sids[sidFrom..sidFrom+n)` and their values `values[valFrom .. valFrom + n*nts)`, series-major.
 */
export function encodeBlock(
  out: ByteSink, tsOff: ArrayLike<number>, sids: ArrayLike<number>, sidFrom: number, n: number,
  values: Float64Array, valFrom: number,
): void {
  const nts = tsOff.length;
  if (nts < 1 || nts > MAX_BLOCK_TIMESTAMPS || n < 1 || n > MAX_BLOCK_SERIES || n * nts > MAX_BLOCK_SAMPLES) {
    throw new CodecError(`a block of ${n} series x ${nts} timestamps is out of range`);
  }
  if (ks.length < nts) ks = new Float64Array(nts * 2);
  const w = words(values);
  const wBase = (values.byteOffset >>> 2) + valFrom * 2;
  // header, timestamps, ids: at most 1 + 8 + 8 + nts*8 + 8 + n*16 bytes
  out.ensure(25 + nts * 8 + n * 16);
  let b = out.buf;
  let p = out.pos;
  // the deltas-of-deltas, their cost one by one and as runs (version 3 when shorter)
  let prev = 0, prevDelta = 0, plain = 0, rle = 0, runs0 = 0, runVal = NaN, runLen = 0;
  for (let i = 0; i < nts; i++) {
    const t = tsOff[i]!;
    if (!Number.isInteger(t) || t < -0x80000000 || t > 0x7fffffff) throw new CodecError(`timestamp offset ${t} is not an int4`);
    if (i > 0) {
      const d = t - prev;
      const u = zz(d - prevDelta);
      ks[i] = u;
      plain += varintLen(u);
      if (u === runVal) runLen++;
      else {
        if (runLen) rle += varintLen(runLen);
        runs0++;
        runVal = u;
        runLen = 1;
        rle += varintLen(u);
      }
      prevDelta = d;
    }
    prev = t;
  }
  if (runLen) rle += varintLen(runLen);
  const useRle = nts > 1 && rle + varintLen(runs0) < plain;
  b[p++] = useRle ? BLOCK_VERSION_RLE : BLOCK_VERSION;
  p = putVarint(b, p, nts);
  p = putVarint(b, p, n);
  p = putVarint(b, p, zz(tsOff[0]!));
  if (useRle) {
    p = putVarint(b, p, runs0);
    for (let i = 1; i < nts;) {
      const u = ks[i]!;
      let len = 1;
      while (i + len < nts && ks[i + len] === u) len++;
      p = putVarint(b, p, u);
      p = putVarint(b, p, len);
      i += len;
    }
  } else for (let i = 1; i < nts; i++) p = putVarint(b, p, ks[i]!);
  // series ids as runs of consecutive ids
  let runs = 1;
  for (let j = 1; j < n; j++) if (sids[sidFrom + j] !== sids[sidFrom + j - 1]! + 1) runs++;
  p = putVarint(b, p, runs);
  let end = 0;
  for (let j = 0; j < n;) {
    const start = sids[sidFrom + j]!;
    if (!Number.isInteger(start) || start < -0x80000000 || start > 0x7fffffff) throw new CodecError(`series id ${start} is not an int4`);
    let len = 1;
    while (j + len < n && sids[sidFrom + j + len] === start + len) len++;
    p = putVarint(b, p, zz(start - end));
    p = putVarint(b, p, len);
    end = start + len;
    j += len;
  }
  out.pos = p;
  const maskBytes = (nts + 7) >>> 3;
  for (let j = 0; j < n; j++) {
    const base = wBase + j * nts * 2;
    const v0 = valFrom + j * nts;
    const lo0 = w[base]!, hi0 = w[base + 1]!;
    // CONST
    let same = true;
    for (let i = 1; i < nts; i++) {
      if (w[base + 2 * i] !== lo0 || w[base + 2 * i + 1] !== hi0) {
        same = false;
        break;
      }
    }
    if (same) {
      out.ensure(9);
      b = out.buf;
      // a whole (or short decimal) constant as a varint: 0 or 1 in 2 bytes instead of 9
      const v = values[v0]!;
      let k: number | undefined;
      let sc = 0;
      if (Number.isFinite(v) && !(v === 0 && hi0 !== 0)) {
        k = scaled(v, 0);
        while (k === undefined && sc < MAX_SCALE) k = scaled(v, ++sc);
      }
      if (k !== undefined) {
        b[out.pos] = KIND_CONST | CONST_VARINT | (sc << 4);
        out.pos = putVarint(b, out.pos + 1, zz(k));
      } else {
        b[out.pos] = KIND_CONST;
        out.pos = put8(b, out.pos + 1, lo0, hi0);
      }
      continue;
    }
    // integers at some decimal scale, canonical NaNs as a bitmap
    let m = 0, nans = 0, s = 0, ok = true;
    // ks[0..lower) were found at a scale below the final one
    let lower = 0;
    for (let i = 0; i < nts && ok; i++) {
      const lo = w[base + 2 * i]!, hi = w[base + 2 * i + 1]!;
      if (hi === NAN_HI && lo === 0) {
        nans++;
        continue;
      }
      const v = values[v0 + i]!;
      if (!Number.isFinite(v) || (v === 0 && hi !== 0)) {
        ok = false;
        break;
      }
      let k = scaled(v, s);
      if (k === undefined) {
        while (k === undefined && s < MAX_SCALE) k = scaled(v, ++s);
        lower = m;
      }
      if (k === undefined) ok = false;
      else ks[m++] = k;
    }
    if (ok && lower > 0) {
      // a value found at a lower scale must also come back at the final one
      let j = 0;
      for (let i = 0; i < nts && j < lower; i++) {
        const lo = w[base + 2 * i]!, hi = w[base + 2 * i + 1]!;
        if (hi === NAN_HI && lo === 0) continue;
        const k = scaled(values[v0 + i]!, s);
        if (k === undefined) {
          ok = false;
          break;
        }
        ks[j++] = k;
      }
    }
    if (ok && m > 0) {
      out.ensure(2 + maskBytes + m * 8);
      b = out.buf;
      out.pos = smallInts(m) ? putSmallInts(b, out.pos, m, s, nans, w, base, nts) : putInts(b, out.pos, m, s, nans, w, base, nts);
      continue;
    }
    // XOR of bit patterns: byte-aligned, or Gorilla's bit windows when that is smaller
    out.ensure(9 + (nts - 1) * 9);
    b = out.buf;
    let q = out.pos;
    if (gorillaBytes(w, base, nts) < xorBytes(w, base, nts)) {
      b[q++] = KIND_XOR | PACKED;
      q = put8(b, q, lo0, hi0);
      out.pos = putGorilla(b, q, w, base, nts);
      continue;
    }
    b[q++] = KIND_XOR;
    q = put8(b, q, lo0, hi0);
    let plo = lo0, phi = hi0;
    for (let i = 1; i < nts; i++) {
      const lo = w[base + 2 * i]!, hi = w[base + 2 * i + 1]!;
      const xl = (lo ^ plo) >>> 0, xh = (hi ^ phi) >>> 0;
      plo = lo;
      phi = hi;
      if (xl === 0 && xh === 0) {
        b[q++] = 0x80;
        continue;
      }
      const lz = xh !== 0 ? Math.clz32(xh) >>> 3 : 4 + (Math.clz32(xl) >>> 3);
      const tz = xl !== 0 ? (31 - Math.clz32(xl & -xl)) >>> 3 : 4 + ((31 - Math.clz32(xh & -xh)) >>> 3);
      b[q++] = (lz << 4) | tz;
      for (let k = tz, e = 8 - lz; k < e; k++) b[q++] = k < 4 ? (xl >>> (8 * k)) & 255 : (xh >>> (8 * (k - 4))) & 255;
    }
    out.pos = q;
  }
}

/** Scratch of the integer paths: one series' integers less its first as int32 (smallInts), and the values to bit-pack. */
let ki = new Int32Array(1024);
let packs = new Uint32Array(1024);
/**
 * The largest |k - k0| of the 32-bit integer path: deltas then stay within 2^30 and deltas of
 * deltas within 2^31, where 32-bit zig-zag gives what zz gives.
 */
const SMALL_INT = 0x1fffffff;

/**
 * Whether ks[0..m) all lie within SMALL_INT of ks[0] (a counter of any size qualifies when it
 * grows by less than that over the block); if so, ks[i] - ks[0] are copied to ki.
 */
function smallInts(m: number): boolean {
  if (ki.length < m) {
    ki = new Int32Array(m * 2);
    packs = new Uint32Array(m * 2);
  }
  const K = ki, F = ks;
  const k0 = F[0]!;
  for (let i = 0; i < m; i++) {
    const k = F[i]! - k0;
    if (k > SMALL_INT || k < -SMALL_INT) return false;
    K[i] = k;
  }
  return true;
}

/** zz of an int32, in 32-bit arithmetic. */
function zz32(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}

/**
 * The mode byte of an integer series (without its NaN and scale bits) and its packed width
 * (bits 8-15), from the byte sizes of its candidate encodings (Infinity for one that cannot be
 * used): varints of deltas or of deltas of deltas, the same packed, or frame of reference. The
 * smallest wins; a tie goes to the one listed first.
 */
function intMode(deltaLen: number, dodLen: number, packedDeltaLen: number, packedDodLen: number, forLen: number, wDelta: number, wDod: number, wFor: number): number {
  let mode = dodLen < deltaLen ? KIND_DOD : KIND_DELTA;
  let best = dodLen < deltaLen ? dodLen : deltaLen;
  if (packedDeltaLen < best) {
    mode = KIND_DELTA | PACKED | (wDelta << 8);
    best = packedDeltaLen;
  }
  if (packedDodLen < best) {
    mode = KIND_DOD | PACKED | (wDod << 8);
    best = packedDodLen;
  }
  if (forLen < best) mode = KIND_DELTA | PACKED | FOR | (wFor << 8);
  return mode;
}

/** An integer series' mode byte at q, then its NaN bitmap when it has missing samples; returns the position after them. */
function putIntHead(b: Uint8Array, q: number, mode: number, s: number, nans: number, w: Uint32Array, base: number, nts: number): number {
  b[q++] = (mode & 255) | (nans ? NAN_MASK : 0) | (s << 4);
  if (nans) {
    const maskBytes = (nts + 7) >>> 3;
    b.fill(0, q, q + maskBytes);
    for (let i = 0; i < nts; i++) if (w[base + 2 * i + 1] === NAN_HI && w[base + 2 * i] === 0) b[q + (i >>> 3)]! |= 1 << (i & 7);
    q += maskBytes;
  }
  return q;
}

/**
 * The width byte, then packs[0..count) in `width` bits each (0-32), least significant bit first,
 * through an accumulator of under 8 pending bits, at most 16 bits a step.
 */
function putPacked(b: Uint8Array, q: number, count: number, width: number): number {
  const U = packs;
  b[q++] = width;
  let acc = 0, accBits = 0;
  const lowBits = width > 16 ? 16 : width, highBits = width - lowBits;
  for (let i = 0; i < count; i++) {
    const u = U[i]!;
    acc |= (u & 0xffff) << accBits;
    accBits += lowBits;
    while (accBits >= 8) {
      b[q++] = acc & 255;
      acc >>>= 8;
      accBits -= 8;
    }
    if (highBits > 0) {
      acc |= (u >>> 16) << accBits;
      accBits += highBits;
      while (accBits >= 8) {
        b[q++] = acc & 255;
        acc >>>= 8;
        accBits -= 8;
      }
    }
  }
  if (accBits > 0) b[q++] = acc & ((1 << accBits) - 1);
  return q;
}

/**
 * An integer series at q (ks[0..m), at scale s; room ensured): its encodings' sizes, the smallest
 * chosen (intMode), then written. The widths for packing come from the OR of the zz values, which
 * has the same highest bit as their maximum without a branch on each value, or are 33 when one
 * needs more than 32 bits.
 */
function putInts(b: Uint8Array, q: number, m: number, s: number, nans: number, w: Uint32Array, base: number, nts: number): number {
  const K = ks;
  let deltaLen = varintLen(zz(K[0]!)), dodLen = deltaLen;
  let pd = 0, orDelta = 0, orDod = 0, wideDelta = false, wideDod = false, lo = K[0]!, hi = lo;
  for (let i = 1; i < m; i++) {
    const d = K[i]! - K[i - 1]!;
    lo = Math.min(lo, K[i]!);
    hi = Math.max(hi, K[i]!);
    const zd = zz(d);
    deltaLen += varintLen(zd);
    if (zd < 0x100000000) orDelta |= zd;
    else wideDelta = true;
    if (i === 1) dodLen += varintLen(zd);
    else {
      const zdd = zz(d - pd);
      dodLen += varintLen(zdd);
      if (zdd < 0x100000000) orDod |= zdd;
      else wideDod = true;
    }
    pd = d;
  }
  const k0Len = varintLen(zz(K[0]!));
  const wDelta = wideDelta ? 33 : bitWidth(orDelta >>> 0), wDod = wideDod ? 33 : bitWidth(orDod >>> 0);
  // packed only with at least one packed value (m > 1 for DELTA, m > 2 for DOD)
  const packedDeltaLen = wDelta <= MAX_PACK_BITS && m > 1 ? k0Len + 1 + Math.ceil(((m - 1) * wDelta) / 8) : Infinity;
  const packedDodLen = wDod <= MAX_PACK_BITS && m > 2 ? k0Len + varintLen(zz(K[1]! - K[0]!)) + 1 + Math.ceil(((m - 2) * wDod) / 8) : Infinity;
  // frame of reference: each value's distance from the lowest, packed (a gauge whose moves
  // are noise around a level needs a bit less than its deltas, which span the noise twice)
  const wFor = bitWidth(hi - lo);
  const forLen = wFor <= MAX_PACK_BITS && m > 1 ? varintLen(zz(lo)) + 1 + Math.ceil((m * wFor) / 8) : Infinity;
  const mode = intMode(deltaLen, dodLen, packedDeltaLen, packedDodLen, forLen, wDelta, wDod, wFor);
  const kind = mode & 3, isFor = (mode & FOR) !== 0;
  q = putIntHead(b, q, mode, s, nans, w, base, nts);
  q = putVarint(b, q, zz(isFor ? lo : K[0]!));
  if (mode & PACKED) {
    // every packed value is below 2^32 (its width is at most 32)
    const U = packs;
    let n = 0;
    if (isFor) for (let i = 0; i < m; i++) U[n++] = K[i]! - lo;
    else if (kind === KIND_DELTA) for (let i = 1; i < m; i++) U[n++] = zz(K[i]! - K[i - 1]!);
    else {
      q = putVarint(b, q, zz(K[1]! - K[0]!));
      for (let i = 2; i < m; i++) U[n++] = zz(K[i]! - 2 * K[i - 1]! + K[i - 2]!);
    }
    return putPacked(b, q, n, mode >>> 8);
  }
  pd = 0;
  for (let i = 1; i < m; i++) {
    const d = K[i]! - K[i - 1]!;
    q = putVarint(b, q, zz(kind === KIND_DELTA || i === 1 ? d : d - pd));
    pd = d;
  }
  return q;
}

/**
 * putInts for integers all within SMALL_INT of the first (smallInts: ki holds them less the first,
 * ks[0] is the first): the same sizes, choice and bytes, in 32-bit integer arithmetic but for the
 * first and the lowest value, which are written whole. No Math.min/max or range checks on doubles,
 * which mispredict on noisy gauges (most of a host's series): a fifth less encoding time on the
 * realistic workload (docs/architecture.md).
 */
function putSmallInts(b: Uint8Array, q: number, m: number, s: number, nans: number, w: Uint32Array, base: number, nts: number): number {
  const K = ki;
  const k0 = ks[0]!;
  const k0Len = varintLen(zz(k0));
  let deltaLen = k0Len, dodLen = k0Len;
  // lo and hi less k0 (K[0] is 0)
  let pd = 0, orDelta = 0, orDod = 0, lo = 0, hi = 0;
  for (let i = 1; i < m; i++) {
    const x = K[i]!;
    const d = x - K[i - 1]!;
    // min and max without a branch: x - lo and x - hi stay within 2^30
    const tl = x - lo;
    lo += tl & (tl >> 31);
    const th = x - hi;
    hi += th & ~(th >> 31);
    const zd = (d << 1) ^ (d >> 31);
    const ld = VARINT_BY_CLZ[Math.clz32(zd)]!;
    deltaLen += ld;
    orDelta |= zd;
    if (i === 1) dodLen += ld;
    else {
      const dd = d - pd;
      const zdd = (dd << 1) ^ (dd >> 31);
      dodLen += VARINT_BY_CLZ[Math.clz32(zdd)]!;
      orDod |= zdd;
    }
    pd = d;
  }
  // widths of at most 31 (deltas) and 32 (deltas of deltas) bits: every packing is possible
  const wDelta = 32 - Math.clz32(orDelta), wDod = 32 - Math.clz32(orDod), wFor = 32 - Math.clz32(hi - lo);
  const d1 = m > 1 ? K[1]! : 0;
  const packedDeltaLen = m > 1 ? k0Len + 1 + (((m - 1) * wDelta + 7) >>> 3) : Infinity;
  const packedDodLen = m > 2 ? k0Len + VARINT_BY_CLZ[Math.clz32(zz32(d1))]! + 1 + (((m - 2) * wDod + 7) >>> 3) : Infinity;
  const zlo = zz(lo + k0);
  const forLen = m > 1 ? varintLen(zlo) + 1 + ((m * wFor + 7) >>> 3) : Infinity;
  const mode = intMode(deltaLen, dodLen, packedDeltaLen, packedDodLen, forLen, wDelta, wDod, wFor);
  const kind = mode & 3, isFor = (mode & FOR) !== 0;
  q = putIntHead(b, q, mode, s, nans, w, base, nts);
  q = putVarint(b, q, isFor ? zlo : zz(k0));
  if (mode & PACKED) {
    const U = packs;
    let n = 0;
    if (isFor) for (let i = 0; i < m; i++) U[n++] = K[i]! - lo;
    else if (kind === KIND_DELTA) for (let i = 1; i < m; i++) U[n++] = zz32(K[i]! - K[i - 1]!);
    else {
      q = putVarint(b, q, zz32(d1));
      for (let i = 2; i < m; i++) U[n++] = zz32(K[i]! - 2 * K[i - 1]! + K[i - 2]!);
    }
    return putPacked(b, q, n, mode >>> 8);
  }
  pd = 0;
  for (let i = 1; i < m; i++) {
    const d = K[i]! - K[i - 1]!;
    q = putVarint(b, q, zz32(kind === KIND_DELTA || i === 1 ? d : d - pd));
    pd = d;
  }
  return q;
}

function clz64(xh: number, xl: number): number {
  return xh !== 0 ? Math.clz32(xh) : 32 + Math.clz32(xl);
}

function ctz64(xh: number, xl: number): number {
  return xl !== 0 ? 31 - Math.clz32(xl & -xl) : 32 + (31 - Math.clz32(xh & -xh));
}

/** Bytes of the byte-aligned XOR values after the first (a header byte and the bytes between the zero bytes). */
function xorBytes(w: Uint32Array, base: number, nts: number): number {
  let n = 0;
  for (let i = 1; i < nts; i++) {
    const xl = w[base + 2 * i]! ^ w[base + 2 * i - 2]!, xh = w[base + 2 * i + 1]! ^ w[base + 2 * i - 1]!;
    if (xl === 0 && xh === 0) n++;
    else n += 9 - (clz64(xh, xl) >>> 3) - (ctz64(xh, xl) >>> 3);
  }
  return n;
}

/** Bytes of the Gorilla bit stream of the values after the first. */
function gorillaBytes(w: Uint32Array, base: number, nts: number): number {
  let bits = 0, pLz = -1, pTz = 0;
  for (let i = 1; i < nts; i++) {
    const xl = w[base + 2 * i]! ^ w[base + 2 * i - 2]!, xh = w[base + 2 * i + 1]! ^ w[base + 2 * i - 1]!;
    if (xl === 0 && xh === 0) {
      bits += 1;
      continue;
    }
    const lz = clz64(xh, xl), tz = ctz64(xh, xl);
    if (pLz >= 0 && lz >= pLz && tz >= pTz) bits += 2 + 64 - pLz - pTz;
    else {
      bits += 14 + 64 - lz - tz;
      pLz = lz;
      pTz = tz;
    }
  }
  return (bits + 7) >>> 3;
}

/** Bits written least significant first through an accumulator of under 8 pending bits. */
class BitWriter {
  acc = 0;
  bits = 0;
  constructor(readonly b: Uint8Array, public q: number) {}
  /** The low n bits of v, n <= 16. */
  put(v: number, n: number): void {
    this.acc |= (v & ((1 << n) - 1)) << this.bits;
    this.bits += n;
    while (this.bits >= 8) {
      this.b[this.q++] = this.acc & 255;
      this.acc >>>= 8;
      this.bits -= 8;
    }
  }
  /** The low n bits (1-32) of v. */
  put32(v: number, n: number): void {
    if (n <= 16) this.put(v, n);
    else {
      this.put(v, 16);
      this.put(v >>> 16, n - 16);
    }
  }
  /** Bits [tz, tz + n) of the 64-bit (xh:xl). */
  putWindow(xh: number, xl: number, tz: number, n: number): void {
    let sl = xl, sh = xh;
    if (tz >= 32) {
      sl = xh >>> (tz - 32);
      sh = 0;
    } else if (tz > 0) {
      sl = (xl >>> tz) | (xh << (32 - tz));
      sh = xh >>> tz;
    }
    if (n <= 32) this.put32(sl, n);
    else {
      this.put32(sl, 32);
      this.put32(sh, n - 32);
    }
  }
  /** Flushes the last partial byte (zero padding); returns the position after it. */
  end(): number {
    if (this.bits > 0) this.b[this.q++] = this.acc & ((1 << this.bits) - 1);
    this.acc = this.bits = 0;
    return this.q;
  }
}

/**
 * Gorilla's XOR encoding of the values after the first, in a bit stream (least significant bit
 * first): 0 = the same bits as the previous value; 10 = the XOR's meaningful bits fit the
 * previous window, which follows; 11 = a new window: 6 bits of leading zeros, 6 bits of
 * (length - 1), then the length's bits. The stream ends on a byte boundary, zero-padded.
 */
function putGorilla(b: Uint8Array, q: number, w: Uint32Array, base: number, nts: number): number {
  const bw = new BitWriter(b, q);
  let pLz = -1, pTz = 0;
  for (let i = 1; i < nts; i++) {
    const xl = (w[base + 2 * i]! ^ w[base + 2 * i - 2]!) >>> 0, xh = (w[base + 2 * i + 1]! ^ w[base + 2 * i - 1]!) >>> 0;
    if (xl === 0 && xh === 0) {
      bw.put(0, 1);
      continue;
    }
    const lz = clz64(xh, xl), tz = ctz64(xh, xl);
    if (pLz >= 0 && lz >= pLz && tz >= pTz) {
      bw.put(1, 2); // 1 then 0
      bw.putWindow(xh, xl, pTz, 64 - pLz - pTz);
    } else {
      const len = 64 - lz - tz;
      bw.put(3, 2);
      bw.put(lz, 6);
      bw.put(len - 1, 6);
      bw.putWindow(xh, xl, tz, len);
      pLz = lz;
      pTz = tz;
    }
  }
  return bw.end();
}

/** Reads what BitWriter wrote; running past the input throws CodecError. */
class BitReader {
  acc = 0;
  bits = 0;
  constructor(readonly b: Uint8Array, public p: number) {}
  get(n: number): number {
    while (this.bits < n) {
      if (this.p >= this.b.length) throw new CodecError("block truncated");
      this.acc |= this.b[this.p++]! << this.bits;
      this.bits += 8;
    }
    const v = this.acc & ((1 << n) - 1);
    this.acc >>>= n;
    this.bits -= n;
    return v;
  }
  get32(n: number): number {
    if (n <= 16) return this.get(n);
    const lo = this.get(16);
    return (lo | (this.get(n - 16) << 16)) >>> 0;
  }
  /** The padding after the last value must be zero (one encoding per value). */
  end(): number {
    if (this.acc !== 0) throw new CodecError("bad bit stream padding");
    return this.p;
  }
}

/** One decoded block. `values` holds the kept series only, series-major, in `sids` order. */
export interface DecodedBlock {
  tsOff: Int32Array;
  sids: Int32Array;
  values: Float64Array;
}

class Reader {
  p: number;
  constructor(readonly b: Uint8Array, p = 0) {
    this.p = p;
  }
  byte(): number {
    if (this.p >= this.b.length) throw new CodecError("block truncated");
    return this.b[this.p++]!;
  }
  varint(): number {
    const b = this.b;
    if (this.p >= b.length) throw new CodecError("block truncated");
    const first = b[this.p++]!;
    if (first < 128) return first;
    let v = first & 127, mul = 128;
    for (let i = 1; i < 8; i++) {
      if (this.p >= b.length) throw new CodecError("block truncated");
      const x = b[this.p++]!;
      v += (x & 127) * mul;
      if (x < 128) {
        if (v > Number.MAX_SAFE_INTEGER) break;
        return v;
      }
      mul *= 128;
    }
    throw new CodecError("varint too long");
  }
  zz(): number {
    const u = this.varint();
    return u < 0x100000000 ? unzz32(u) : u % 2 === 0 ? u / 2 : (u + 1) / -2;
  }
  /**
   * Moves past `count` varints without their values, refusing what varint() refuses: a series not
   * wanted is passed over by its bytes (about a seventh of a host's hour are varint series).
   */
  skipVarints(count: number): void {
    const b = this.b;
    let p = this.p;
    for (let c = 0; c < count; c++) {
      if (p >= b.length) throw new CodecError("block truncated");
      if (b[p]! < 128) {
        p++;
        continue;
      }
      let len = 1; // bytes with the continuation bit
      while (len < 7 && p + len < b.length && b[p + len]! >= 128) len++;
      if (len >= 7) {
        // 8 bytes or more: varint() decides (too long, or above 2^53)
        this.p = p;
        this.varint();
        p = this.p;
        continue;
      }
      if (p + len >= b.length) throw new CodecError("block truncated");
      p += len + 1;
    }
    this.p = p;
  }
}

/**
 * The packed part of an integer series at r: its width byte, then `count` values of that many
 * bits. Checks it (width, length, zero padding: one encoding per block), moves r past it and
 * returns the width; the values start after the width byte.
 */
function packedPart(r: Reader, bytes: Uint8Array, count: number): number {
  const width = r.byte();
  if (width > MAX_PACK_BITS) throw new CodecError("bad packed width");
  const nbytes = Math.ceil((count * width) / 8);
  if (r.p + nbytes > bytes.length) throw new CodecError("block truncated");
  r.p += nbytes;
  if ((count * width) % 8 !== 0 && bytes[r.p - 1]! >>> ((count * width) % 8) !== 0) throw new CodecError("bad packed padding");
  return width;
}

/**
 * The integer whose zig-zag is u, for u below 2^32 (the inverse of the encoder's `zz`): no double
 * modulo and no branch on the parity, which noisy deltas flip at random.
 */
function unzz32(u: number): number {
  return (u >>> 1) ^ -(u & 1);
}

/**
 * `block` (version 2 or 3, as encodeBlock writes it) as version 4 when that is smaller, else
 * `block` itself, at zstd's `level` (compaction passes its own, COMPACTED_ZSTD_LEVEL).
 */
export function zstdBlock(block: Uint8Array, level = 3): Uint8Array {
  if (!wrappable(block)) throw new CodecError("only a version 2 or 3 block is wrapped");
  return zstdWrap(BLOCK_VERSION_ZSTD, block, level) ?? block;
}

/** The inner block of a version-4 block, which must be version 2 or 3. */
function unzstdBlock(bytes: Uint8Array): Uint8Array {
  const inner = zstdUnwrap(bytes);
  if (!wrappable(inner)) throw new CodecError("a zstd block must hold a version 2 or 3 block");
  return inner;
}

/** Whether a block may be (or be found) inside version 4: versions 2 and 3, what encodeBlock writes. */
function wrappable(block: Uint8Array): boolean {
  return block[0] === BLOCK_VERSION || block[0] === BLOCK_VERSION_RLE;
}

/**
 * `inner` compressed as `u8 tag | varint length of inner | one zstd frame`, when that is smaller;
 * undefined when not. The rollup tiers' rows use it too (rollup-blocks.ts).
 */
export function zstdWrap(tag: number, inner: Uint8Array, level = 3): Uint8Array | undefined {
  const z = Bun.zstdCompressSync(inner, { level });
  const size = 1 + varintLen(inner.length) + z.length;
  if (size >= inner.length) return undefined;
  const out = new Uint8Array(size);
  out[0] = tag;
  out.set(z, putVarint(out, 1, inner.length));
  return out;
}

/**
 * The inner bytes of what zstdWrap wrote (any tag). Decompression is bounded by the declared
 * length (a frame that would grow past it is refused as it grows); CodecError on anything amiss.
 */
export function zstdUnwrap(bytes: Uint8Array): Uint8Array {
  const r = new Reader(bytes, 1);
  const len = r.varint();
  if (len < 1 || len > MAX_ZSTD_INNER) throw new CodecError(`a zstd block of ${len} bytes is out of range`);
  let inner: Uint8Array;
  try {
    inner = zstdDecompressSync(bytes.subarray(r.p), { maxOutputLength: len });
  } catch (e) {
    throw new CodecError(`zstd block does not decompress: ${e instanceof Error ? e.message : e}`);
  }
  if (inner.length !== len) throw new CodecError(`zstd block holds ${inner.length} bytes, declares ${len}`);
  return inner;
}

function int4(v: number, what: string): number {
  if (v < -0x80000000 || v > 0x7fffffff) throw new CodecError(`${what} ${v} is out of range`);
  return v;
}

/**
 * Decodes a block; with `want`, keeps only the series whose ids it holds (the others are skipped
 * without decoding their values). Throws CodecError on malformed input.
 */
export function decodeBlock(bytes: Uint8Array, want?: { has(id: number): boolean }): DecodedBlock {
  if (bytes.length > 0 && bytes[0] === BLOCK_VERSION_ZSTD) return decodeBlock(unzstdBlock(bytes), want);
  const r = new Reader(bytes);
  const version = r.byte();
  if (version !== BLOCK_VERSION && version !== BLOCK_VERSION_RLE && version !== BLOCK_VERSION_1) throw new CodecError("unknown block version");
  const nts = r.varint();
  const n = r.varint();
  if (nts < 1 || nts > MAX_BLOCK_TIMESTAMPS || n < 1 || n > MAX_BLOCK_SERIES || n * nts > MAX_BLOCK_SAMPLES) {
    throw new CodecError(`a block of ${n} series x ${nts} timestamps is out of range`);
  }
  // a timestamp takes a byte at least in versions 1 and 2, a series two (version 3 may code an
  // hour of regular timestamps in a few bytes, so it is bounded by MAX_BLOCK_SAMPLES alone)
  if ((version === BLOCK_VERSION_RLE ? 0 : nts) + 2 * n > bytes.length) throw new CodecError("block truncated");
  const tsOff = new Int32Array(nts);
  let t = r.zz(), d = 0;
  tsOff[0] = int4(t, "timestamp offset");
  if (version === BLOCK_VERSION_RLE) {
    const runs = r.varint();
    if (runs > nts - 1 || (runs === 0 && nts > 1)) throw new CodecError("bad timestamp runs");
    let i = 1;
    for (let k = 0; k < runs; k++) {
      const x = r.zz();
      const len = r.varint();
      if (len < 1 || i + len > nts) throw new CodecError("bad timestamp run length");
      for (const end = i + len; i < end; i++) {
        d += x;
        t += d;
        tsOff[i] = int4(t, "timestamp offset");
      }
    }
    if (i !== nts) throw new CodecError("timestamp runs do not add up");
  } else {
    for (let i = 1; i < nts; i++) {
      d += r.zz();
      t += d;
      tsOff[i] = int4(t, "timestamp offset");
    }
  }
  const all = new Int32Array(n);
  const runs = r.varint();
  if (runs < 1 || runs > n) throw new CodecError("bad series runs");
  let j = 0, end = 0;
  for (let k = 0; k < runs; k++) {
    const start = int4(end + r.zz(), "series id");
    const len = r.varint();
    if (len < 1 || j + len > n) throw new CodecError("bad series run length");
    int4(start + len - 1, "series id");
    for (let i = 0; i < len; i++) all[j++] = start + i;
    end = start + len;
  }
  if (j !== n) throw new CodecError("series runs do not add up");
  let keep = n;
  if (want) {
    keep = 0;
    for (let i = 0; i < n; i++) if (want.has(all[i]!)) keep++;
  }
  const sids = keep === n ? all : new Int32Array(keep);
  // both views over one ArrayBuffer made first: reading `.buffer` of a new typed array makes
  // JavaScriptCore materialize it, which cost more than decoding the values (7 d reads, profiled)
  const backing = new ArrayBuffer(keep * nts * 8);
  const values = new Float64Array(backing);
  const out = new Uint32Array(backing);
  const maskBytes = (nts + 7) >>> 3;
  let kept = 0;
  for (let s = 0; s < n; s++) {
    const wanted = keep === n || want!.has(all[s]!);
    const mode = r.byte();
    const kind = mode & 3;
    const packedMode = (mode & PACKED) !== 0 && (kind === KIND_DELTA || kind === KIND_DOD || kind === KIND_XOR);
    if (packedMode && version === BLOCK_VERSION_1) throw new CodecError("bad series mode");
    if ((mode & CONST_VARINT) !== 0 && kind !== KIND_CONST && !packedMode) throw new CodecError("bad series mode");
    const base = kept * nts;
    if (kind === KIND_CONST && (mode & CONST_VARINT) !== 0) {
      if ((mode & NAN_MASK) !== 0 || mode >>> 4 > MAX_SCALE) throw new CodecError("bad series mode");
      const k = r.zz();
      const v = mode >>> 4 === 0 ? k : k / POW10[mode >>> 4]!;
      if (wanted) values.fill(v, base, base + nts);
    } else if (kind === KIND_CONST) {
      if (mode !== KIND_CONST) throw new CodecError("bad series mode");
      if (r.p + 8 > bytes.length) throw new CodecError("block truncated");
      if (wanted) {
        const lo = bytes[r.p]! | (bytes[r.p + 1]! << 8) | (bytes[r.p + 2]! << 16) | (bytes[r.p + 3]! << 24);
        const hi = bytes[r.p + 4]! | (bytes[r.p + 5]! << 8) | (bytes[r.p + 6]! << 16) | (bytes[r.p + 7]! << 24);
        for (let i = 0; i < nts; i++) {
          out[2 * (base + i)] = lo;
          out[2 * (base + i) + 1] = hi;
        }
      }
      r.p += 8;
    } else if (kind === KIND_XOR && mode === (KIND_XOR | PACKED) && version !== BLOCK_VERSION_1) {
      if (r.p + 8 > bytes.length) throw new CodecError("block truncated");
      let lo = bytes[r.p]! | (bytes[r.p + 1]! << 8) | (bytes[r.p + 2]! << 16) | (bytes[r.p + 3]! << 24);
      let hi = bytes[r.p + 4]! | (bytes[r.p + 5]! << 8) | (bytes[r.p + 6]! << 16) | (bytes[r.p + 7]! << 24);
      if (wanted) {
        out[2 * base] = lo;
        out[2 * base + 1] = hi;
      }
      const br = new BitReader(bytes, r.p + 8);
      let pLz = -1, pTz = 0;
      for (let i = 1; i < nts; i++) {
        if (br.get(1) !== 0) {
          let tz: number, len: number;
          if (br.get(1) === 0) {
            if (pLz < 0) throw new CodecError("xor window reused before one was set");
            tz = pTz;
            len = 64 - pLz - pTz;
          } else {
            const lz = br.get(6);
            len = br.get(6) + 1;
            tz = 64 - lz - len;
            if (tz < 0) throw new CodecError("bad xor window");
            pLz = lz;
            pTz = tz;
          }
          let sl: number, sh = 0;
          if (len <= 32) sl = br.get32(len);
          else {
            sl = br.get32(32);
            sh = br.get32(len - 32);
          }
          if (tz === 0) {
            lo ^= sl;
            hi ^= sh;
          } else if (tz < 32) {
            lo ^= sl << tz;
            hi ^= (sh << tz) | (sl >>> (32 - tz));
          } else hi ^= sl << (tz - 32);
        }
        if (wanted) {
          out[2 * (base + i)] = lo;
          out[2 * (base + i) + 1] = hi;
        }
      }
      r.p = br.end();
    } else if (kind === KIND_XOR) {
      if (mode !== KIND_XOR) throw new CodecError("bad series mode");
      if (r.p + 8 > bytes.length) throw new CodecError("block truncated");
      let lo = bytes[r.p]! | (bytes[r.p + 1]! << 8) | (bytes[r.p + 2]! << 16) | (bytes[r.p + 3]! << 24);
      let hi = bytes[r.p + 4]! | (bytes[r.p + 5]! << 8) | (bytes[r.p + 6]! << 16) | (bytes[r.p + 7]! << 24);
      r.p += 8;
      if (wanted) {
        out[2 * base] = lo;
        out[2 * base + 1] = hi;
      }
      for (let i = 1; i < nts; i++) {
        const h = r.byte();
        const lz = h >>> 4, tz = h & 15;
        const e = 8 - lz;
        if (e < tz) throw new CodecError("bad xor header");
        if (r.p + e - tz > bytes.length) throw new CodecError("block truncated");
        let xl = 0, xh = 0;
        for (let k = tz; k < e; k++) {
          const x = bytes[r.p++]!;
          if (k < 4) xl |= x << (8 * k);
          else xh |= x << (8 * (k - 4));
        }
        lo ^= xl;
        hi ^= xh;
        if (wanted) {
          out[2 * (base + i)] = lo;
          out[2 * (base + i) + 1] = hi;
        }
      }
    } else {
      const isFor = (mode & FOR) !== 0;
      if (isFor && (kind !== KIND_DELTA || !packedMode)) throw new CodecError("bad series mode");
      const scale = (mode >>> 4) & 7;
      if (scale > MAX_SCALE) throw new CodecError("bad scale");
      let maskAt = -1;
      let m = nts;
      if (mode & NAN_MASK) {
        if (r.p + maskBytes > bytes.length) throw new CodecError("block truncated");
        maskAt = r.p;
        m = 0;
        for (let i = 0; i < nts; i++) if ((bytes[maskAt + (i >>> 3)]! & (1 << (i & 7))) === 0) m++;
        if ((nts & 7) !== 0 && bytes[maskAt + maskBytes - 1]! >>> (nts & 7) !== 0) throw new CodecError("bad nan mask");
        r.p += maskBytes;
        if (m === 0) throw new CodecError("empty integer series");
      }
      const div = POW10[scale]!;
      let k = 0, dd = 0, c = 0;
      // PACKED: the varints before the width byte, then `count` values of `width` bits at bit `bit`
      let width = -1, packAt = 0, acc = 0, accBits = 0, lowBits = 0, highBits = 0;
      const packFrom = isFor ? 0 : kind === KIND_DOD ? 2 : 1;
      const forBase = isFor ? r.zz() : 0;
      if (packedMode && m <= packFrom) throw new CodecError("packed series without packed values");
      if (!wanted) {
        // a series not asked for is passed over (a compacted row holds a host's hundred series; a
        // chart wants a few): packed values by their length, varints by their bytes
        if (packedMode) {
          r.skipVarints(packFrom);
          packedPart(r, bytes, m - packFrom);
        } else r.skipVarints(m);
        continue;
      }
      // a wanted series from here on
      for (let i = 0; i < nts; i++) {
        if (maskAt >= 0 && (bytes[maskAt + (i >>> 3)]! & (1 << (i & 7))) !== 0) {
          out[2 * (base + i)] = 0;
          out[2 * (base + i) + 1] = NAN_HI;
          continue;
        }
        if (packedMode && c === packFrom) {
          // reached the packed part
          packAt = r.p + 1;
          width = packedPart(r, bytes, m - c);
          lowBits = width > 16 ? 16 : width;
          highBits = width - lowBits;
        }
        let x: number;
        if (width < 0) x = r.zz();
        else {
          // the byte count was checked against the input when the packed part started
          while (accBits < lowBits) {
            acc |= bytes[packAt++]! << accBits;
            accBits += 8;
          }
          let u = acc & ((1 << lowBits) - 1);
          acc >>>= lowBits;
          accBits -= lowBits;
          if (highBits > 0) {
            while (accBits < highBits) {
              acc |= bytes[packAt++]! << accBits;
              accBits += 8;
            }
            u += (acc & ((1 << highBits) - 1)) * 65536;
            acc >>>= highBits;
            accBits -= highBits;
          }
          x = isFor ? u : unzz32(u); // below 2^32: the width is 32 at most
        }
        if (isFor) k = forBase + x;
        else if (c === 0) k = x;
        else if (kind === KIND_DELTA || c === 1) {
          dd = x;
          k += x;
        } else {
          dd += x;
          k += dd;
        }
        c++;
        values[base + i] = scale === 0 ? k : k / div;
      }
    }
    if (wanted) {
      if (keep !== n) sids[kept] = all[s]!;
      kept++;
    }
  }
  if (r.p !== bytes.length) throw new CodecError("trailing bytes after the block");
  return { tsOff, sids, values };
}
