/**
 * Host charts in a real browser (chromium via playwright-core, the real server and PostgreSQL):
 * a host reporting every 10 s draws one unbroken line in every range, 15 minutes included
 * (its 3.75 s buckets are shorter than the agent's interval), and a real outage still breaks it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { type Browser } from "playwright-core";
import { requireComponent } from "../support/ci.ts";
import { launchChromium } from "../support/browser.ts";
import { startConsoleServer, type ConsoleServer } from "../support/console-server.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

const CHROMIUM = "/usr/bin/chromium";
const PASSWORD = "Quartz-Willow-Beacon-5";
const haveChromium = requireComponent(existsSync(CHROMIUM), "Debian chromium (/usr/bin/chromium, apt-get install chromium)");

let srv: ConsoleServer;
let browser: Browser;

beforeAll(async () => {
  if (!haveChromium) return;
  mkdirSync("test-artifacts", { recursive: true });
  srv = await startConsoleServer();
  browser = await launchChromium(CHROMIUM);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

/** One host reporting cpu and memory every 10 s for the last 40 minutes, silent from 30 to 25 minutes ago. */
async function seedHost(hostname: string, outage: boolean): Promise<number> {
  const { sql } = srv.db;
  const [a] = await sql`insert into agents (hostname, public_key, last_seen) values (${hostname}, ${Buffer.alloc(32, outage ? 2 : 1)}, now()) returning id`;
  const id = Number(a!.id);
  const sids: number[] = [];
  for (const n of ["cpu.usage_pct", "mem.used_pct"]) sids.push(Number((await sql`insert into metric_series (agent_id, name) values (${id}, ${n}) returning id`)[0]!.id));
  const now = Date.now();
  for (let f = 0; f < 240; f++) {
    const t0 = now - 40 * 60_000 + f * 10_000;
    if (outage && t0 > now - 12 * 60_000 && t0 < now - 8 * 60_000) continue; // 4 minutes without data, inside the 15-minute range
    await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (${id}, ${f}, ${new Date(t0)}, ${new Date(t0)},
      ${[0]}, ${sids}, ${[40 + 20 * Math.sin(f / 10), 60 + 5 * Math.cos(f / 7)]})`;
  }
  return id;
}

test.skipIf(!haveChromium)("the 15-minute range draws one line per series for a 10 s interval, and breaks it only at an outage", async () => {
  const steady = await seedHost("steady-1", false);
  const gappy = await seedHost("gappy-2", true);
  const role = await createRole(srv.db.sql, "charts", "", ["hosts.view", "metrics.view"], []);
  await createUser(srv.db.sql, { username: "carla", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  await page.fill("#login-form input[name=username]", "carla");
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForURL(/\/hosts$/);

  /** The number of subpaths ("M" commands) of every line on the host's charts in `range`. */
  const subpaths = async (host: number, range: string) => {
    await page.goto(`${srv.url}/hosts/${host}`);
    await page.locator("#charts svg.chart").first().waitFor({ timeout: 10_000 });
    await page.click(`.tabs a:has-text("${range}")`);
    await page.waitForFunction((r) => document.querySelector("#charts")?.getAttribute("data-range") === r, range, { timeout: 10_000 });
    const ds = await page.locator("#charts path.line").evaluateAll((els) => els.map((e) => e.getAttribute("d") ?? ""));
    expect(ds.length).toBeGreaterThan(0);
    return ds.map((d) => (d.match(/M/g) ?? []).length);
  };
  for (const range of ["15m", "1h"]) {
    const n = await subpaths(steady, range);
    expect(n).toEqual(n.map(() => 1));
  }
  await page.screenshot({ path: "test-artifacts/charts-15m.png", fullPage: true });
  const g = await subpaths(gappy, "15m");
  expect(g).toEqual(g.map(() => 2));
  await ctx.close();
}, 90_000);
