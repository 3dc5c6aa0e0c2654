/**
 * LZ4 block format (not the frame format: the frame header already carries both lengths).
 * Pure TypeScript so the cross-compiled agent needs no native addon. The decoder checks every
 * offset and length against the buffers and never writes past `rawLength`.
 */

const MIN_MATCH = 4;
const LAST_LITERALS = 5;
const MF_LIMIT = 12;
const HASH_LOG = 14;

export class Lz4Error extends Error {}

/** Worst-case compressed size for `n` input bytes. */
export function lz4Bound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

function hash(v: number): number {
  return Math.imul(v, 2654435761) >>> (32 - HASH_LOG);
}

function read32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

let table = new Int32Array(1 << HASH_LOG);

/** Compresses `src` into a new buffer holding one LZ4 block. */
export function lz4Compress(src: Uint8Array): Uint8Array {
  const n = src.length;
  const dst = new Uint8Array(lz4Bound(n));
  let op = 0;
  let anchor = 0;
  if (n >= MF_LIMIT + 1) {
    table.fill(-1);
    const matchLimit = n - LAST_LITERALS;
    const ipLimit = n - MF_LIMIT;
    let ip = 0;
    let step = 1;
    let searches = 1 << 6;
    while (ip < ipLimit) {
      const seq = read32(src, ip);
      const h = hash(seq);
      const ref = table[h]!;
      table[h] = ip;
      if (ref < 0 || ip - ref > 0xffff || read32(src, ref) !== seq) {
        // Skip faster through incompressible data, as the reference implementation does.
        ip += step;
        step = searches++ >> 6;
        continue;
      }
      searches = 1 << 6;
      step = 1;
      // Extend the match backwards over pending literals.
      let mStart = ip;
      let rStart = ref;
      while (mStart > anchor && rStart > 0 && src[mStart - 1] === src[rStart - 1]) {
        mStart--;
        rStart--;
      }
      let mEnd = ip + MIN_MATCH;
      let rEnd = ref + MIN_MATCH;
      while (mEnd < matchLimit && src[mEnd] === src[rEnd]) {
        mEnd++;
        rEnd++;
      }
      op = writeSequence(src, dst, op, anchor, mStart - anchor, mStart - rStart, mEnd - mStart);
      ip = mEnd;
      anchor = ip;
      if (ip - 2 >= 0 && ip - 2 < ipLimit) table[hash(read32(src, ip - 2))] = ip - 2;
    }
  }
  // Last literals.
  const litLen = n - anchor;
  op = writeLength(dst, op, litLen, 0);
  dst.set(src.subarray(anchor, n), op);
  op += litLen;
  return dst.slice(0, op);
}

function writeLength(dst: Uint8Array, op: number, litLen: number, matchNibble: number): number {
  const tokenPos = op++;
  if (litLen >= 15) {
    dst[tokenPos] = (15 << 4) | matchNibble;
    let rest = litLen - 15;
    while (rest >= 255) {
      dst[op++] = 255;
      rest -= 255;
    }
    dst[op++] = rest;
  } else {
    dst[tokenPos] = (litLen << 4) | matchNibble;
  }
  return op;
}

function writeSequence(
  src: Uint8Array, dst: Uint8Array, op: number, litStart: number, litLen: number, offset: number, matchLen: number,
): number {
  const ml = matchLen - MIN_MATCH;
  op = writeLength(dst, op, litLen, ml >= 15 ? 15 : ml);
  for (let i = litStart, end = litStart + litLen; i < end; ) dst[op++] = src[i++]!;
  dst[op++] = offset & 0xff;
  dst[op++] = offset >> 8;
  if (ml >= 15) {
    let rest = ml - 15;
    while (rest >= 255) {
      dst[op++] = 255;
      rest -= 255;
    }
    dst[op++] = rest;
  }
  return op;
}

/**
 * Decompresses one LZ4 block that must expand to exactly `rawLength` bytes.
 * Throws Lz4Error naming the problem on any malformed input.
 */
export function lz4Decompress(src: Uint8Array, rawLength: number): Uint8Array {
  const dst = new Uint8Array(rawLength);
  const n = src.length;
  let ip = 0;
  let op = 0;
  while (ip < n) {
    const token = src[ip++]!;
    let litLen = token >> 4;
    if (litLen === 15) {
      let b: number;
      do {
        if (ip >= n) throw new Lz4Error("lz4: literal length runs past the end of the block");
        b = src[ip++]!;
        litLen += b;
      } while (b === 255);
    }
    if (litLen > 0) {
      if (ip + litLen > n) throw new Lz4Error(`lz4: ${litLen} literal bytes at ${ip} run past the block (${n} bytes)`);
      if (op + litLen > rawLength) throw new Lz4Error(`lz4: output exceeds the declared ${rawLength} bytes`);
      if (litLen < 64) {
        for (const end = ip + litLen; ip < end; ) dst[op++] = src[ip++]!;
      } else {
        dst.set(src.subarray(ip, ip + litLen), op);
        ip += litLen;
        op += litLen;
      }
    }
    if (ip >= n) break; // the last sequence has literals only
    if (ip + 2 > n) throw new Lz4Error("lz4: truncated match offset");
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Lz4Error(`lz4: match offset ${offset} points before the start of the output`);
    let matchLen = token & 15;
    if (matchLen === 15) {
      let b: number;
      do {
        if (ip >= n) throw new Lz4Error("lz4: match length runs past the end of the block");
        b = src[ip++]!;
        matchLen += b;
      } while (b === 255);
    }
    matchLen += MIN_MATCH;
    if (op + matchLen > rawLength) throw new Lz4Error(`lz4: output exceeds the declared ${rawLength} bytes`);
    let from = op - offset;
    if (matchLen >= 64 && offset >= matchLen) {
      dst.copyWithin(op, from, from + matchLen);
      op += matchLen;
    } else {
      // Byte by byte: short copies are faster this way, and overlapping ones must be.
      for (const end = op + matchLen; op < end; ) dst[op++] = dst[from++]!;
    }
  }
  if (op !== rawLength) throw new Lz4Error(`lz4: block expands to ${op} bytes, header declares ${rawLength}`);
  return dst;
}

/**
 * Whether a block holds a match with offset 0, which the LZ4 format forbids and lz4Decompress
 * refuses but liblz4 1.9 accepts: a walk over the sequences that copies nothing, for a block
 * another decoder has already expanded. A block it cannot walk counts as holding one.
 */
export function lz4HasZeroOffset(src: Uint8Array): boolean {
  const n = src.length;
  let ip = 0;
  while (ip < n) {
    const token = src[ip++]!;
    let lit = token >> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= n) return true;
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    ip += lit;
    if (ip >= n) return false; // the last sequence has literals only
    if (ip + 2 > n) return true;
    if ((src[ip]! | (src[ip + 1]! << 8)) === 0) return true;
    ip += 2;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (ip >= n) return true;
        b = src[ip++]!;
      } while (b === 255);
    }
  }
  return false;
}
