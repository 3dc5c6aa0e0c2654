/** Client-side binding for ClickHouse 18.16 (no server-side parameters), URL parsing, the tier's config slice. */
import { expect, test } from "bun:test";
import { bind, parseClickhouseUrl, quoteString } from "../../../src/store/clickhouse/client.ts";
import { loadClickhouseConfig } from "../../../src/store/clickhouse/tier.ts";

test("bind checks every value against its placeholder type", () => {
  expect(bind("select {a:UInt64}, {s:String}, {f:Float64}, {ids:Tuple(UInt32)}, {arr:Array(String)}", { a: 5, s: "it's \\ a\nb", f: 1.5, ids: [1, 2], arr: ["x"] }))
    .toBe("select 5, 'it\\'s \\\\ a\\nb', toFloat64(1.5), (1,2), ['x']");
  expect(() => bind("select {a:UInt64}", { a: "1; drop table x" })).toThrow(/not a UInt64/);
  expect(() => bind("select {a:UInt64}", { a: 1.5 })).toThrow(/not a UInt64/);
  expect(() => bind("select {a:Float64}", { a: NaN })).toThrow(/not a Float64/);
  expect(() => bind("select {a:String}", { a: 1 })).toThrow(/not a String/);
  expect(() => bind("select {a:String}", {})).toThrow(/missing/);
  expect(() => bind("select 1 where x in {ids:Tuple(UInt32)}", { ids: [] })).toThrow(/non-empty/);
  expect(quoteString("\0\t\r")).toBe("'\\0\\t\\r'");
});

test("CLICKHOUSE_URL: the path names the database", () => {
  expect(parseClickhouseUrl("http://u:p%40ss@ch:8123/metrics_db")).toEqual({ url: "http://ch:8123", username: "u", password: "p@ss", database: "metrics_db" });
  expect(parseClickhouseUrl("https://ch:8443").database).toBe("servermind");
  expect(() => parseClickhouseUrl("ch:8123")).toThrow(/http/);
  expect(() => parseClickhouseUrl("http://ch/bad-name")).toThrow(/identifier/);
  expect(loadClickhouseConfig({}).url).toBe("");
  expect(() => loadClickhouseConfig({ CLICKHOUSE_URL: "nonsense" })).toThrow(/CLICKHOUSE_URL/);
  expect(() => loadClickhouseConfig({ SERVERMIND_CLICKHOUSE_SHIP_BATCHES: "0" })).toThrow(/SERVERMIND_CLICKHOUSE_SHIP_BATCHES/);
});
