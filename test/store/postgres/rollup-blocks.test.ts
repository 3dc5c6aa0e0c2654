/**
 * Rollup blocks (src/store/postgres/rollup-blocks.ts): aggregates round-trip bit for bit, rows are
 * packed under the TOAST target, and malformed bytes are CodecErrors.
 */
import { expect, test } from "bun:test";
import { packRollupBlocks, visitRollupBlock, type RollupAgg } from "../../../src/store/postgres/rollup-blocks.ts";
import { BLOCK_TARGET_BYTES } from "../../../src/store/postgres/metric-blocks.ts";
import { CodecError, zstdUnwrap } from "../../../src/store/codec/block.ts";

/** A row as version 1 (unwrapped when zstd made it version 2), to reach into its parts. */
const plain = (b: Uint8Array) => (b[0] === 2 ? zstdUnwrap(b) : b);

const HOUR = 3_600_000;
const hour = 1_790_000_000_000 - (1_790_000_000_000 % HOUR);

function aggregates(series: number, seed: number): Map<number, Map<number, RollupAgg>> {
  const by = new Map<number, Map<number, RollupAgg>>();
  let x = seed;
  const r = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let s = 0; s < series; s++) {
    const m = new Map<number, RollupAgg>();
    for (let i = 0; i < 60; i++) {
      if (s % 7 === 3 && i % 5 === 0) continue; // minutes without a sample
      const kind = s % 3;
      const v = kind === 0 ? 42 : kind === 1 ? 1000 + i * 6 : r() * 1e3;
      m.set(hour + i * 60_000, { min: v, max: kind === 2 ? v + r() : v, sum: v * 6, count: 6 });
    }
    by.set(100 + s * (s % 4 === 0 ? 3 : 1), m);
  }
  return by;
}

test.each([false, true])("aggregates round-trip bit for bit across packed rows under the target size (zstd: %p)", (compress) => {
  const by = aggregates(200, 7);
  const blocks: Uint8Array[] = [];
  packRollupBlocks(hour, by, (b) => blocks.push(b.slice()), HOUR, compress);
  expect(blocks.length).toBeGreaterThan(1);
  for (const b of blocks) expect(b.length).toBeLessThanOrEqual(BLOCK_TARGET_BYTES);
  const got = new Map<number, Map<number, RollupAgg>>();
  for (const b of blocks) {
    visitRollupBlock(hour, b, undefined, hour, hour + HOUR, (sid, t, min, max, sum, count) => {
      if (!got.has(sid)) got.set(sid, new Map());
      expect(got.get(sid)!.has(t)).toBe(false);
      got.get(sid)!.set(t, { min, max, sum, count });
    });
  }
  expect(got).toEqual(by);
  // with zstd, rows it made smaller are version 2, the others version 1; both read the same (above)
  expect(blocks.some((b) => b[0] === 2)).toBe(compress);
  for (const b of blocks) {
    expect(compress ? [1, 2] : [1]).toContain(b[0]!);
    if (b[0] === 2) expect(b.length).toBeLessThan(plain(b).length);
  }
  // wanted series and a time window
  const sid = [...by.keys()][5]!;
  const seen: number[] = [];
  for (const b of blocks) visitRollupBlock(hour, b, new Set([sid]), hour + 10 * 60_000, hour + 20 * 60_000, (s, t) => (expect(s).toBe(sid), seen.push(t)));
  expect(seen.length).toBe(10);
});

test("malformed rollup blocks are CodecErrors: version, truncation, parts that disagree, a bad zstd wrapper", () => {
  const blocks: Uint8Array[] = [];
  packRollupBlocks(hour, aggregates(3, 1), (b) => blocks.push(b.slice()), HOUR, true);
  const visit = () => {};
  // the wrapped row (version 2): every truncation and a byte flipped anywhere
  const wrapped = blocks[0]!;
  expect(wrapped[0]).toBe(2);
  for (let cut = 0; cut < wrapped.length; cut++) expect(() => visitRollupBlock(hour, wrapped.subarray(0, cut), undefined, 0, 4e12, visit)).toThrow(CodecError);
  for (let i = 1; i < wrapped.length; i++) {
    const f = wrapped.slice();
    f[i]! ^= 0x5a;
    try {
      visitRollupBlock(hour, f, undefined, 0, 4e12, visit);
    } catch (e) {
      expect(e).toBeInstanceOf(CodecError);
    }
  }
  const b = plain(wrapped);
  expect(b[0]).toBe(1);
  for (let cut = 0; cut < b.length; cut++) expect(() => visitRollupBlock(hour, b.subarray(0, cut), undefined, 0, 4e12, visit)).toThrow(CodecError);
  const v = b.slice();
  v[0] = 9;
  expect(() => visitRollupBlock(hour, v, undefined, 0, 4e12, visit)).toThrow(CodecError);
  // a part from another block (other timestamps) in place of the counts
  const other: Uint8Array[] = [];
  const few = new Map([[100, new Map([[hour, { min: 1, max: 1, sum: 1, count: 1 }]])]]);
  packRollupBlocks(hour, few, (x) => other.push(x.slice()));
  const view = (x: Uint8Array) => new DataView(x.buffer, x.byteOffset, x.byteLength);
  let p = 1;
  for (let k = 0; k < 3; k++) p += 4 + view(b).getUint32(p, true);
  let q = 1;
  const o = plain(other[0]!);
  for (let k = 0; k < 3; k++) q += 4 + view(o).getUint32(q, true);
  const mixed = new Uint8Array([...b.subarray(0, p), ...o.subarray(q)]);
  expect(() => visitRollupBlock(hour, mixed, undefined, 0, 4e12, visit)).toThrow(CodecError);
});
