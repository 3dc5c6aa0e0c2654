/**
 * Fleet log search (issue #17) in a real browser (chromium via playwright-core, the real server
 * and PostgreSQL): type a query, see the matches highlighted (and markup in messages shown as
 * text), page to older lines, and watch a line written after the search arrive through the live
 * tail; no console error (CSP) on the way.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { type Browser } from "playwright-core";
import { requireComponent } from "../support/ci.ts";
import { CHROMIUM, launchChromium } from "../support/browser.ts";
import { startConsoleServer, type ConsoleServer } from "../support/console-server.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

const PASSWORD = "Lantern-Meadow-Quartz-4";
const haveChromium = requireComponent(existsSync(CHROMIUM), "Debian chromium (/usr/bin/chromium, apt-get install chromium)");

let srv: ConsoleServer;
let browser: Browser;
let web: number;

beforeAll(async () => {
  if (!haveChromium) return;
  srv = await startConsoleServer();
  browser = await launchChromium();
  const { sql } = srv.db;
  const [a] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
    values ('web-1', ${Buffer.alloc(32, 1)}, ${["group:web"]}, '0.1.0', 'wss', 'linux', 'x64', now()) returning id`;
  web = Number(a!.id);
  const now = Date.now();
  // 130 matching lines: more than one page (100)
  await sql`insert into logs (agent_id, batch_id, ts, severity, source, message)
    select ${web}, 1, ${new Date(now)}::timestamptz - g * interval '10 seconds', 3, 'app.service', 'needle number ' || g || ' <b>bold?</b>'
    from generate_series(1, 130) g`;
  await sql`insert into logs (agent_id, batch_id, ts, severity, source, message)
    select ${web}, 1, ${new Date(now)}::timestamptz - g * interval '7 seconds', 6, 'cron.service', 'haystack ' || g from generate_series(1, 50) g`;
  const role = await createRole(sql, "log-reader", "", ["hosts.view", "logs.view"], []);
  await createUser(sql, { username: "lena", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

test.skipIf(!haveChromium)("search, highlight, page to older lines, and a live-tail line arriving", async () => {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on("console", (m) => {
    // (the 400 of the malformed query this test sends on purpose is the answer it expects)
    const url = m.location().url;
    if (m.type() === "error" && !url.endsWith("/favicon.ico") && !url.includes("q=%22needle&")) errors.push(`${m.text()} ${url}`);
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.goto(`${srv.url}/login`);
    await page.fill("#login-form input[name=username]", "lena");
    await page.fill("#login-form input[name=password]", PASSWORD);
    await page.click("#login-form button[type=submit]");
    await page.waitForURL(/\/hosts$/);
    await page.click('nav.mainnav a[href="/logs"]');
    await page.waitForSelector("#log-search input[name=q]");

    // a malformed query: the parser's message in the form
    await page.fill("#log-search input[name=q]", '"needle');
    await page.click("#log-search button[type=submit]");
    await page.waitForSelector("#log-query-error");
    expect(await page.textContent("#log-query-error")).toContain("never closed");

    await page.fill("#log-search input[name=q]", "NEEDLE -haystack");
    await page.check("#log-search input[name=live]");
    await page.click("#log-search button[type=submit]");
    await page.waitForSelector("#log-results tr.log-line mark");
    expect(await page.locator("#log-query-error").count()).toBe(0);
    expect(await page.locator("#log-results tr.log-line").count()).toBe(100);
    const first = page.locator("#log-results tr.log-line").first();
    expect(await first.locator("mark").textContent()).toBe("needle");
    // markup in a message is text, not elements
    expect(await first.locator("td.msg").textContent()).toBe("needle number 1 <b>bold?</b>");
    expect(await first.locator("td.msg b").count()).toBe(0);
    expect(await first.locator(`a[href="/hosts/${web}"]`).textContent()).toBe("web-1");
    expect(page.url()).toContain("q=NEEDLE");

    await page.click("#log-more button");
    await page.waitForFunction(() => document.querySelectorAll("#log-results tr.log-line").length === 130);
    expect(await page.locator("#log-results tr.log-line").last().locator("td.msg").textContent()).toBe("needle number 130 <b>bold?</b>");

    // a line written now arrives through the live tail (polls every 3 s), at the top
    await srv.db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${web}, 2, now(), 3, 'app.service', 'needle from the live tail')`;
    await page.waitForSelector("#log-results tr.log-line:has-text('needle from the live tail')", { timeout: 20_000 });
    expect(await page.locator("#log-results tr.log-line").first().locator("td.msg").textContent()).toBe("needle from the live tail");
    expect(await page.locator("#log-results tr.log-line").count()).toBe(131);
    expect(errors).toEqual([]);
  } finally {
    await ctx.close();
  }
}, 90_000);
