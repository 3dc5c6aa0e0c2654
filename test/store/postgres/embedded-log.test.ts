/**
 * PostgreSQL's log must never be able to stall the database. The embedded server used to read
 * the postmaster's stderr through a pipe: whenever the process that owns the pipe was busy (a
 * long synchronous step, a paused event loop), the pipe filled after 64 kB and every backend
 * that logged a line (each ERROR, each checkpoint) blocked inside write() holding its locks.
 * In CI that showed as a DROP DATABASE waiting for a checkpoint that never came, and every later
 * file's hooks timing out. Now PostgreSQL writes into pg.log itself.
 *
 * Here this process (which started the shared test PostgreSQL) blocks its event loop for 5 s
 * while another process makes PostgreSQL log some 200 kB of errors: all of them must be answered
 * while we are blocked.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { testDatabase, type TestDb } from "../../support/db.ts";

let db: TestDb;
const dir = mkdtempSync(join(tmpdir(), "sm-pglog-"));
beforeAll(async () => {
  db = await testDatabase(1);
}, 60_000);
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

test("a busy owner process does not stall PostgreSQL: 1,000 logged errors (200 kB of log) are answered while it is blocked", async () => {
  const script = join(dir, "errors.ts");
  writeFileSync(
    script,
    `import { createPgClient } from ${JSON.stringify(resolve("src/store/postgres/client.ts"))};
const sql = createPgClient(process.env.URL!, 1);
await sql\`select 1\`;
console.log("ready");
// wait for the parent to block, then make PostgreSQL log ~200 bytes per statement
await Bun.sleep(300);
let errors = 0;
for (let i = 0; i < 1000; i++) {
  try { await sql.unsafe("select 1/0 as padding_" + "x".repeat(40) + i); } catch { errors++; }
}
console.log(JSON.stringify({ errors, done: Date.now() }));
await sql.end();
`,
  );
  const child = spawn(process.execPath, [script], { env: { ...process.env, URL: db.url }, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  const t0 = Date.now();
  while (!out.includes("ready") && Date.now() - t0 < 20_000) await Bun.sleep(20);
  expect(out).toContain("ready");

  const blockedAt = Date.now();
  Bun.sleepSync(5000); // this process reads nothing now: with a stderr pipe, PostgreSQL would stall here
  const unblockedAt = Date.now();

  expect(await exited).toBe(0);
  const result = JSON.parse(out.trim().split("\n").at(-1)!) as { errors: number; done: number };
  expect(result.errors).toBe(1000);
  expect(result.done).toBeGreaterThan(blockedAt);
  expect(result.done).toBeLessThan(unblockedAt);
}, 60_000);
