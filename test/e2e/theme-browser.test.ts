/**
 * Any screen (issue #17), in a real browser (chromium via playwright-core, the real server and
 * PostgreSQL), signed in over a seeded fleet: the dark theme follows the system
 * (prefers-color-scheme) with readable contrast for body text, cards and chart lines; the theme
 * toggle (light / dark / system) switches and is kept across a navigation; "Skip to content" is
 * the first Tab stop and moves focus to the main content; "/" focuses the fleet search box but not
 * while typing in a field; and the console raises no CSP violation or other console error.
 */
import { beforeAll, expect, test } from "bun:test";
import { type Page } from "playwright-core";
import { consoleInBrowser, signIn } from "../support/browser.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

const PASSWORD = "Lantern-Meadow-Quartz-4";
const web = consoleInBrowser();
const chromiumReady = web.ready;


beforeAll(async () => {
  if (!chromiumReady) return;
  const { sql } = web.srv.db;
  for (let i = 0; i < 4; i++) {
    const [a] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
      values (${`web-${i}.example.internal`}, ${Buffer.alloc(32, i + 1)}, ${["group:web", `rack=r${i}`]}, '0.1.0', 'wss', 'linux', 'x64', ${i === 3 ? new Date(Date.now() - 3_600_000) : new Date()}) returning id`;
    await sql`insert into metric_latest (agent_id, ts, names, vals) values (${Number(a!.id)}, now(), ${["cpu.usage_pct", "mem.used_pct", 'disk.used_pct{mount="/"}']}, ${[12 + i * 20, 40, 55]})`;
  }
  // no dangerous permission: no second factor needed to sign in
  const role = await createRole(sql, "theme-viewer", "", ["hosts.view", "metrics.view", "logs.view", "alerts.view"], []);
  await createUser(sql, { username: "dora", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
}, 90_000);

/** A signed-in page with the given system colour scheme; `errors` collects console errors (CSP reports land there). */
async function signedIn(colorScheme: "light" | "dark"): Promise<{ page: Page; errors: string[] }> {
  const ctx = await web.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 }, colorScheme });
  const page = await ctx.newPage();
  const errors: string[] = [];
  // (the browser's own request for /favicon.ico, which the console does not serve, and the 404 of
  // the page a test opens on purpose are not the page's errors)
  page.on("console", (m) => {
    const url = m.location().url;
    if (m.type() === "error" && !url.endsWith("/favicon.ico") && !url.endsWith("/no-such-page")) errors.push(`${m.text()} ${url}`);
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  await signIn(page, web.srv.url, "dora", PASSWORD);
  await page.waitForLoadState("networkidle");
  return { page, errors };
}

type Colours = { bodyBg: string; bodyInk: string; cardBg: string; cardInk: string; muted: string; line: string; s0: string; grid: string };

/** The computed colours of the body, a card (the fleet table) and chart parts, rendered by the real stylesheet. */
function colours(page: Page): Promise<Colours> {
  return page.evaluate(() => {
    const cs = (el: Element) => getComputedStyle(el);
    const body = document.body;
    const card = document.querySelector("table.fleet, .card")!;
    // chart parts as src/web/chart/svg.ts draws them, inside a card
    const probe = document.createElement("div");
    probe.className = "card";
    probe.innerHTML = '<svg class="chart"><text class="axis">x</text><line class="grid"/><path class="line s0"/></svg><span class="muted">m</span>';
    document.querySelector("main")!.appendChild(probe);
    const r = {
      bodyBg: cs(document.documentElement).backgroundColor, bodyInk: cs(body).color,
      cardBg: cs(card).backgroundColor, cardInk: cs(card).color,
      muted: cs(probe.querySelector(".muted")!).color, line: cs(probe.querySelector(".axis")!).fill,
      s0: cs(probe.querySelector(".s0")!).stroke, grid: cs(probe.querySelector(".grid")!).stroke,
    };
    probe.remove();
    return r;
  });
}

function rgb(c: string): [number, number, number] {
  const m = c.match(/rgba?\((\d+),\s*(\d+),\s*(\d+)/);
  if (!m) throw new Error(`not an rgb colour: ${c}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}
function luminance(c: string): number {
  const [r, g, b] = rgb(c).map((v) => { const s = v / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}
/** WCAG 2 contrast ratio. */
function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

test.skipIf(!chromiumReady)("the dark theme follows the system, with readable contrast for text, cards and charts", async () => {
  const light = await signedIn("light");
  const dark = await signedIn("dark");
  const l = await colours(light.page);
  const d = await colours(dark.page);
  expect(d.bodyBg).not.toBe(l.bodyBg);
  expect(d.bodyInk).not.toBe(l.bodyInk);
  expect(d.cardBg).not.toBe(l.cardBg);
  expect(d.cardInk).not.toBe(l.cardInk);
  expect(luminance(d.bodyBg)).toBeLessThan(0.05); // dark means dark
  expect(luminance(l.bodyBg)).toBeGreaterThan(0.8);
  for (const c of [l, d]) {
    // WCAG AA: 4.5:1 for body text, 3:1 for graphics (chart lines)
    expect(contrast(c.bodyInk, c.bodyBg)).toBeGreaterThanOrEqual(4.5);
    expect(contrast(c.cardInk, c.cardBg)).toBeGreaterThanOrEqual(4.5);
    expect(contrast(c.muted, c.cardBg)).toBeGreaterThanOrEqual(4.5);
    expect(contrast(c.line, c.cardBg)).toBeGreaterThanOrEqual(4.5);
    expect(contrast(c.s0, c.cardBg)).toBeGreaterThanOrEqual(3);
  }
  expect(d.grid).not.toBe(l.grid); // the light grid stroke would glare on a dark card
  await dark.page.screenshot({ path: "test-artifacts/theme-dark-fleet.png", fullPage: true });
  expect(light.errors).toEqual([]);
  expect(dark.errors).toEqual([]);
  await light.page.context().close();
  await dark.page.context().close();
}, 60_000);

test.skipIf(!chromiumReady)("the theme toggle switches light / dark / system and is kept across a navigation", async () => {
  const { page, errors } = await signedIn("light");
  const bg = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const lightBg = await bg();
  await page.selectOption("#theme-select", "dark");
  const darkBg = await bg();
  expect(darkBg).not.toBe(lightBg);
  expect(luminance(darkBg)).toBeLessThan(0.05);
  // kept on a full page load and on a boosted (htmx) navigation
  await page.goto(`${web.srv.url}/alerts`);
  await page.waitForLoadState("networkidle");
  expect(await bg()).toBe(darkBg);
  expect(await page.inputValue("#theme-select")).toBe("dark");
  await page.click(".mainnav a[href='/hosts']");
  await page.waitForURL(/\/hosts$/);
  await page.waitForLoadState("networkidle");
  expect(await bg()).toBe(darkBg);
  // the swapped-in select shows the choice once htmx has settled the new body (a few ms)
  await page.waitForFunction(() => (document.getElementById("theme-select") as HTMLSelectElement | null)?.value === "dark", null, { timeout: 5000 });
  expect(await page.inputValue("#theme-select")).toBe("dark");
  // the static "Not found" page takes the chosen theme too, and has its skip link
  const missing = await page.goto(`${web.srv.url}/no-such-page`);
  expect(missing?.status()).toBe(404);
  expect(await bg()).toBe(darkBg);
  expect(await page.evaluate(() => document.querySelector("a[href], button, input, select, textarea")?.textContent)).toBe("Skip to content");
  await page.goto(`${web.srv.url}/hosts`);
  // light wins over a dark system; "system" follows the system again
  await page.emulateMedia({ colorScheme: "dark" });
  await page.selectOption("#theme-select", "light");
  expect(await bg()).toBe(lightBg);
  await page.reload();
  expect(await bg()).toBe(lightBg);
  await page.selectOption("#theme-select", "system");
  expect(await bg()).toBe(darkBg);
  await page.emulateMedia({ colorScheme: "light" });
  expect(await bg()).toBe(lightBg);
  expect(await page.evaluate(() => localStorage.getItem("servermind.theme"))).toBeNull();
  expect(errors).toEqual([]);
  await page.context().close();
}, 60_000);

test.skipIf(!chromiumReady)("the skip link is the first Tab stop and moves focus to the main content", async () => {
  const { page, errors } = await signedIn("light");
  for (const path of ["/hosts", "/alerts"]) {
    await page.goto(`${web.srv.url}${path}`);
    await page.waitForLoadState("networkidle");
    await page.keyboard.press("Tab");
    const first = await page.evaluate(() => ({ text: document.activeElement?.textContent?.trim(), visible: (document.activeElement as HTMLElement).getBoundingClientRect().top >= 0 }));
    expect(first).toEqual({ text: "Skip to content", visible: true });
    await page.keyboard.press("Enter");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("main");
    // the next Tab goes into the content, not back to the navigation
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => !!document.activeElement?.closest("main"))).toBe(true);
  }
  // signed out too: the sign-in page focuses its username box itself (autofocus), but the skip link
  // is still the first focusable element of the page
  const anon = await web.browser.newPage({ ignoreHTTPSErrors: true });
  await anon.goto(`${web.srv.url}/login`);
  expect(await anon.evaluate(() => document.querySelector("a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex='-1'])")?.textContent?.trim())).toBe("Skip to content");
  await anon.close();
  expect(errors).toEqual([]);
  await page.context().close();
}, 60_000);

test.skipIf(!chromiumReady)("'/' focuses the fleet search box, but typing '/' in a field stays in the field", async () => {
  const { page, errors } = await signedIn("light");
  await page.keyboard.press("/");
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("fleet-search");
  expect(await page.inputValue("#fleet-search")).toBe(""); // the slash is not typed into the box
  // inside a field "/" is just a character
  await page.keyboard.type("web/");
  expect(await page.inputValue("#fleet-search")).toBe("web/");
  await page.goto(`${web.srv.url}/account`);
  await page.waitForLoadState("networkidle");
  const field = page.locator("main input:not([type=hidden]):not([type=search])").first();
  await field.focus();
  await page.keyboard.type("a/b");
  expect(await field.inputValue()).toContain("a/b");
  expect(await page.evaluate(() => document.activeElement?.tagName)).toBe("INPUT");
  expect(errors).toEqual([]);
  await page.context().close();
}, 60_000);

test("the dark values for the system's choice and for the user's choice are the same list", async () => {
  const css = await Bun.file("src/web/assets/console.css").text();
  const chosen = css.match(/:root\[data-theme="dark"\] \{([^}]*)\}/)?.[1];
  const system = css.match(/@media \(prefers-color-scheme: dark\) \{\s*:root:not\(\[data-theme="light"\]\) \{([^}]*)\}/)?.[1];
  const norm = (s: string | undefined) => (s ?? "").split(";").map((d) => d.trim()).filter(Boolean);
  expect(norm(chosen).length).toBeGreaterThan(20);
  expect(norm(system)).toEqual(norm(chosen));
  // every custom property the light theme defines has a dark value
  const light = new Set([...css.slice(0, css.indexOf("}")).matchAll(/(--[\w-]+):/g)].map((m) => m[1]));
  const dark = new Set(norm(chosen).map((d) => d.split(":")[0]!.trim()));
  const colourless = ["--radius", "--mono"];
  expect([...light].filter((p) => !dark.has(p!) && !colourless.includes(p!))).toEqual([]);
});
