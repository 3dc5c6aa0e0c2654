/**
 * The log of failed store writes on a clock of its own (src/ingest/write-failures.ts): per
 * outage the first failure of each kind at once, then one summary per interval, then one line
 * when writes commit again; a store that fails every other batch stays within the same bound.
 */
import { expect, test } from "bun:test";
import { failureKind, WriteFailureLog } from "../../src/ingest/write-failures.ts";

/** postgres.js's error for a refusal: name PostgresError, code the SQLSTATE. */
function pgError(code: string, message: string): Error {
  return Object.assign(new Error(message), { name: "PostgresError", code });
}
const diskFull = () => pgError("53100", 'could not extend file "base/5/17843_fsm": No space left on device');

function clocked(intervalMs = 10_000) {
  let now = Date.parse("2026-12-08T10:00:00Z");
  const lines: string[] = [];
  const log = new WriteFailureLog({ intervalMs, log: (l) => void lines.push(l), now: () => now });
  return { log, lines, advance: (ms: number) => void (now += ms) };
}

test("the kind of a failure: SQLSTATE for PostgreSQL's refusals, the code of a connection error, else the error's name", () => {
  expect(failureKind(diskFull())).toBe("SQLSTATE 53100");
  expect(failureKind(Object.assign(new Error("write CONNECT_TIMEOUT 127.0.0.1:5432"), { code: "CONNECT_TIMEOUT" }))).toBe("CONNECT_TIMEOUT");
  expect(failureKind(new TypeError("x"))).toBe("TypeError");
  expect(failureKind("a string")).toBe("error");
});

test("a disk-full minute at 50 batches a second: the first failure, one summary per 10 s, one line when writes commit again", () => {
  const { log, lines, advance } = clocked();
  for (let i = 0; i < 60 * 50; i++) {
    for (let attempt = 1; attempt <= 3; attempt++) log.failed(diskFull(), attempt === 3);
    advance(20);
  }
  expect(log.failing).toBe(true);
  expect(lines[0]).toBe('store write failed (SQLSTATE 53100): could not extend file "base/5/17843_fsm": No space left on device; until a write commits, further failures are summarised at most once per 10 s');
  const summaries = lines.slice(1);
  expect(summaries.length).toBe(5); // at 10, 20 ... 50 s; the one due at 60 s comes with the next failure
  expect(summaries[0]).toBe("store writes still failing since 2026-12-08T10:00:00.000Z (10 s): 500 batches failed (1501 attempts: SQLSTATE 53100 ×1501)");
  expect(summaries.every((l) => l.startsWith("store writes still failing since 2026-12-08T10:00:00.000Z"))).toBe(true);

  log.succeeded(); // at 60 s, past the interval since the last summary: said at once
  expect(lines.length).toBe(7);
  expect(lines[6]).toBe("store writes succeed again after 3000 failed batches over 60 s (9000 failed attempts: SQLSTATE 53100 ×9000)");
  expect(log.failing).toBe(false);
  log.succeeded();
  expect(lines.length).toBe(7);

  // the next outage starts over: its first failure is logged at once
  log.failed(diskFull(), false);
  expect(lines.length).toBe(8);
  expect(lines[7]).toStartWith("store write failed (SQLSTATE 53100)");
});

test("a new kind of failure during an outage is logged at once, once; summaries count each kind", () => {
  const { log, lines, advance } = clocked();
  log.failed(diskFull(), false);
  log.failed(pgError("42501", "permission denied for table logs"), false);
  log.failed(pgError("42501", "permission denied for table logs"), true);
  expect(lines.length).toBe(2);
  expect(lines[1]).toBe("store write failed (SQLSTATE 42501): permission denied for table logs");
  advance(10_000);
  log.failed(diskFull(), true);
  expect(lines[2]).toBe("store writes still failing since 2026-12-08T10:00:00.000Z (10 s): 2 batches failed (4 attempts: SQLSTATE 53100 ×2, SQLSTATE 42501 ×2)");
});

test("a store that fails every other batch: one line per interval at most, the recovery line waits for it", () => {
  const { log, lines, advance } = clocked(1000);
  for (let i = 0; i < 1000; i++) {
    log.failed(diskFull(), true);
    advance(5);
    log.succeeded();
    advance(5);
  }
  // 10 s: the first failure, then a line per second at most (summaries and "succeed again")
  expect(lines.length).toBeGreaterThanOrEqual(2);
  expect(lines.length).toBeLessThanOrEqual(1 + 10 + 1);
  // at the end the outage holds a commit whose line waits for the limiter; a later write says it
  advance(1000);
  log.succeeded();
  expect(lines.at(-1)).toMatch(/^store writes succeed again after \d+ failed batches over [\d.]+ s \(\d+ failed attempts: SQLSTATE 53100 ×\d+\)$/);
  expect(log.failing).toBe(false);
  // every failed batch is in a line: the succeed-again lines add up to the 1000
  const total = lines.map((l) => /succeed again after (\d+) failed batches/.exec(l)?.[1]).filter(Boolean).reduce((n, x) => n + Number(x), 0);
  expect(total).toBe(1000);
});

test("a single failed attempt that the retry overcomes: the failure and, an interval later, the commit", () => {
  const { log, lines, advance } = clocked();
  log.failed(Object.assign(new Error("write CONNECTION_ENDED 127.0.0.1:5432"), { code: "CONNECTION_ENDED" }), false);
  advance(100);
  log.succeeded(); // inside the interval: held
  expect(lines.length).toBe(1);
  expect(log.failing).toBe(true);
  advance(10_000);
  log.succeeded();
  expect(lines[1]).toBe("store writes succeed again after 0 failed batches over 0.1 s (1 failed attempts: CONNECTION_ENDED ×1)");
});
