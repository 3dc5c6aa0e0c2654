/** Binary COPY rows written by CopyWriter read back exactly from a real PostgreSQL. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { CopyWriter } from "../../../src/store/postgres/copy-binary.ts";
import { testDatabase, type TestDb } from "../../support/db.ts";

let db: TestDb;
beforeAll(async () => {
  db = await testDatabase(2);
});
afterAll(async () => {
  await db?.drop();
});

test("every field type round-trips, including extremes, NaN, unicode and nulls", async () => {
  await db.sql`create table c (a int8, b int2, t timestamptz, s text, j jsonb, i int4[], f float8[], n text)`;
  const w = new CopyWriter(16).begin(); // tiny initial size: exercises growth
  const rows = [
    { a: 2 ** 53 - 1, b: -32768, t: Date.UTC(1999, 0, 1, 0, 0, 0, 1), s: "plain", f: [1.5, -0, Infinity] },
    { a: -(2 ** 40), b: 32767, t: Date.UTC(2026, 10, 28, 12, 0, 0, 999), s: "ünïcödé ✓ 𝄞", f: [NaN, Number.MIN_VALUE, -Number.MAX_VALUE] },
  ];
  for (const r of rows) {
    w.row(8);
    w.int8(r.a);
    w.int2(r.b);
    w.timestamptz(r.t);
    w.text(r.s);
    w.bytes(Buffer.concat([Uint8Array.of(1), Buffer.from(JSON.stringify({ k: r.s }))]));
    w.int4Array(Int32Array.of(0, -1, 2 ** 31 - 1, 7), 1, 2);
    w.float8Array(Float64Array.from(r.f));
    w.null();
  }
  const bytes = w.end();
  await db.sql.begin(async (tx) => {
    const s = await tx`copy c from stdin (format binary)`.writable();
    await new Promise<void>((ok, fail) => {
      s.once("finish", ok);
      s.once("error", fail);
      s.end(Buffer.from(bytes));
    });
  });
  const out = await db.sql`select a::text, b, extract(epoch from t) * 1000 as ms, s, j, i, f::text[] as f, n from c order by b`;
  expect(out.map((r) => r.a)).toEqual([String(2 ** 53 - 1), String(-(2 ** 40))]);
  expect(out.map((r) => Number(r.ms))).toEqual([rows[0]!.t, rows[1]!.t]);
  expect(out[1]!.s).toBe("ünïcödé ✓ 𝄞");
  expect(out[1]!.j).toEqual({ k: "ünïcödé ✓ 𝄞" });
  expect(out[0]!.i).toEqual([-1, 2 ** 31 - 1]);
  expect(out[0]!.f).toEqual(["1.5", "-0", "Infinity"]);
  expect(out[1]!.f).toEqual(["NaN", "5e-324", "-1.7976931348623157e+308"]);
  expect(out[0]!.n).toBeNull();
});
