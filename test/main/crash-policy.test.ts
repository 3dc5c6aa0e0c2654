/**
 * The server's crash policy (src/crash-policy.ts) against a real PostgreSQL: a connection that
 * PostgreSQL drops while postgres.js fetches the array types rejects a promise nobody holds.
 * Without the policy Bun counts it as a fatal error (in a CI run the server then never brought
 * its killed PostgreSQL back); with it the process logs one line and goes on. A bug of our own (an error that is no connection loss) still ends the process.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { join } from "node:path";
import { testDatabase, type TestDb } from "../support/db.ts";
import { isConnectionLoss } from "../../src/crash-policy.ts";

let db: TestDb;
let proxy: Server;
let drops = 0;

/**
 * Forwards to PostgreSQL; when the client sends the array-types query, resets the client's
 * connection (a TCP RST: read ECONNRESET, as from a PostgreSQL killed mid-query).
 */
function startResettingProxy(target: URL): Promise<Server> {
  const srv = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    upstream.on("data", (d) => client.write(d));
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    client.on("data", (d) => {
      if (!d.includes("typcategory")) return void upstream.write(d);
      drops++;
      client.resetAndDestroy();
    });
  });
  return new Promise((ok) => srv.listen(0, "127.0.0.1", () => ok(srv)));
}

beforeAll(async () => {
  db = await testDatabase(1);
  proxy = await startResettingProxy(new URL(db.url));
});

afterAll(async () => {
  proxy?.close();
  await db?.drop();
});

/** Runs the fixture (asynchronously: the proxy lives in this process's event loop). */
async function runFixture(policy: boolean, bug = false) {
  const u = new URL(db.url);
  u.hostname = "127.0.0.1";
  u.port = String((proxy.address() as AddressInfo).port);
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures", "types-fetch-drop.ts")], {
    env: { ...process.env, PG_URL: u.toString(), CRASH_POLICY: policy ? "1" : "0", BUG: bug ? "1" : "0" },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 30_000,
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

test("without the policy, a connection dropped during postgres.js' array-types fetch fails the process", async () => {
  const before = drops;
  const r = await runFixture(false);
  expect(drops).toBeGreaterThan(before);
  expect(r.err).toContain("ECONNRESET");
  expect(r.code).not.toBe(0); // Bun marks the process failed (and the server stopped restarting PostgreSQL)
}, 40_000);

test("with the policy, the same drop is logged as a lost connection and the process goes on", async () => {
  const before = drops;
  const r = await runFixture(true);
  expect(drops).toBeGreaterThan(before);
  expect(r.err).toContain("unhandled rejection of a lost connection (ignored)");
  expect(r.out).toContain("alive");
  expect(r.code).toBe(0);
}, 40_000);

test("with the policy, an error of our own (no connection loss) still ends the process", async () => {
  const r = await runFixture(true, true);
  expect(r.err).toContain("uncaught error: TypeError");
  expect(r.out).not.toContain("alive");
  expect(r.code).toBe(1);
}, 40_000);

test("what counts as a lost connection, and what is a bug", () => {
  const coded = (code: string) => Object.assign(new Error(code), { code });
  for (const c of ["ECONNRESET", "EPIPE", "ECONNREFUSED", "CONNECTION_CLOSED", "CONNECT_TIMEOUT", "57P01", "57P03", "08006"]) expect(isConnectionLoss(coded(c))).toBe(true);
  for (const c of ["42P01", "23505", "ENOENT", "EACCES"]) expect(isConnectionLoss(coded(c))).toBe(false);
  expect(isConnectionLoss(new TypeError("undefined is not an object"))).toBe(false);
  expect(isConnectionLoss("a string")).toBe(false);
});
