/**
 * Fleet inventory in a real browser (chromium via playwright-core, the real server over TLS and
 * PostgreSQL): a user scoped to group:web searches for a package with a version constraint and
 * sees exactly the hosts of its scope that satisfy it (dpkg and rpm orderings), a bad operator
 * shows its message, and the host page's package list is filtered on the server.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { type Browser, type Page } from "playwright-core";
import { requireComponent } from "../support/ci.ts";
import { CHROMIUM, launchChromium } from "../support/browser.ts";
import { startConsoleServer, type ConsoleServer } from "../support/console-server.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

const PASSWORD = "Lantern-Meadow-Quartz-7";
const haveChromium = requireComponent(existsSync(CHROMIUM), "Debian chromium (/usr/bin/chromium, apt-get install chromium)");

let srv: ConsoleServer;
let browser: Browser;
let page: Page;
let web1 = 0;

beforeAll(async () => {
  if (!haveChromium) return;
  mkdirSync("test-artifacts", { recursive: true });
  srv = await startConsoleServer();
  browser = await launchChromium(CHROMIUM);
  const { sql } = srv.db;
  const host = async (name: string, key: number, tags: string[], os: Record<string, string>, packages: Array<[string, string]>) => {
    const [a] = await sql`insert into agents (hostname, public_key, tags, agent_version, transport, os, arch, last_seen)
      values (${name}, ${Buffer.alloc(32, key)}, ${tags}, '0.1.0', 'wss', 'linux', 'x64', now()) returning id`;
    await sql`insert into inventory_current (agent_id, collected_at, hash, data) values (${a!.id}, now(), ${Buffer.alloc(32, key)}, ${sql.json({
      os, packages: packages.map(([name, version]) => ({ name, version, arch: "amd64" })),
    } as never)})`;
    return Number(a!.id);
  };
  const debian = { id: "debian", name: "Debian GNU/Linux", version: "12", prettyName: "Debian GNU/Linux 12 (bookworm)" };
  const rocky = { id: "rocky", name: "Rocky Linux", version: "9.3", prettyName: "Rocky Linux 9.3 (Blue Onyx)" };
  const filler = Array.from({ length: 700 }, (_, i): [string, string] => [`lib-filler-${String(i).padStart(3, "0")}`, "1.0-1"]);
  web1 = await host("web-1", 1, ["group:web"], debian, [["nginx", "1.22.1-9"], ["openssl", "3.0.11-1~deb12u2"], ["libssl3", "3.0.11-1~deb12u2"], ...filler]);
  await host("web-2", 2, ["group:web"], rocky, [["nginx", "1.20.1-14.el9"], ["openssl", "3.0.7-27.el9"]]);
  await host("web-3", 3, ["group:web"], debian, [["nginx", "1.22~rc1-1"]]); // a release candidate: older than 1.22
  await host("db-hidden-1", 4, ["group:db"], debian, [["nginx", "1.24.0-1"]]);
  const role = await createRole(sql, "web-inventory", "", ["hosts.view", "inventory.view"], ["group:web"]);
  await createUser(sql, { username: "ines", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  page = await ctx.newPage();
  await page.goto(`${srv.url}/login`);
  await page.fill("#login-form input[name=username]", "ines");
  await page.fill("#login-form input[name=password]", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForURL(/\/hosts$/);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

test.skipIf(!haveChromium)("a scoped user searches a package with a version constraint and sees the right hosts", async () => {
  await page.click('nav.mainnav a:text-is("Inventory")');
  await page.waitForURL(/\/inventory$/);
  await page.fill("#inventory-q", "nginx >= 1.22");
  await page.press("#inventory-q", "Enter");
  await page.waitForURL(/q=nginx/);
  await page.locator("#inventory-table").waitFor({ timeout: 10_000 });
  const rows = await page.locator("#inventory-table tbody tr").allInnerTexts();
  expect(rows.map((r) => r.replace(/\s+/g, " ").trim())).toEqual(["web-1 Debian GNU/Linux 12 (bookworm) nginx 1.22.1-9 (amd64)"]);
  expect(await page.locator("#inventory-count").innerText()).toBe("1");
  expect(await page.locator("#inventory-results").innerText()).toContain("of 3 hosts");
  expect(await page.content()).not.toContain("db-hidden-1");

  // the rpm host's 3.0.7-27.el9 is older than 3.0.11; the dpkg host's 3.0.11-1~deb12u2 is not
  await page.fill("#inventory-q", "openssl < 3.0.11");
  await page.press("#inventory-q", "Enter");
  await page.locator("#inventory-table tbody tr", { hasText: "web-2" }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#inventory-table tbody tr").allInnerTexts()).toEqual([expect.stringContaining("openssl 3.0.7-27.el9")]);

  // a bad operator says what is wrong
  await page.fill("#inventory-q", "nginx => 1.22");
  await page.press("#inventory-q", "Enter");
  await page.locator("#inventory-problem").waitFor({ timeout: 10_000 });
  expect(await page.locator("#inventory-problem").innerText()).toContain('Unknown operator "=>"');
  await page.screenshot({ path: "test-artifacts/inventory-search.png", fullPage: true });
}, 60_000);

test.skipIf(!haveChromium)("the host page's package list is searched on the server, with a showing-N-of-M line", async () => {
  await page.goto(`${srv.url}/hosts/${web1}`);
  const count = page.locator("#host-packages-count");
  expect(await count.innerText()).toBe("Showing 500 of 703 installed packages. Search by name to see the others.");
  await page.fill("#host-packages-search", "ssl");
  await page.locator("#host-packages-count", { hasText: "matching" }).waitFor({ timeout: 10_000 });
  expect(await count.innerText()).toBe("Showing 2 of 2 packages matching “ssl” (703 installed).");
  const rows = await page.locator("#host-packages-table tbody tr").allInnerTexts();
  expect(rows.map((r) => r.split("\t")[0])).toEqual(["libssl3", "openssl"]);
  // a package beyond the first 500 is found too: no silent cut
  await page.fill("#host-packages-search", "filler-699");
  await page.locator("#host-packages-count", { hasText: "filler-699" }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#host-packages-table tbody tr").allInnerTexts()).toEqual([expect.stringContaining("lib-filler-699")]);
  await page.screenshot({ path: "test-artifacts/inventory-host-packages.png", fullPage: true });
}, 60_000);
