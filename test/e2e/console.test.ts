/**
 * The console in a real browser: Debian's chromium driven by playwright-core against the real
 * server (TLS, HTTP/2) and a real PostgreSQL. Screenshots go to test-artifacts/.
 */
import { test, expect, beforeAll, afterAll } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { requireComponent } from "../support/ci.ts";
import { launchChromium } from "../support/browser.ts";
import { startConsoleServer, type ConsoleServer } from "../support/console-server.ts";
import { totp } from "../../src/auth/totp.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = "test-artifacts";
const PASSWORD = "Blue-Granite-Harbor-7";
const haveChromium = requireComponent(existsSync(CHROMIUM), "Debian chromium (/usr/bin/chromium, apt-get install chromium)");

let srv: ConsoleServer;
let browser: Browser;
const cspViolations: string[] = [];
const pageErrors: string[] = [];

async function context(userAgent: string): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, userAgent, acceptDownloads: true, viewport: { width: 1360, height: 900 } });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  return { ctx, page };
}

/** Polls until `check` holds (5 s), as the page updates through htmx. */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

async function hasText(l: Locator, want: string | RegExp) {
  let seen = "";
  await until(async () => {
    seen = (await l.first().innerText({ timeout: 200 })).trim();
    return typeof want === "string" ? seen.includes(want) : want.test(seen);
  }, `text ${want}`).catch((e) => {
    throw new Error(`${e.message}; saw ${JSON.stringify(seen.slice(0, 300))}`);
  });
}

async function hasCount(l: Locator, n: number) {
  let seen = -1;
  await until(async () => (seen = await l.count()) === n, `count ${n}`).catch((e) => {
    throw new Error(`${e.message}; saw ${seen}`);
  });
}

async function shot(page: Page, name: string) {
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

async function login(page: Page, username: string, password: string) {
  await page.goto(`${srv.url}/login`);
  await page.fill("#login-form input[name=username]", username);
  await page.fill("#login-form input[name=password]", password);
  await page.click("#login-form button[type=submit]");
}

async function seedFleet() {
  const { sql } = srv.db;
  const ids: number[] = [];
  for (let i = 0; i < 12; i++) {
    const [{ id }] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
      values (${`${["web", "db", "cache"][i % 3]}-${String(i).padStart(2, "0")}`}, ${Buffer.alloc(32, i + 1)}, ${[i % 3 === 0 ? "group:web" : "env=prod"]},
        '0.9.1', ${i % 2 ? "h2" : "wss"}, 'linux', 'x64', ${i === 5 ? new Date(Date.now() - 3600_000) : new Date()}) returning id`;
    ids.push(Number(id));
    await sql`insert into metric_latest (agent_id, ts, names, vals) values (${id}, now(),
      ${["cpu.usage_pct", "mem.used_pct", 'disk.used_pct{mount="/"}']}, ${[(i * 17) % 100, 30 + i * 5, 50 + i * 3]})`;
  }
  const host = ids[0]!;
  const names = ["cpu.usage_pct", "mem.used_pct", "load.1", "load.5", "net.rx_bytes_per_s", "net.tx_bytes_per_s"];
  const sids: number[] = [];
  for (const n of names) sids.push(Number((await sql`insert into metric_series (agent_id, name) values (${host}, ${n}) returning id`)[0]!.id));
  const now = Date.now();
  for (let f = 0; f < 360; f++) {
    const t0 = now - 3600_000 + f * 10_000;
    const vals: number[] = [];
    for (let s = 0; s < names.length; s++) {
      for (let t = 0; t < 10; t++) {
        const x = (f * 10 + t) / 200;
        vals.push([40 + 30 * Math.sin(x), 55 + 10 * Math.cos(x / 3), 1.5 + Math.sin(x), 1.2 + Math.sin(x / 2) / 2, 2e6 + 1e6 * Math.sin(x * 2), 5e5 + 2e5 * Math.cos(x)][s]!);
      }
    }
    await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (${host}, ${f}, ${new Date(t0)}, ${new Date(t0 + 9000)},
      ${Array.from({ length: 10 }, (_, i) => i * 1000)}, ${sids}, ${vals})`;
  }
  await sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values
    (${host}, 1, now() - interval '3 minutes', 3, 'sshd', 'Failed password for invalid user admin from 198.51.100.23 port 52144 ssh2'),
    (${host}, 1, now() - interval '2 minutes', 6, 'systemd', 'Started nginx.service - A high performance web server.'),
    (${host}, 1, now() - interval '1 minute', 4, 'kernel', 'TCP: request_sock_TCP: Possible SYN flooding on port 443.')`;
  await sql`insert into inventory_current (agent_id, collected_at, hash, data) values (${host}, now(), ${Buffer.alloc(32)}, ${sql.json({
    os: { name: "Debian GNU/Linux", version: "13 (trixie)", kernel: "6.12.38-1" },
    packages: [{ name: "nginx", version: "1.26.3-3" }, { name: "openssl", version: "3.5.1-1" }, { name: "openssh-server", version: "1:10.0p1-7" }],
    ports: [{ proto: "tcp", port: 443, process: "nginx" }, { proto: "tcp", port: 22, process: "sshd" }],
  })})`;
  await sql`update agents set status = ${sql.json({ processes: [{ name: "collect", pid: 812, state: "running", restarts: 0 }, { name: "ship", pid: 813, state: "running", restarts: 1 }] })} where id = ${host}`;
  return host;
}

beforeAll(async () => {
  if (!haveChromium) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  srv = await startConsoleServer();
  browser = await launchChromium(CHROMIUM);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

test.skipIf(!haveChromium)("the console in chromium: setup with TOTP, roles, sign-in throttle, sessions, dangerous settings, forced and regular TOTP, audit, CSV", async () => {
  const host = await seedFleet();
  const A = await context("ServerMind-E2E-Admin/1.0");

  // --- first-run setup with the printed one-time code
  await A.page.goto(`${srv.url}/`);
  await A.page.waitForURL(/\/setup$/);
  await shot(A.page, "01-setup");
  await A.page.fill("#setup-form input[name=code]", "0000-1111-2222-3333-4444");
  await A.page.fill("#setup-form input[name=username]", "admin");
  await A.page.fill("#setup-form input[name=password]", PASSWORD);
  await A.page.fill("#setup-form input[name=password2]", PASSWORD);
  await A.page.click("#setup-form button[type=submit]");
  await hasText(A.page.locator("#setup-form .alert.error"), "setup code is not correct");
  await A.page.fill("#setup-form input[name=code]", srv.setupCode);
  await A.page.click("#setup-form button[type=submit]");
  // --- the first administrator enrolls TOTP before the console opens
  await A.page.waitForURL(/\/account\/mfa$/);
  await hasText(A.page.locator(".alert.warn"), "requires an authenticator app");
  await shot(A.page, "02-setup-mfa");
  const adminSecret = (await A.page.locator("#totp-secret").innerText()).replace(/\s/g, "");
  await A.page.fill("#mfa-form input[name=code]", totp(adminSecret));
  await A.page.click("#mfa-form button[type=submit]");
  await hasCount(A.page.locator("#backup-codes li"), 10);
  await A.page.click("text=I have saved them");

  // --- fleet overview, host detail
  await A.page.waitForURL(/\/hosts$/);
  await hasCount(A.page.locator("#fleet-table tbody tr"), 12);
  await A.page.click('#fleet-table th a:has-text("CPU")');
  await A.page.waitForURL(/sort=cpu/);
  await A.page.fill("#fleet-search", "db-");
  await hasCount(A.page.locator("#fleet-table tbody tr"), 4);
  await A.page.fill("#fleet-search", "");
  await hasCount(A.page.locator("#fleet-table tbody tr"), 12);
  await shot(A.page, "03-fleet");
  // live update: the table polls for itself
  await srv.db.sql`update metric_latest set vals[1] = 99.5 where agent_id = ${host}`;
  await until(async () => (await A.page.locator("#fleet-table").innerText()).includes("99.5%"), "the polled table to show the new CPU value", 15_000);
  await A.page.goto(`${srv.url}/hosts/${host}`);
  await hasCount(A.page.locator("#charts figure.uchart canvas"), 5); // CPU, memory, load, network rx and tx (assets/charts.js)
  await hasText(A.page.locator("#logs-table"), "Failed password for invalid user");
  await A.page.fill('#host-logs input[name=q]', "SYN");
  await hasCount(A.page.locator("#logs-table tbody tr"), 1);
  await A.page.click('.tabs a:has-text("6h")');
  await until(async () => (await A.page.locator("#charts").getAttribute("data-range")) === "6h", `attribute "data-range"`);
  await shot(A.page, "04-host");

  // --- enrollment: a token shown once with the one-liner
  await A.page.goto(`${srv.url}/enrollment`);
  await A.page.fill("#token-form input[name=label]", "rack 4");
  await A.page.click("#token-form button[type=submit]");
  await hasText(A.page.locator("#new-token"), /^smt_[A-Za-z0-9_-]{43}$/);
  await hasText(A.page.locator("#token-result pre"), `--fingerprint ${srv.server.fingerprint}`);
  await hasCount(A.page.locator("#tokens tbody tr"), 1);
  await hasText(A.page.locator("#tokens tbody tr"), "rack 4");
  await shot(A.page, "05-enrollment");
  await A.page.click('#tokens button:has-text("Revoke")');
  await hasText(A.page.locator("#tokens tbody tr .badge"), "revoked");

  // --- a custom role with hosts.view only, and a user holding it
  await A.page.goto(`${srv.url}/roles`);
  await A.page.fill("#new-role input[name=name]", "hosts-only");
  await A.page.fill("#new-role input[name=description]", "Sees the fleet, nothing else");
  await A.page.check('#new-role input[value="hosts.view"]');
  await A.page.click("#new-role button[type=submit]");
  await A.page.waitForURL(/\/roles\/\d+$/);
  await shot(A.page, "06-role");
  await A.page.goto(`${srv.url}/users`);
  await A.page.fill("#new-user input[name=username]", "carl");
  await A.page.fill("#new-user input[name=password]", PASSWORD);
  await A.page.fill("#new-user input[name=password2]", PASSWORD);
  await A.page.check('#new-user label.check:has-text("hosts-only") input');
  await A.page.click("#new-user button[type=submit]");
  await A.page.waitForURL(/\/users\/\d+$/);

  const C = await context("ServerMind-E2E-Carl/1.0");
  await login(C.page, "carl", PASSWORD);
  await C.page.waitForURL(/\/hosts$/);
  expect(await C.page.locator(".mainnav a").allInnerTexts()).toEqual(["Fleet", "Sessions"]);
  for (const path of ["/users", "/audit", "/settings", `/hosts/${host}/logs`]) {
    const r = await C.page.goto(`${srv.url}${path}`);
    expect(r!.status()).toBe(403);
  }
  await hasText(C.page.locator("main"), "permission logs.view");
  await shot(C.page, "07-refused");

  // --- throttle after 5 failed sign-ins from one address (default policy), even with the right password then
  const L = await context("ServerMind-E2E-Locker/1.0");
  for (let i = 0; i < 5; i++) {
    await login(L.page, "carl", "not-the-password");
    await hasText(L.page.locator("#login-form .alert.error"), "Wrong username or password.");
  }
  await login(L.page, "carl", PASSWORD);
  await hasText(L.page.locator("#login-form .alert.error"), "Too many sign-in attempts");
  await shot(L.page, "08-throttled");

  // --- revoking a session in one browser logs the other out
  const B = await context("ServerMind-E2E-Admin-Second/2.0");
  await login(B.page, "admin", PASSWORD);
  await B.page.waitForURL(/\/login\/totp$/); // administrators always have a second factor
  await B.page.fill("#totp-form input[name=code]", totp(adminSecret, Date.now() + 30_000)); // the enrollment used this step's code
  await B.page.click("#totp-form button[type=submit]");
  await B.page.waitForURL(/\/hosts$/);
  await A.page.goto(`${srv.url}/sessions`);
  const row = A.page.locator("#sessions tbody tr", { hasText: "ServerMind-E2E-Admin-Second/2.0" });
  await row.locator("button:has-text('Revoke')").click();
  await hasCount(A.page.locator("#sessions tbody tr", { hasText: "ServerMind-E2E-Admin-Second/2.0" }), 0);
  await shot(A.page, "09-sessions");
  await B.page.click('.mainnav a:has-text("Users")');
  await B.page.waitForURL(/\/login/);
  await B.page.locator("#login-form").first().waitFor({ state: "visible" });

  // --- a dangerous operation: security settings demand the typed phrase (MFA for everyone)
  await A.page.goto(`${srv.url}/settings`);
  await A.page.selectOption("#security-settings select[name=mfa_enforce]", "all");
  await A.page.fill("#security-settings input[name=confirm]", "yes");
  await A.page.click("#security-settings button[type=submit]");
  await hasText(A.page.locator("#security-settings .alert.error"), "Type apply security settings exactly to confirm");
  await shot(A.page, "10-dangerous-confirm");
  await A.page.fill("#security-settings input[name=confirm]", "apply security settings");
  await A.page.click("#security-settings button[type=submit]");
  await A.page.waitForURL(/saved=security/);
  await until(async () => (await A.page.locator("#security-settings select[name=mfa_enforce]").inputValue()) === "all", "value");

  // --- forced TOTP enrollment for a new user
  await A.page.goto(`${srv.url}/users`);
  await A.page.fill("#new-user input[name=username]", "bob");
  await A.page.fill("#new-user input[name=password]", PASSWORD);
  await A.page.fill("#new-user input[name=password2]", PASSWORD);
  await A.page.check('#new-user label.check:has-text("viewer") input');
  await A.page.click("#new-user button[type=submit]");
  await A.page.waitForURL(/\/users\/\d+$/);
  await shot(A.page, "11-user");

  const E = await context("ServerMind-E2E-Bob/3.0");
  await login(E.page, "bob", PASSWORD);
  await E.page.waitForURL(/\/account\/mfa$/);
  await hasText(E.page.locator(".alert.warn"), "requires an authenticator app");
  await E.page.goto(`${srv.url}/hosts`); // pages stay closed until enrolled
  await E.page.waitForURL(/\/account\/mfa$/);
  await E.page.locator(".qr svg").first().waitFor({ state: "visible" });
  await shot(E.page, "12-mfa-enroll");
  const secret = (await E.page.locator("#totp-secret").innerText()).replace(/\s/g, "");
  await E.page.fill("#mfa-form input[name=code]", totp(secret));
  await E.page.click("#mfa-form button[type=submit]");
  await hasCount(E.page.locator("#backup-codes li"), 10);
  await shot(E.page, "13-backup-codes");
  await E.page.click("text=I have saved them");
  await E.page.waitForURL(/\/hosts$/);

  // --- a later sign-in asks for the TOTP code (the next step's code: this step's was used)
  const F = await context("ServerMind-E2E-Bob-Again/4.0");
  await login(F.page, "bob", PASSWORD);
  await F.page.waitForURL(/\/login\/totp$/);
  await F.page.fill("#totp-form input[name=code]", "123456");
  await F.page.click("#totp-form button[type=submit]");
  await hasText(F.page.locator("#totp-form .alert.error"), "That code is not valid");
  await F.page.fill("#totp-form input[name=code]", totp(secret, Date.now() + 30_000));
  await F.page.click("#totp-form button[type=submit]");
  await F.page.waitForURL(/\/hosts$/);

  // --- audit entries carry the real client IP and user-agent
  const rows = await srv.db.sql`select action, success, ip, user_agent, actor_name, details from audit_log
    where actor_name = 'bob' and action like 'login%' order by id`;
  expect(rows.map((r) => `${r.action}:${r.success}`)).toEqual(["login.password:true", "login.password:true", "login.totp:false", "login.success:true"]);
  expect(rows.every((r) => r.ip === "127.0.0.1")).toBe(true);
  expect(rows.map((r) => r.user_agent)).toEqual(["ServerMind-E2E-Bob/3.0", "ServerMind-E2E-Bob-Again/4.0", "ServerMind-E2E-Bob-Again/4.0", "ServerMind-E2E-Bob-Again/4.0"]);
  const danger = await srv.db.sql`select details from audit_log where action = 'settings.security' and success`;
  expect(danger[0]!.details).toMatchObject({ dangerous: true, confirmed: true, reauth: "recent" });

  // the admin must now enroll too (MFA for everyone): sign in again in A after enrolling
  await A.page.goto(`${srv.url}/audit?user=bob`);
  await hasText(A.page.locator("#audit-table tbody tr").first(), "127.0.0.1");
  await A.page.fill("#audit-filter input[name=user]", "");
  await A.page.fill("#audit-filter input[name=action]", "login");
  await A.page.click("#audit-filter button[type=submit]");
  await hasText(A.page.locator("#audit-table tbody tr").first(), "login");
  await A.page.click("text=Verify hash chain");
  await hasText(A.page.locator("#verify-ok"), "Hash chain intact");
  await shot(A.page, "14-audit");

  // --- CSV export downloads the filtered trail
  const [download] = await Promise.all([A.page.waitForEvent("download"), A.page.click("#export-csv")]);
  const path = await download.path();
  const csv = readFileSync(path!, "utf8");
  const lines = csv.trimEnd().split("\r\n");
  expect(lines[0]).toBe("id,ts,actor_type,actor_id,actor_name,on_behalf_of,ip,user_agent,category,action,target,success,details,hash");
  expect(lines.length).toBeGreaterThan(8);
  expect(lines.slice(1).every((l) => l.split(",")[9]!.includes("login"))).toBe(true);
  expect(csv).toContain("ServerMind-E2E-Bob-Again/4.0");
  expect(download.suggestedFilename()).toMatch(/^servermind-audit-.*\.csv$/);

  await A.page.goto(`${srv.url}/settings`);
  await shot(A.page, "15-settings");
  await A.page.goto(`${srv.url}/users`);
  await shot(A.page, "16-users");

  // htmx keeps no page snapshots (audit rows, tokens) in browser storage for history navigation
  const cached = await A.page.evaluate(() => JSON.parse(sessionStorage.getItem("htmx-history-cache") ?? "[]").length);
  expect(cached).toBe(0);
  expect(cspViolations).toEqual([]);
  expect(pageErrors).toEqual([]);
  for (const c of [A, B, C, E, F, L]) await c.ctx.close();
}, 180_000);
