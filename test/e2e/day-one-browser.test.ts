/**
 * The smaller day-one points of issue #17 in a real browser (chromium via playwright-core, the
 * real server and PostgreSQL): readable names and labels, sorting and searching the fleet by its
 * distribution, an offline host's greyed gauges, a confirmation after saving tags, relative times
 * that keep counting, a filter on long inventory tables, the Logs card before Security, and an
 * HTML page for an unknown address.
 */
import { beforeAll, expect, test } from "bun:test";
import { type Page } from "playwright-core";
import { consoleInBrowser, signIn } from "../support/browser.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { totp } from "../../src/auth/totp.ts";

const PASSWORD = "Harbor-Thistle-Copper-2";
const con = consoleInBrowser();
const chromiumReady = con.ready;

let page: Page;
let web = 0;
let old = 0;

beforeAll(async () => {
  if (!chromiumReady) return;
  const { sql } = con.srv.db;
  const host = async (name: string, key: number, lastSeen: Date, cpu: number) => {
    const [a] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
      values (${name}, ${Buffer.alloc(32, key)}, ${["group:web"]}, '0.1.0', 'wss', 'linux', 'x64', ${lastSeen}) returning id`;
    await sql`insert into metric_latest (agent_id, ts, names, vals) values (${a!.id}, now(), ${["cpu.usage_pct", "mem.used_pct"]}, ${[cpu, 50]})`;
    return Number(a!.id);
  };
  web = await host("web-1", 1, new Date(Date.now() - 2000), 20);
  old = await host("old-1", 2, new Date(Date.now() - 3 * 3600_000), 97);
  await host("mid-1", 3, new Date(), 60);
  await sql`insert into inventory_current (agent_id, collected_at, hash, data) values (${web}, now(), ${Buffer.alloc(32)}, ${sql.json({
    os: { id: "debian", name: "Debian GNU/Linux", version: "12", prettyName: "Debian GNU/Linux 12 (bookworm)" },
    packages: Array.from({ length: 400 }, (_, i) => ({ name: i === 371 ? "openssl" : `lib-package-${i}`, version: `1.${i}` })),
  })})`;
  const sids: number[] = [];
  for (const n of ["mem.used_pct", "swap.used_pct"]) sids.push(Number((await sql`insert into metric_series (agent_id, name) values (${web}, ${n}) returning id`)[0]!.id));
  for (let f = 0; f < 30; f++) {
    const t0 = Date.now() - 20 * 60_000 + f * 10_000;
    await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (${web}, ${f}, ${new Date(t0)}, ${new Date(t0)}, ${[0]}, ${sids}, ${[50, 5]})`;
  }
  const role = await createRole(sql, "day-one", "", ["hosts.view", "hosts.edit", "metrics.view", "logs.view", "inventory.view", "compliance.view"], []);
  await createUser(sql, { username: "olga", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
  const ctx = await con.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  page = await ctx.newPage();
  await signIn(page, con.srv.url, "olga", PASSWORD);
}, 90_000);

test.skipIf(!chromiumReady)("fleet: the OS column names the distribution and search finds it; CPU sorts highest first; an offline host is greyed", async () => {
  const row = page.locator("#fleet-table tbody tr", { hasText: "web-1" });
  expect(await row.innerText()).toContain("Debian GNU/Linux 12 (bookworm) / x64");
  await page.fill("#fleet-search", "debian");
  await page.locator("#fleet-table tbody tr", { hasText: "old-1" }).waitFor({ state: "detached", timeout: 5000 });
  expect(await page.locator("#fleet-table tbody tr").count()).toBe(1);
  await page.fill("#fleet-search", "");
  await page.locator("#fleet-table tbody tr", { hasText: "old-1" }).waitFor({ timeout: 5000 });
  await page.click('#fleet-table th a:has-text("CPU")');
  await page.waitForURL(/sort=cpu/);
  expect(page.url()).toContain("dir=desc");
  await page.locator("#fleet-table tbody tr").first().waitFor();
  expect(await page.locator("#fleet-table tbody tr").first().innerText()).toContain("old-1");
  const old1 = page.locator("#fleet-table tbody tr", { hasText: "old-1" });
  expect(await old1.getAttribute("class")).toBe("host-offline");
  expect(await old1.locator("meter").first().evaluate((m) => getComputedStyle(m).filter)).toBe("grayscale(1)");
}, 30_000);

test.skipIf(!chromiumReady)("host page: distribution, counting last-seen time, saved tags confirmed, legends and labels read as words, Logs before Security", async () => {
  await page.goto(`${con.srv.url}/hosts/${web}`);
  expect(await page.locator(".page-head .os-name").innerText()).toBe("Debian GNU/Linux 12 (bookworm)");
  const seen = page.locator(".page-head time.ago");
  const first = await seen.innerText();
  await page.waitForFunction((t) => document.querySelector(".page-head time.ago")?.textContent !== t, first, { timeout: 8000 });
  expect(await seen.innerText()).toMatch(/^\d+ s ago$/);

  // Logs come before the (long) Security card
  const order = await page.evaluate(() => [document.getElementById("host-logs"), document.getElementById("security")].map((e) => e?.getBoundingClientRect().top ?? -1));
  expect(order[0]).toBeGreaterThan(0);
  expect(order[0]).toBeLessThan(order[1]!);
  const levels = await page.locator('#host-logs select[name=severity] option').allInnerTexts();
  expect(levels).toContain("emerg only");
  expect(levels.some((l) => /and worse/.test(l))).toBe(false);

  // the memory chart tells memory from swap
  await page.locator('#charts figure[data-chart="mem"] canvas').first().waitFor({ timeout: 10_000 });
  const legends = await page.locator('#charts figure[data-chart="mem"] .u-legend .u-series:not(:first-child) .u-label').allTextContents();
  expect(legends).toEqual(["mem.used", "swap.used"]);

  // inventory keys as words, and a filter on the 400 packages
  const inventory = page.locator("section.card:has(> h2:text-is(\"Inventory\"))");
  expect(await inventory.innerText()).toContain("Operating system");
  expect(await inventory.innerText()).toContain("Full name");
  // (the package list is searched on the server: test/e2e/inventory-browser.test.ts)
  await inventory.locator("#host-packages-search").fill("openssl");
  await inventory.locator("#host-packages-count", { hasText: "Showing 1 of 1" }).waitFor({ timeout: 5000 });
  const visible = await inventory.locator("#host-packages-table tbody tr").allInnerTexts();
  expect(visible).toEqual([expect.stringContaining("openssl")]);

  // saving tags says so
  await page.click(".tag-editor summary");
  await page.fill("#tags-form input[name=tags]", "group:web, env=prod");
  await page.click("#tags-form button[type=submit]");
  await page.locator("#tags-saved").waitFor({ timeout: 5000 });
  expect(await page.locator("#tags-saved").innerText()).toContain("env=prod");
  await page.screenshot({ path: "test-artifacts/day-one-host.png", fullPage: true });
}, 30_000);

test.skipIf(!chromiumReady)("an unknown address is a page for a browser, JSON for an API client", async () => {
  const r = await page.goto(`${con.srv.url}/no/such/page`);
  expect(r!.status()).toBe(404);
  expect(r!.headers()["content-type"]).toContain("text/html");
  expect(await page.locator("#not-found h1").innerText()).toBe("Not found");
  const api = await page.request.get(`${con.srv.url}/api/v1/no-such`);
  expect(api.status()).toBe(404);
  expect(api.headers()["content-type"]).toContain("application/json");
}, 30_000);

test.skipIf(!chromiumReady)("an ended session says so on the sign-in page, and the page asked for survives the second factor", async () => {
  const { sql } = con.srv.db;
  const role = Number((await sql`select id from console_roles where name = 'day-one'`)[0]!.id);
  await createUser(sql, { username: "tom", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
  const ctx = await con.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  const p = await ctx.newPage();
  await signIn(p, con.srv.url, "tom", PASSWORD);
  // tom sets up an authenticator app
  await p.goto(`${con.srv.url}/account/mfa`);
  const secret = (await p.locator("#totp-secret").innerText()).replace(/\s/g, "");
  const enrolledAt = Date.now();
  await p.fill("#mfa-form input[name=code]", totp(secret, enrolledAt));
  await p.click("#mfa-form button[type=submit]");
  await p.click("text=I have saved them");
  await p.waitForURL(/\/hosts$/);
  // off the console before the session ends, so that no page of it (the fleet page polls) is
  // sent to the sign-in page by itself, racing the navigation below (seen under load: next=/account/mfa)
  await p.goto("about:blank");
  // the session ends elsewhere (revoked, as by an administrator or a timeout)
  await sql`update console_sessions set revoked_at = now() where user_id = (select id from console_users where username = 'tom')`;
  await p.goto(`${con.srv.url}/hosts/${web}?range=6h`);
  await p.waitForURL(/\/login\?/);
  expect(new URL(p.url()).searchParams.get("next")).toBe(`/hosts/${web}?range=6h`);
  expect(await p.locator("#session-expired").innerText()).toContain("Your session has ended");
  await p.fill("#login-form input[name=username]", "tom");
  await p.fill("#login-form input[name=password]", PASSWORD);
  await p.click("#login-form button[type=submit]");
  await p.waitForURL(/\/login\/totp/);
  // a code of a later step than the enrollment's (each code works once)
  await p.fill("#totp-form input[name=code]", totp(secret, Math.max(Date.now(), (Math.floor(enrolledAt / 30_000) + 1) * 30_000)));
  await p.click("#totp-form button[type=submit]");
  await p.waitForURL(new RegExp(`/hosts/${web}\\?range=6h$`));
  await ctx.close();
}, 60_000);
