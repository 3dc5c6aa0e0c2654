/**
 * Host page › Security in a real browser (chromium via playwright-core, the real server and
 * PostgreSQL): a dry run shows its diff, Apply fixes the file through the agent's real Control
 * executor on a prepared root, and the CIS table and the score follow at once (no Scan now, no
 * reload, no 15-minute score job); Roll back restores the file and the table says "fail" again.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { consoleInBrowser, signIn, watchedPage } from "../support/browser.ts";
import { controlChannel } from "../support/control-channel.ts";
import { makeCisRoot } from "../support/cis-root.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { recordScan } from "../../src/security/posture.ts";
import { scoreHost } from "../../src/security/score.ts";
import { findHost } from "../../src/store/postgres/queries-console.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { scanRoot } from "../../agent/monitor/cis/scan.ts";

const PASSWORD = "Ochre-Falcon-Harbor-3";
const root = makeCisRoot("bad");
const snapshotDir = mkdtempSync(join(tmpdir(), "servermind-snapshots-"));
const web = consoleInBrowser({ security: controlChannel(root, snapshotDir) });
const chromiumReady = web.ready;

afterAll(() => [root, snapshotDir].forEach((d) => rmSync(d, { recursive: true, force: true })));

test.skipIf(!chromiumReady)("dry run, apply and roll back from the host page show their results, and the CIS table and score follow at once", async () => {
  const { sql } = web.srv.db;
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values ('web-9', ${Buffer.alloc(32, 9)}, ${["group:web"]}, now()) returning id`;
  const agentId = Number(a!.id);
  // the scan Monitor would ship: the real CIS checks on the prepared root
  const report = scanRoot(root);
  await recordScan(sql, agentId, new Date(Date.now() - 60_000), { os: report.os, results: report.results });
  const host = (await findHost(sql, HostScope.system("test"), agentId))!;
  const before = (await scoreHost(sql, host)).score;
  const role = await createRole(sql, "remediator", "", ["hosts.view", "compliance.view", "compliance.remediate", "fim.view"], []);
  await createUser(sql, { username: "rita", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);

  const { ctx, page, problems } = await watchedPage(web.browser, { watch: /Content Security Policy|Refused to|targetError|error/i });
  await signIn(page, web.srv.url, "rita", PASSWORD);
  await page.goto(`${web.srv.url}/hosts/${agentId}`);

  const row = page.locator('#host-security tr[data-control="smx.files.passwd"]');
  await row.waitFor({ timeout: 10_000 });
  expect(await row.locator(".badge").innerText()).toBe("fail");
  expect(Number(await page.locator(`#security-score-${agentId} .score-value`).innerText())).toBe(before);

  // dry run: the diff appears, nothing changes
  await row.locator("input[type=checkbox]").check();
  await page.click("#dry-run");
  await page.locator("#remediation-result", { hasText: "Dry run: nothing was changed." }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#remediation-result").innerText()).toContain("/etc/passwd");
  expect(statSync(join(root, "etc/passwd")).mode & 0o777).toBe(0o666);

  // apply with the typed confirmation and the password
  const apply = page.locator("#remediation-apply");
  await apply.locator("input[name=confirm]").fill("remediate web-9");
  await apply.locator("input[name=reauth]").fill(PASSWORD);
  await apply.locator("button[type=submit]").click();
  await page.locator("#remediation-result", { hasText: "Applied; snapshot" }).waitFor({ timeout: 10_000 });
  expect(statSync(join(root, "etc/passwd")).mode & 0o777).toBe(0o644);
  // the table and the score follow without Scan now or a reload
  await page.locator('#host-security tr[data-control="smx.files.passwd"] .badge', { hasText: "pass" }).waitFor({ timeout: 5000 });
  const after = Number(await page.locator(`#security-score-${agentId} .score-value`).innerText());
  expect(after).toBeGreaterThan(before);
  const [stored] = await sql`select score from security_scores where agent_id = ${agentId} order by ts desc limit 1`;
  expect(Number(stored!.score)).toBe(after);
  await page.screenshot({ path: "test-artifacts/remediation-applied.png", fullPage: true });

  // roll back from the applied remediations: the result shows, the file and the verdict return
  const rollback = page.locator("#remediation-rollbacks details.danger-zone").first();
  await rollback.locator("summary").click();
  await rollback.locator("input[name=confirm]").fill("rollback web-9");
  await rollback.locator("button[type=submit]").click();
  await page.locator("#remediation-result", { hasText: "Rolled back: the files of snapshot" }).waitFor({ timeout: 10_000 });
  expect(statSync(join(root, "etc/passwd")).mode & 0o777).toBe(0o666);
  await page.locator('#host-security tr[data-control="smx.files.passwd"] .badge', { hasText: "fail" }).waitFor({ timeout: 5000 });
  await page.locator("#remediation-rollbacks .badge", { hasText: "rolled back" }).waitFor({ timeout: 5000 });

  // the file change Monitor reports for it is ServerMind's own, not an unexplained one
  await sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data)
    values (${agentId}, 1, now(), 'fim.permission', 8, '/etc/passwd', ${sql.json({ changes: ["mode"], detectedBy: "realtime" })})`;
  await page.click('#host-security button:has-text("Reload")');
  await page.locator(`#fim-${agentId} .own-change`, { hasText: "ServerMind: remediation rollback by" }).waitFor({ timeout: 5000 });
  expect(problems).toEqual([]);
  await ctx.close();
}, 90_000);
