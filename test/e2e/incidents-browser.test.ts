/**
 * Metric-threshold incident signals with the default thresholds (SERVERMIND_INCIDENT_THRESHOLDS
 * unset, as after npm start), in a real browser against the real server and PostgreSQL: a host
 * whose CPU and root file system ran hot while files changed shows one incident on its page whose
 * timeline holds the breaches, the labelled disk series included.
 */
import { expect, test } from "bun:test";
import { consoleInBrowser, signIn, watchedPage } from "../support/browser.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

const PASSWORD = "Saffron-Glacier-Anchor-8";
const web = consoleInBrowser();
const chromiumReady = web.ready;


test.skipIf(!chromiumReady)("CPU and disk above the default thresholds become signals of the host's incident", async () => {
  const { sql } = web.srv.db;
  const [a] = await sql`insert into agents (hostname, public_key, last_seen) values ('hot-1', ${Buffer.alloc(32, 11)}, now()) returning id`;
  const id = Number(a!.id);
  const names = ["cpu.usage_pct", "mem.used_pct", 'disk.used_pct{mount="/"}', 'disk.used_pct{mount="/boot"}'];
  const sids: number[] = [];
  for (const n of names) sids.push(Number((await sql`insert into metric_series (agent_id, name) values (${id}, ${n}) returning id`)[0]!.id));
  const now = Date.now();
  // 10 minutes at 10 s: CPU 99 % and / 97 % full for the last 4 minutes; memory and /boot calm
  for (let f = 0; f < 60; f++) {
    const t0 = now - 10 * 60_000 + f * 10_000;
    const hot = t0 > now - 4 * 60_000;
    await sql`insert into metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals) values (${id}, ${f}, ${new Date(t0)}, ${new Date(t0)},
      ${[0]}, ${sids}, ${[hot ? 99 : 30, 50, hot ? 97 : 60, 40]})`;
  }
  await sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data)
    values (${id}, 1, ${new Date(now - 3 * 60_000)}, 'fim.modify', 5, '/etc/cron.d/miner', ${sql.json({ changes: ["content"] })})`;
  const role = await createRole(sql, "responder", "", ["hosts.view", "compliance.view", "security.events.view"], []);
  await createUser(sql, { username: "ivan", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);

  const { ctx, page } = await watchedPage(web.browser);
  await signIn(page, web.srv.url, "ivan", PASSWORD);
  await page.goto(`${web.srv.url}/hosts/${id}`);
  const incident = page.locator(`#incidents-${id} article.incident`);
  await incident.first().waitFor({ timeout: 10_000 });
  expect(await incident.count()).toBe(1);
  const metric = await incident.locator('li[data-kind="metric"]').allTextContents(); // the timeline is folded: text, not rendered text
  expect(metric.some((t) => t.includes("cpu.usage_pct above 95 (max 99)"))).toBe(true);
  expect(metric.some((t) => t.includes('disk.used_pct{mount="/"} above 90 (max 97)'))).toBe(true);
  expect(metric.some((t) => t.includes("mem.used_pct") || t.includes("/boot"))).toBe(false);
  expect(await incident.locator('li[data-kind="fim"]').count()).toBe(1);
  await page.screenshot({ path: "test-artifacts/incident-thresholds.png", fullPage: true });
  await ctx.close();
}, 60_000);
