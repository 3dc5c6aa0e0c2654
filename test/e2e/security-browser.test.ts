/**
 * The Security page in a real browser: Debian's chromium driven by playwright-core against the
 * real server (TLS, HTTP/2) and a real PostgreSQL. A user signs in, opens Security from the main
 * navigation, sees a host's score and a violation, and acknowledges it through the htmx form.
 */
import { HostScope } from "../../src/auth/host-scope.ts";
import { findHost } from "../../src/store/postgres/queries-console.ts";
import { expect, test } from "bun:test";
import { consoleInBrowser, signIn, watchedPage } from "../support/browser.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { recordScan } from "../../src/security/posture.ts";
import { scoreHost } from "../../src/security/score.ts";

const PASSWORD = "Amber-Lantern-Quartz-4";
const web = consoleInBrowser();
const chromiumReady = web.ready;


test.skipIf(!chromiumReady)("sign in, open Security, see a host's score and a violation, acknowledge it", async () => {
  const { sql } = web.srv.db;
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values ('web-7', ${Buffer.alloc(32, 7)}, ${["group:web"]}, now()) returning id`;
  const agentId = Number(a!.id);
  await recordScan(sql, agentId, new Date(Date.now() - 600_000), {
    results: [
      { id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "PermitRootLogin yes" },
      { id: "smx.files.passwd", status: "pass", severity: 6, category: "files", observed: "0644 0:0" },
    ],
  });
  const score = (await scoreHost(sql, (await findHost(sql, HostScope.system("test"), agentId))!)).score;
  const role = await createRole(sql, "security-officer", "", ["hosts.view", "compliance.view", "compliance.exceptions.edit"], []);
  const userId = await createUser(sql, { username: "sofia", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);

  const { ctx, page, problems } = await watchedPage(web.browser);

  await signIn(page, web.srv.url, "sofia", PASSWORD);
  await page.click('.mainnav a:has-text("Security")');
  await page.waitForURL(/\/security$/);

  const hostRow = page.locator(`#security-hosts tr[data-host="${agentId}"]`);
  await hostRow.waitFor();
  expect(await hostRow.locator(".score-value").innerText()).toBe(String(score));
  await hostRow.locator("summary").click(); // the breakdown opens
  expect(await hostRow.locator('tr[data-category="authentication"]').isVisible()).toBe(true);

  const [v] = await sql`select id from cis_violations where agent_id = ${agentId} and control_id = 'smx.ssh.root-login'`;
  const row = page.locator(`#violation-${v!.id}`);
  expect(await row.innerText()).toContain("SSH refuses direct root logins");
  await row.locator("input[name=note]").fill("jump host only, tracked in SEC-12");
  await row.locator("button:has-text('Acknowledge')").click();
  await page.locator(`#violation-${v!.id} .badge:has-text("acknowledged")`).waitFor({ timeout: 5000 });
  expect(await page.locator(`#violation-${v!.id}`).innerText()).toContain(`by sofia (${userId}): jump host only, tracked in SEC-12`);
  await page.screenshot({ path: "test-artifacts/security-acknowledged.png", fullPage: true });

  const [after] = await sql`select acknowledged_by, ack_note from cis_violations where id = ${v!.id}`;
  expect(after).toEqual({ acknowledged_by: `sofia (${userId})`, ack_note: "jump host only, tracked in SEC-12" });
  expect(problems).toEqual([]);
  await ctx.close();
}, 60_000);
