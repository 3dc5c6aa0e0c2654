/**
 * A COPY whose data PostgreSQL refuses after the stream has ended (a U+0000 in text, found
 * only once the rows are parsed) must fail its transaction at once and roll it back. With
 * postgres.js 3.4 alone, the COPY's stream never finished and the writer waited for ever,
 * "idle in transaction (aborted)" (issue #13).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
setDefaultTimeout(60_000);
import { testDatabase, type TestDb } from "../../support/db.ts";
import { CopyWriter } from "../../../src/store/postgres/copy-binary.ts";
import { copyInto, isDataRefusal } from "../../../src/store/postgres/writer.ts";

let db: TestDb;
beforeAll(async () => {
  db = await testDatabase(2);
});
afterAll(async () => {
  await db?.drop();
});

const logsCopy = (message: string) => {
  const w = new CopyWriter(1024).begin();
  w.row(6);
  w.int8(1);
  w.int8(1);
  w.timestamptz(Date.UTC(2026, 0, 1));
  w.int2(3);
  w.text("src");
  w.text(message); // written as is, past pg-text.ts: what the writer used to send
  return w.end();
};

const within = <T,>(p: Promise<T>, ms: number) => Promise.race([p, Bun.sleep(ms).then(() => "timed out" as const)]);

test("a refused COPY rejects with PostgreSQL's error and leaves no transaction behind", async () => {
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const outcome = await within(
      db.sql.begin((tx) => copyInto(tx, "logs (agent_id, batch_id, ts, severity, source, message)", logsCopy("x\u0000y"))).then(() => "committed", (e) => e),
      5000,
    );
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as { code?: string }).code).toBe("22021");
    expect(isDataRefusal(outcome)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(5000);
  }
  const stuck = await db.sql<{ state: string }[]>`select state from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`;
  expect(stuck.map((r) => r.state)).toEqual([]);
  // both connections of the pool still write
  await Promise.all([0, 1].map(() => db.sql.begin((tx) => copyInto(tx, "logs (agent_id, batch_id, ts, severity, source, message)", logsCopy("fine")))));
  const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from logs`;
  expect(n!.n).toBe(2);
});

test("transient errors are not taken for refusals", () => {
  expect(isDataRefusal(Object.assign(new Error("terminating connection"), { code: "57P01" }))).toBe(false);
  expect(isDataRefusal(Object.assign(new Error("could not serialize"), { code: "40001" }))).toBe(false);
  expect(isDataRefusal(Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" }))).toBe(false);
  expect(isDataRefusal(new Error("no code"))).toBe(false);
  expect(isDataRefusal(Object.assign(new Error("out of range"), { code: "22008" }))).toBe(true);
  expect(isDataRefusal(Object.assign(new Error("stack depth"), { code: "54001" }))).toBe(true);
});
