/** The supervisor's pieces that need no PostgreSQL: its restart backoff and its bounded log. */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { restartDelayMs, sizeBoundedLog } from "../../../src/store/postgres/embedded.ts";

const dir = mkdtempSync(join(tmpdir(), "servermind-pglog-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("restarts back off 1, 2, 4 ... and never wait more than 30 s", () => {
  expect([0, 1, 2, 3, 4, 5, 6, 20].map(restartDelayMs)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("the PostgreSQL log keeps the current file and one older under the size bound", () => {
  const file = join(dir, "pg.log");
  const write = sizeBoundedLog(file, 1000);
  for (let i = 0; i < 100; i++) write(`line ${i} ${"x".repeat(40)}`);
  expect(statSync(file).size).toBeLessThanOrEqual(1000);
  expect(statSync(`${file}.1`).size).toBeLessThanOrEqual(1000);
  expect(readFileSync(file, "utf8").trimEnd().split("\n").at(-1)).toStartWith("line 99 ");
  expect(existsSync(`${file}.2`)).toBe(false);
  // a second writer (the next server start) continues the same file within the same bound
  const again = sizeBoundedLog(file, 1000);
  for (let i = 0; i < 30; i++) again(`next ${i} ${"y".repeat(40)}`);
  expect(statSync(file).size).toBeLessThanOrEqual(1000);
});
