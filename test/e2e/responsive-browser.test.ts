/**
 * The console at a laptop width (1366 px) and a phone width (390 px) in a real browser (chromium
 * via playwright-core, the real server and PostgreSQL), signed in as an administrator over a
 * seeded fleet: no page scrolls sideways (document scrollWidth within the window), no table is
 * wider than its card at 1366 px, and at both widths every item of the main navigation is on screen.
 */
import { beforeAll, expect, test } from "bun:test";
import { type Page } from "playwright-core";
import { consoleInBrowser } from "../support/browser.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { recordScan } from "../../src/security/posture.ts";
import { PERMISSIONS } from "../../src/auth/permissions.ts";
import { totp } from "../../src/auth/totp.ts";

const PASSWORD = "Juniper-Coast-Ember-6";
const web = consoleInBrowser();
const chromiumReady = web.ready;

let host = 0;
let totpSecret = "";
let totpStep = 0;

beforeAll(async () => {
  if (!chromiumReady) return;
  const { sql } = web.srv.db;
  for (let i = 0; i < 6; i++) {
    const [a] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
      values (${`app-server-${i}.eu-west-1.internal.example.com`}, ${Buffer.alloc(32, i + 1)}, ${["group:web", "env=production", `rack=r${i}`]}, '0.1.0', 'wss', 'linux', 'x64', now()) returning id`;
    const id = Number(a!.id);
    host ||= id;
    await sql`insert into metric_latest (agent_id, ts, names, vals) values (${id}, now(), ${["cpu.usage_pct", "mem.used_pct", 'disk.used_pct{mount="/"}']}, ${[12 + i, 40, 55]})`;
    await recordScan(sql, id, new Date(Date.now() - 60_000), {
      results: [
        { id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: `PermitRootLogin yes (/etc/ssh/sshd_config.d/99-cloud-init-generated-settings.conf line ${i + 12}, overriding the default from /etc/ssh/sshd_config)` },
        { id: "smx.files.passwd", status: "fail", severity: 6, category: "files", observed: "0666 0:0 /etc/passwd is writable by every user on the system" },
      ],
    });
  }
  await sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values
    (${host}, 1, now() - interval '1 minute', 3, 'sshd', ${"Failed password for invalid user administrator_with_a_long_name from 2001:db8:85a3::8a2e:370:7334 port 52144 ssh2 " + "x".repeat(200)})`;
  await sql`insert into inventory_current (agent_id, collected_at, hash, data) values (${host}, now(), ${Buffer.alloc(32)}, ${sql.json({
    os: { name: "Debian GNU/Linux", version: "12 (bookworm)", kernel: "6.1.0-28-cloud-amd64" },
    packages: [{ name: "linux-image-6.1.0-28-cloud-amd64-unsigned-with-a-very-long-package-name", version: "6.1.119-1+deb12u1~bpo11+1" }],
    ports: [{ proto: "tcp6", address: "::", port: 443, process: "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;" }],
  })})`;
  const role = await createRole(sql, "everything", "", PERMISSIONS.map((p) => p.id), []);
  await createUser(sql, { username: "wendy", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
}, 90_000);

async function signedIn(width: number): Promise<Page> {
  const ctx = await web.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${web.srv.url}/login`);
  await page.fill("#login-form input[name=username]", "wendy");
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  // every permission includes dangerous ones, which require a second factor
  await page.waitForURL(/\/(hosts|account\/mfa|login\/totp)$/);
  if (page.url().endsWith("/account/mfa")) {
    totpSecret = (await page.locator("#totp-secret").innerText()).replace(/\s/g, "");
    totpStep = Math.floor(Date.now() / 30_000);
    await page.fill("#mfa-form input[name=code]", totp(totpSecret));
    await page.click("#mfa-form button[type=submit]");
    await page.click("text=I have saved them");
  } else if (page.url().endsWith("/login/totp")) {
    // a code of a later step than the one enrollment used (codes are single-use)
    const at = Math.max(Date.now(), (totpStep + 1) * 30_000);
    await page.fill("#totp-form input[name=code]", totp(totpSecret, at));
    await page.click("#totp-form button[type=submit]");
  }
  await page.waitForURL(/\/hosts$/);
  return page;
}

const PAGES = () => ["/hosts", `/hosts/${host}`, "/security", "/audit", "/enrollment", "/users", "/settings", "/sessions"];

/** Opens a page and waits until its lazy parts (htmx hx-trigger="load") have arrived. */
async function open(page: Page, path: string) {
  await page.goto(`${web.srv.url}${path}`);
  await page.waitForLoadState("networkidle");
  await page.waitForFunction(() => !document.querySelector(".loading"), undefined, { timeout: 10_000 }).catch(() => {});
}

/** Navigation items outside the window or outside the navigation's own box (scrolled out of sight). */
async function navOffScreen(page: Page, width: number): Promise<string[]> {
  const nav = await page.locator(".mainnav a").evaluateAll((els) => els.map((e) => {
    const b = e.getBoundingClientRect();
    const box = e.parentElement!.getBoundingClientRect();
    return { label: e.textContent?.trim() ?? "", left: b.left, right: b.right, visible: b.width > 0 && b.height > 0, inBox: b.right <= box.right + 0.5 && b.bottom <= box.bottom + 0.5 };
  }));
  expect(nav.length).toBeGreaterThan(5);
  return nav.filter((n) => !n.visible || !n.inBox || n.left < 0 || n.right > width).map((n) => `nav item ${n.label} at ${Math.round(n.left)}-${Math.round(n.right)} px`);
}

test.skipIf(!chromiumReady)("no page scrolls sideways at 1366 px, no table is wider than its card, and every navigation item is on screen", async () => {
  const page = await signedIn(1366);
  // an administrator's navigation is wider than a laptop's top bar: its last items (Audit log,
  // Settings, Single sign-on) wrap into a second row instead of scrolling out of sight
  const problems: string[] = await navOffScreen(page, 1366);
  for (const path of PAGES()) {
    await open(page, path);
    const r = await page.evaluate(() => {
      const doc = document.documentElement;
      const wide = [...document.querySelectorAll(".card table, section table")].flatMap((t) => {
        const card = t.closest(".card, section");
        const scroller = t.closest(".scroll");
        if (!card || (scroller && card.contains(scroller))) return []; // a table inside a scroll box scrolls there, by design
        const tw = t.getBoundingClientRect().width;
        const cw = card.getBoundingClientRect().width;
        return tw > cw + 1 ? [`${t.id || t.className || "table"} ${Math.round(tw)} px in ${Math.round(cw)} px`] : [];
      });
      return { scroll: doc.scrollWidth, client: doc.clientWidth, wide };
    });
    if (r.scroll > r.client) problems.push(`${path}: page ${r.scroll} px wide in a ${r.client} px window`);
    for (const w of r.wide) problems.push(`${path}: ${w}`);
    if (path === "/security") await page.screenshot({ path: "test-artifacts/responsive-1366-security.png", fullPage: true });
  }
  expect(problems).toEqual([]);
  await page.context().close();
}, 120_000);

test.skipIf(!chromiumReady)("at 390 px no page scrolls sideways and every navigation item is on screen", async () => {
  const page = await signedIn(390);
  const labels = await page.locator(".mainnav a").allInnerTexts();
  // the SSO administration page is named for what it is, not "Sign-in"
  expect(labels).toContain("Single sign-on");
  expect(labels).not.toContain("Sign-in");
  const problems: string[] = await navOffScreen(page, 390);
  for (const path of PAGES()) {
    await open(page, path);
    const r = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    if (r.scroll > r.client) problems.push(`${path}: page ${r.scroll} px wide in a ${r.client} px window`);
    await page.screenshot({ path: `test-artifacts/responsive-390-${path.replace(/\W+/g, "_")}.png` });
  }
  expect(problems).toEqual([]);
  await page.context().close();
}, 120_000);
