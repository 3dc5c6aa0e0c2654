/**
 * The interactive charts in a real browser (chromium via playwright-core, the real server over
 * TLS and PostgreSQL with stored samples): uPlot canvases drawn from the columnar data, the
 * legend's value at the pointer equal to the stored sample, drag to zoom (the URL carries the
 * window, finer data is fetched), reload and back restore it, double-click returns to the range,
 * several hosts on one chart with one series per host and the offline one grey, the 15-minute
 * range one unbroken line for a 10 s agent (broken only by a real outage), live refresh that pauses
 * while the tab is hidden, and no CSP violation.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { type Browser, type BrowserContext, type Page } from "playwright-core";
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
let ctx: BrowserContext;
let page: Page;
const problems: string[] = [];
const NOW = Date.now();
const START = NOW - 40 * 60_000;
const cpuAt = (f: number) => 20 + (f % 40) * 1.5;
const hosts: Record<string, number> = {};
let keySeq = 0;

/**
 * A host reporting cpu, memory and one interface every 10 s for the last 40 minutes (from
 * `offsetMs` after the others); `outage`: silent from 12 to 8 minutes ago; `silentFor`: its last
 * `silentFor` ms without data and last seen then (offline).
 */
async function seedHost(hostname: string, o: { outage?: boolean; offsetMs?: number; silentFor?: number } = {}): Promise<number> {
  const { sql } = srv.db;
  const lastSeen = new Date(NOW - (o.silentFor ?? 0));
  const [a] = await sql`insert into agents (hostname, public_key, last_seen) values (${hostname}, ${Buffer.alloc(32, ++keySeq)}, ${lastSeen}) returning id`;
  const id = Number(a!.id);
  const sids: number[] = [];
  for (const n of ["cpu.usage_pct", "mem.used_pct", 'net.rx_bytes_per_s{iface="eth0"}']) sids.push(Number((await sql`insert into metric_series (agent_id, name) values (${id}, ${n}) returning id`)[0]!.id));
  for (let b = 0; b < 24; b++) {
    const off: number[] = [];
    const cpu: number[] = [], mem: number[] = [], net: number[] = [];
    for (let i = 0; i < 10; i++) {
      const f = b * 10 + i;
      const t = START + (o.offsetMs ?? 0) + f * 10_000;
      if (o.outage && t > NOW - 12 * 60_000 && t < NOW - 8 * 60_000) continue;
      if (o.silentFor && t > NOW - o.silentFor) continue;
      off.push(i * 10_000);
      cpu.push(cpuAt(f)); mem.push(60 + (f % 5)); net.push(3 * 1024 * 1024 + f);
    }
    if (!off.length) continue;
    await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (${id}, ${b}, ${new Date(START + (o.offsetMs ?? 0) + b * 100_000)},
      ${new Date(START + (o.offsetMs ?? 0) + b * 100_000 + off[off.length - 1]!)}, ${off}, ${sids}, ${[...cpu, ...mem, ...net]})`;
  }
  return id;
}

beforeAll(async () => {
  if (!haveChromium) return;
  mkdirSync("test-artifacts", { recursive: true });
  srv = await startConsoleServer();
  browser = await launchChromium(CHROMIUM);
  hosts.steady = await seedHost("steady-1");
  hosts.gappy = await seedHost("gappy-2", { outage: true });
  hosts.shifted = await seedHost("shifted-3", { offsetMs: 5_000 });
  hosts.offline = await seedHost("offline-4", { silentFor: 10 * 60_000 });
  const role = await createRole(srv.db.sql, "charts", "", ["hosts.view", "metrics.view"], []);
  await createUser(srv.db.sql, { username: "carla", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
  ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
  // a CSP violation anywhere in the console is a failure (listened for before any page script)
  await ctx.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  page = await ctx.newPage();
  page.on("console", (m) => {
    // a failed load is reported with its URL below (the browser's own favicon.ico request is no problem)
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("response", (r) => {
    if (r.status() >= 400 && !r.url().endsWith("/favicon.ico")) problems.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(`${srv.url}/login`);
  await page.fill("#login-form input[name=username]", "carla");
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForURL(/\/hosts$/);
}, 90_000);

afterAll(async () => {
  await ctx?.close();
  await browser?.close();
  await srv?.close();
});

/** Runs `fn` in the page on a chart's figure, whose `_uplot` is its uPlot instance (data, scales, series as drawn). */
function plot<T, A = undefined>(chart: string, fn: (fig: any, arg: A) => T, arg?: A): Promise<T> {
  return page.locator(`#charts figure[data-chart="${chart}"]`).evaluate(fn as any, arg) as Promise<T>;
}

async function chartsDrawn(n: number) {
  await page.waitForFunction((k) => document.querySelectorAll("#charts figure.uchart canvas").length >= k, n, { timeout: 15_000 });
}

/** The query of the chart data requests the page makes while `act` runs. */
async function dataRequests(act: () => Promise<unknown>): Promise<URLSearchParams[]> {
  const seen: URLSearchParams[] = [];
  const on = (r: { url(): string }) => {
    const u = new URL(r.url());
    if (/^\/api\/(hosts\/\d+\/)?charts$/.test(u.pathname)) seen.push(u.searchParams);
  };
  page.on("request", on);
  try {
    await act();
  } finally {
    page.off("request", on);
  }
  return seen;
}

test.skipIf(!haveChromium)("a host's charts: drawn from stored samples, the legend at the pointer shows the stored value, drag zooms into the URL, reload and back restore it", async () => {
  const first = await dataRequests(async () => {
    await page.goto(`${srv.url}/hosts/${hosts.steady}?range=1h`);
    await chartsDrawn(3);
    await page.waitForFunction(() => document.querySelector("#charts .chart-status")?.textContent?.startsWith("Last 1h, live"), null, { timeout: 10_000 });
  });
  expect(first.length).toBeGreaterThanOrEqual(1);
  const width = Number(first[0]!.get("width"));
  expect(first[0]!.get("range")).toBe("1h");
  expect(width).toBeGreaterThanOrEqual(300);
  expect(await page.locator("#charts figure.uchart figcaption").allInnerTexts()).toEqual(["CPU (%)", "Memory (%)", "Network receive (bytes/s)"]);

  // the canvas has the line's pixels; the data is the stored samples, at most `width` points
  const drawn = await page.evaluate(() => {
    const c = document.querySelector('#charts figure[data-chart="cpu"] canvas') as HTMLCanvasElement;
    const px = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
    return n;
  });
  expect(drawn).toBeGreaterThan(500);
  const cpu = await plot("cpu", (fig) => ({ t: fig._uplot.data[0], v: fig._uplot.data[1] }));
  expect(cpu.t.length).toBeLessThanOrEqual(width + 1);
  expect(cpu.v.filter((x: number | null) => x != null).length).toBeGreaterThanOrEqual(230);

  // hover near the middle: the legend shows the stored sample of the time under the pointer, in percent
  const k = cpu.v.findIndex((x: number | null, i: number) => i > cpu.v.length / 2 && x != null);
  const at = await plot("cpu", (fig, i: number) => {
    const u = fig._uplot;
    const r = u.over.getBoundingClientRect();
    return { x: r.left + u.valToPos(u.data[0][i], "x"), y: r.top + r.height / 2 };
  }, k);
  await page.mouse.move(at.x, at.y);
  await page.waitForFunction(() => ((document.querySelector('#charts figure[data-chart="cpu"]') as any)?._uplot?.cursor.idx ?? null) !== null, null, { timeout: 5000 });
  const idx = await plot("cpu", (fig) => fig._uplot.cursor.idx as number);
  expect(Math.abs(idx - k)).toBeLessThanOrEqual(2);
  expect(cpu.v[idx]).not.toBeNull();
  // the bucket [t, t + bucket) holds one sample (buckets are finer than 10 s): the first sample time at or after t
  const f = Math.ceil((cpu.t[idx]! * 1000 - START) / 10_000 - 1e-9);
  const legend = await page.locator('#charts figure[data-chart="cpu"] .u-legend .u-series').nth(1).locator(".u-value").innerText();
  expect(legend).toBe(`${String(Number(cpuAt(f).toFixed(1)))} %`);
  // bytes per second with a binary prefix in the network legend at the same instant (cursors are synced)
  const net = await page.locator('#charts figure[data-chart="net-rx"] .u-legend .u-series').nth(1).locator(".u-value").innerText();
  expect(net).toMatch(/^3 MiB\/s$/);
  await page.screenshot({ path: "test-artifacts/charts-hover.png", fullPage: true });

  // drag across the middle third of the CPU chart: the URL takes the window and finer data is fetched
  const box = (await page.locator('#charts figure[data-chart="cpu"] .u-over').boundingBox())!;
  const historyBefore = await page.evaluate(() => history.length);
  const zoom = await dataRequests(async () => {
    await page.mouse.move(box.x + box.width / 3, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 8 });
    await page.mouse.move(box.x + (2 * box.width) / 3, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    await page.waitForURL(/from=\d+&to=\d+/, { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelector("#charts .chart-status")?.textContent?.startsWith("Zoomed"), null, { timeout: 10_000 });
  });
  const url = new URL(page.url());
  const from = Number(url.searchParams.get("from")), to = Number(url.searchParams.get("to"));
  expect(url.searchParams.get("range")).toBeNull();
  expect(to - from).toBeGreaterThan(15 * 60_000);
  expect(to - from).toBeLessThan(25 * 60_000);
  expect(zoom.some((q) => q.get("from") === String(from) && q.get("to") === String(to))).toBe(true);
  // one history entry for the one drag (the three charts' cursors are synced)
  expect(await page.evaluate(() => history.length)).toBe(historyBefore + 1);
  expect(await page.locator("#charts").getAttribute("data-range")).toBe("zoom");
  const zoomed = await plot("cpu", (fig) => ({ min: fig._uplot.scales.x.min, max: fig._uplot.scales.x.max, n: fig._uplot.data[0].length }));
  expect(zoomed.min * 1000).toBeCloseTo(from, -3);
  expect(zoomed.max * 1000).toBeCloseTo(to, -3);
  expect(zoomed.n).toBeGreaterThan(80); // 10 s samples in a 20-minute window

  // reload: the same window
  const again = await dataRequests(async () => {
    await page.reload();
    await chartsDrawn(3);
    await page.waitForFunction(() => document.querySelector("#charts .chart-status")?.textContent?.startsWith("Zoomed"), null, { timeout: 10_000 });
  });
  expect(again.some((q) => q.get("from") === String(from))).toBe(true);
  expect((await plot("cpu", (fig) => fig._uplot.scales.x.min)) * 1000).toBeCloseTo(from, -3);

  // back: the hour again, live
  await page.goBack();
  await page.waitForFunction(() => document.querySelector("#charts")?.getAttribute("data-range") === "1h", null, { timeout: 10_000 });
  expect(new URL(page.url()).searchParams.get("range")).toBe("1h");
  await page.waitForFunction(() => document.querySelector("#charts .chart-status")?.textContent?.startsWith("Last 1h"), null, { timeout: 10_000 });

  // zoom once more, then a double-click goes back to the last range
  await page.mouse.move(box.x + box.width / 4, box.y + 40);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, box.y + 40, { steps: 8 });
  await page.mouse.up();
  await page.waitForURL(/from=\d+/, { timeout: 10_000 });
  await page.mouse.dblclick(box.x + box.width / 2, box.y + 40);
  await page.waitForURL(/range=1h/, { timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector("#charts")?.getAttribute("data-range") === "1h", null, { timeout: 10_000 });

  // a range tab switches in place and keeps it in the URL
  await page.click('#charts .tabs a:has-text("15m")');
  await page.waitForURL(/range=15m/, { timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector("#charts .chart-status")?.textContent?.startsWith("Last 15m"), null, { timeout: 10_000 });
  expect(problems).toEqual([]);
}, 120_000);

test.skipIf(!haveChromium)("the 15-minute range draws one unbroken line for a 10 s agent, breaks it only at an outage, and refreshes live while the tab is visible", async () => {
  const gapsOf = async (host: number) => {
    await page.goto(`${srv.url}/hosts/${host}?range=15m`);
    await chartsDrawn(3);
    await page.waitForFunction(() => document.querySelector("#charts .chart-status")?.textContent?.startsWith("Last 15m"), null, { timeout: 10_000 });
    const out: number[] = [];
    for (const c of ["cpu", "mem", "net-rx"]) out.push(await plot(c, (fig) => (fig._uplot.series[1]._paths?.gaps ?? []).length));
    return out;
  };
  expect(await gapsOf(hosts.steady!)).toEqual([0, 0, 0]);
  await page.screenshot({ path: "test-artifacts/charts-15m.png", fullPage: true });
  expect(await gapsOf(hosts.gappy!)).toEqual([1, 1, 1]);

  // live: a range ending now is polled (every 10 s for 15 minutes) as a background request
  const polls: Array<{ q: URLSearchParams; poll: string | null }> = [];
  const onRequest = (r: { url(): string; headers(): Record<string, string> }) => {
    const u = new URL(r.url());
    if (u.pathname === `/api/hosts/${hosts.gappy}/charts`) polls.push({ q: u.searchParams, poll: r.headers()["x-console-poll"] ?? null });
  };
  page.on("request", onRequest);
  try {
    const t0 = Date.now();
    while (polls.length === 0 && Date.now() - t0 < 15_000) await Bun.sleep(250);
    expect(polls.length).toBeGreaterThanOrEqual(1);
    expect(polls[0]!.q.get("range")).toBe("15m");
    expect(polls[0]!.poll).toBe("1"); // does not count as activity for the session's idle timeout
    // hidden tab: no polling; shown again: fetched at once
    await page.evaluate(() => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    const hiddenAt = polls.length;
    await Bun.sleep(12_000);
    expect(polls.length).toBe(hiddenAt);
    await page.evaluate(() => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    const t1 = Date.now();
    while (polls.length === hiddenAt && Date.now() - t1 < 3000) await Bun.sleep(100);
    expect(polls.length).toBe(hiddenAt + 1);
  } finally {
    page.off("request", onRequest);
  }
  expect(problems).toEqual([]);
}, 90_000);

test.skipIf(!haveChromium)("several hosts on one chart: one series per host, samples 5 s apart joined, the offline host grey; the theme's colours", async () => {
  const ids = [hosts.steady!, hosts.shifted!, hosts.offline!];
  await page.goto(`${srv.url}/charts`);
  // each host of the picker is one line: its checkbox, its state dot and its name side by side (the
  // console's labels stack their contents; these were three rows per host)
  const rows = await page.locator("#compare-form .picker-item").evaluateAll((items) => items.map((item) => {
    const mid = (e: Element | null) => { const b = e!.getBoundingClientRect(); return b.top + b.height / 2; };
    return { text: item.textContent!.trim(), box: mid(item.querySelector("input")), dot: mid(item.querySelector(".dot")), height: item.getBoundingClientRect().height };
  }));
  expect(rows.length).toBeGreaterThanOrEqual(3);
  for (const r of rows) {
    expect(Math.abs(r.box - r.dot)).toBeLessThan(4);
    expect(r.height).toBeLessThan(30);
  }
  for (const id of ids) await page.check(`#compare-form input[name=host][value="${id}"]`);
  await page.click("#compare-form button[type=submit]");
  await page.waitForURL(/\/charts\?/, { timeout: 10_000 });
  await chartsDrawn(3);
  await page.waitForFunction(() => document.querySelector("#charts .chart-status")?.textContent?.startsWith("Last 1h"), null, { timeout: 10_000 });
  const cpu = await plot("cpu", (fig) => ({
    labels: fig._uplot.series.slice(1).map((s: any) => s.label), strokes: fig._uplot.series.slice(1).map((s: any) => s._stroke),
    gaps: fig._uplot.series.slice(1).map((s: any) => (s._paths?.gaps ?? []).length),
  }));
  expect(cpu.labels).toEqual(["steady-1", "shifted-3", "offline-4 (offline)"]);
  expect(cpu.gaps).toEqual([0, 0, 0]);
  const grey = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--grey").trim());
  expect(cpu.strokes[2]).toBe(grey);
  expect(cpu.strokes[0]).not.toBe(grey);
  expect(await page.locator('#charts figure[data-chart="cpu"] figcaption').innerText()).toBe("CPU used (%)");
  // the picker keeps the choice; the URL keeps hosts and range through a tab change and a reload
  await page.click('#charts .tabs a:has-text("6h")');
  await page.waitForURL(/range=6h/, { timeout: 10_000 });
  expect(new URL(page.url()).searchParams.getAll("host").map(Number)).toEqual(ids);
  await page.reload();
  await chartsDrawn(3);
  expect(await page.locator("#charts").getAttribute("data-range")).toBe("6h");
  await page.screenshot({ path: "test-artifacts/charts-compare.png", fullPage: true });

  // the dark theme: axes and lines take its colours
  await page.selectOption("#theme-select", "dark");
  await page.waitForFunction(() => document.documentElement.getAttribute("data-theme") === "dark", null, { timeout: 5000 });
  const s0 = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--s0").trim());
  await page.waitForFunction((c) => (document.querySelector('#charts figure[data-chart="cpu"]') as any)?._uplot?.series[1]._stroke === c, s0, { timeout: 5000 });
  await page.screenshot({ path: "test-artifacts/charts-compare-dark.png", fullPage: true });
  await page.selectOption("#theme-select", "system");
  expect(problems).toEqual([]);
}, 60_000);
