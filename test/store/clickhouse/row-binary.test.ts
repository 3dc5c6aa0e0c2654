/** RowBinary encoding: integers without BigInt, strings with LEB128 lengths. */
import { test, expect } from "bun:test";
import { RowBinaryWriter } from "../../../src/store/clickhouse/row-binary.ts";
test("u64n/i64n", () => {
  for (const v of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 1795738376000]) {
    const w = new RowBinaryWriter(4); w.u64n(v); expect(w.bytes().readBigUInt64LE(0)).toBe(BigInt(v));
  }
  for (const v of [0, -1, -(2 ** 32), -(2 ** 53) + 1, 1795738376000, -1795738376000, 2 ** 32 + 5]) {
    const w = new RowBinaryWriter(4); w.i64n(v); expect(w.bytes().readBigInt64LE(0)).toBe(BigInt(v));
  }
});

test("strings: LEB128 length then UTF-8 bytes", () => {
  const long = "ü".repeat(100);
  const w = new RowBinaryWriter(2);
  w.string("");
  w.string("ab");
  w.string(long);
  const b = w.bytes();
  expect([...b.subarray(0, 4)]).toEqual([0, 2, 97, 98]);
  expect([...b.subarray(4, 6)]).toEqual([0xc8, 0x01]); // 200 bytes
  expect(b.subarray(6).toString()).toBe(long);
});
