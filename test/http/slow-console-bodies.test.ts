/**
 * The body pace holds for the console too: a client that declares a form or a JSON body and
 * trickles it (slowloris on the sign-in form or first-run setup: forms anyone may post) gets 408 and its
 * connection closed once SERVERMIND_BODY_GRACE_MS + bytes / SERVERMIND_BODY_MIN_RATE is up,
 * as an agent's request would; before, the console waited for such a body as long as bytes kept
 * coming (a byte every 2 s held a sign-in POST for as long as the client liked). Honest forms,
 * and bodies that arrive in pieces at the pace, are unaffected. Real server, TLS, PostgreSQL.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { consolePlugin, startConsole } from "../../src/web/plugin.ts";
import { createUser } from "../../src/auth/users.ts";
import { roleIdByName } from "../../src/auth/roles.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { slowPost } from "../support/raw-clients.ts";

const GRACE_MS = 1500;
const MIN_RATE = 1024;
/** Scheduling slack on a shared 2-core machine. */
const SLACK_MS = 2500;
const PASSWORD = "Correct horse battery staple 1";

let db: TestDb;
let dataDir: string;
let server: RunningServer;
let stopConsole: () => void;

beforeAll(async () => {
  db = await testDatabase(6);
  dataDir = mkdtempSync(join(tmpdir(), "servermind-slow-console-"));
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({
    SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir,
    SERVERMIND_BODY_GRACE_MS: String(GRACE_MS), SERVERMIND_BODY_MIN_RATE: String(MIN_RATE),
  });
  const deps = { sql: db.sql, config, dataDir, serverFingerprint: cert.fingerprint };
  stopConsole = (await startConsole(deps, () => {})).stop;
  server = startServer({ config, sql: db.sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" }, plugins: [consolePlugin(deps)] });
  await createUser(db.sql, { username: "slow-admin", password: PASSWORD, roleIds: [(await roleIdByName(db.sql, "admin"))!] }, DEFAULT_SETTINGS.password);
}, 60_000);

afterAll(async () => {
  stopConsole?.();
  await server?.stop();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
}, 30_000);

const csrf = "c".repeat(32);
const loginForm = (password: string) => new URLSearchParams({ _csrf: csrf, username: "slow-admin", password }).toString();

/** A sign-in POST over HTTP/1.1 whose body is sent in `pieces`, `gapMs` apart; the status answered. */
function pacedLogin(body: string, pieces: number, gapMs: number): Promise<number> {
  return new Promise((resolve) => {
    let out = "";
    const s = tls.connect({ host: "127.0.0.1", port: server.port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, async () => {
      s.write(`POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sm_csrf=${csrf}\r\nAccept: text/html\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n`);
      const size = Math.ceil(body.length / pieces);
      for (let i = 0; i < body.length; i += size) {
        await Bun.sleep(gapMs);
        s.write(body.slice(i, i + size));
      }
    });
    const limit = setTimeout(() => s.destroy(), 20_000);
    s.on("data", (d) => {
      out += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(out);
      if (m) {
        clearTimeout(limit);
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on("error", () => {});
    s.on("close", () => resolve(0));
  });
}

test("slowloris bodies on the sign-in form and first-run setup get 408 and a closed connection at the pace deadline; a sign-in meanwhile is answered at once", async () => {
  const slow = (path: string, contentType: string) =>
    slowPost({ port: server.port, path, contentType, contentLength: 100_000, everyMs: 300, maxMs: 20_000 });
  const attackers = [
    ...Array.from({ length: 8 }, () => slow("/login", "application/x-www-form-urlencoded")),
    slow("/setup", "application/x-www-form-urlencoded"),
    slow("/setup", "multipart/form-data; boundary=x"),
  ];
  await Bun.sleep(300); // all connected and trickling

  const t = performance.now();
  const honest = await fetch(`${server.url}/login`, {
    method: "POST", redirect: "manual", tls: { rejectUnauthorized: false },
    headers: { cookie: `sm_csrf=${csrf}`, "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
    body: loginForm(PASSWORD),
  } as RequestInit);
  expect(honest.status).toBe(303);
  expect(performance.now() - t).toBeLessThan(GRACE_MS + SLACK_MS);

  const results = await Promise.all(attackers.map((a) => a.done));
  for (const r of results) {
    // a byte every 300 ms never keeps up with 1 kB/s: cut after the grace, not when the client gives up
    expect({ status: r.status, gaveUp: r.gaveUp }).toEqual({ status: 408, gaveUp: false });
    expect(r.closedMs).toBeLessThan(GRACE_MS + SLACK_MS);
  }
}, 30_000);

test("a sign-in form sent in pieces within the pace is read whole and answered as usual", async () => {
  // 3 pieces 400 ms apart: 1.2 s in all, within the 1.5 s grace
  expect(await pacedLogin(loginForm(PASSWORD), 3, 400)).toBe(303);
  expect(await pacedLogin(loginForm("not the password at all"), 3, 400)).toBe(401);
}, 30_000);

test("a GET with a body, and a POST with an empty one, are answered as before (not 500)", async () => {
  const opts = { tls: { rejectUnauthorized: false }, redirect: "manual" } as RequestInit;
  const get = Bun.spawn(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "GET", "--data", "abc", `${server.url}/login`], { stdout: "pipe" });
  expect(await new Response(get.stdout).text()).toBe("200");
  const empty = await fetch(`${server.url}/login`, { ...opts, method: "POST", headers: { cookie: `sm_csrf=${csrf}`, "content-type": "application/x-www-form-urlencoded" }, body: "" });
  expect(empty.status).toBeLessThan(500);
});
