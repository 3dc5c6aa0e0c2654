import { describe, expect, test } from "bun:test";
import { lz4Compress, lz4Decompress, Lz4Error } from "../../../src/ingest/frame/lz4.ts";

function roundTrip(a: Uint8Array) {
  const c = lz4Compress(a);
  expect(Buffer.from(lz4Decompress(c, a.length)).equals(Buffer.from(a))).toBe(true);
  return c;
}

describe("lz4 block codec", () => {
  test("round-trips empty, tiny, random, repetitive and text inputs", () => {
    for (const n of [0, 1, 4, 12, 13, 64, 255, 256, 1000, 65_536, 300_000]) {
      const rand = new Uint8Array(n);
      crypto.getRandomValues(rand);
      roundTrip(rand);
      roundTrip(new Uint8Array(n).fill(0x41));
      roundTrip(Uint8Array.from({ length: n }, (_, i) => "the quick brown fox ".charCodeAt(i % 20)));
    }
  });

  test("compresses repetitive data and keeps random data within the bound", () => {
    expect(roundTrip(new Uint8Array(100_000)).length).toBeLessThan(1000);
    const rand = new Uint8Array(10_000);
    crypto.getRandomValues(rand);
    expect(roundTrip(rand).length).toBeLessThanOrEqual(10_000 + Math.floor(10_000 / 255) + 16);
  });

  test("matches that overlap their own output (offset < length) decode correctly", () => {
    const a = Uint8Array.from({ length: 5000 }, (_, i) => [1, 2, 3][i % 3]!);
    roundTrip(a);
  });

  test("refuses a block that expands to more or less than declared", () => {
    const c = lz4Compress(new Uint8Array(1000).fill(7));
    expect(() => lz4Decompress(c, 999)).toThrow(Lz4Error);
    expect(() => lz4Decompress(c, 1001)).toThrow(/expands to 1000 bytes/);
  });

  test("refuses offsets before the start of the output", () => {
    // token: 1 literal, match nibble 0; literal 'a'; offset 5 (> 1 byte written)
    expect(() => lz4Decompress(Uint8Array.of(0x10, 0x61, 0x05, 0x00), 10)).toThrow(/offset 5/);
    expect(() => lz4Decompress(Uint8Array.of(0x10, 0x61, 0x00, 0x00), 10)).toThrow(/offset 0/);
  });

  test("refuses literals and lengths that run past the block", () => {
    expect(() => lz4Decompress(Uint8Array.of(0x50, 0x61), 5)).toThrow(/run past/);
    expect(() => lz4Decompress(Uint8Array.of(0xf0), 100)).toThrow(/literal length/);
    expect(() => lz4Decompress(Uint8Array.of(0x1f, 0x61, 0x01, 0x00), 100)).toThrow(/match length/);
    expect(() => lz4Decompress(Uint8Array.of(0x10, 0x61, 0x01), 100)).toThrow(/truncated match offset/);
  });
});
