/** The audit page: category filter, chain export, verification summary, and the on-demand purge. */
import { test, expect, afterAll } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { consoleHarness } from "../support/console-app.ts";
import { audit } from "../../src/audit/audit.ts";
import { auditKeys } from "../../src/audit/keys.ts";
import { verifyChainExport } from "../../src/audit/chain-export.ts";
import { PURGE_PHRASE } from "../../src/web/audit/routes.ts";

const h = await consoleHarness();
afterAll(() => h.close());

const ev = (category: "authentication" | "config_change", action: string) => ({
  actor: { type: "user" as const, name: "zed" }, ip: "198.51.100.1", userAgent: "UA", category, action, success: true,
});

test("the audit page filters by category, and refuses an unknown one", async () => {
  await audit(h.db.sql, ev("authentication", "login.zed"));
  await audit(h.db.sql, ev("config_change", "settings.zed"));
  const admin = await h.userWithRole("admin");
  const page = await (await h.send("/audit?category=config_change&user=zed", { session: admin })).text();
  expect(page).toContain("settings.zed");
  expect(page).not.toContain("login.zed");
  expect(page).toContain('<option value="config_change" selected>');
  const all = await (await h.send("/audit?user=zed", { session: admin })).text();
  expect(all).toContain("login.zed");
  const bad = await h.send("/audit?category=nope", { session: admin });
  expect(await bad.text()).toContain("Category is one of");
  const csv = await (await h.send("/audit/export.csv?category=authentication&user=zed", { session: admin })).text();
  expect(csv).toContain("login.zed");
  expect(csv).not.toContain("settings.zed");
});

test("the chain export from the console verifies offline with the public key", async () => {
  const admin = await h.userWithRole("admin");
  const res = await h.send("/audit/export.chain.ndjson", { session: admin });
  expect(res.status).toBe(200);
  const file = join(h.dataDir, "chain.ndjson");
  writeFileSync(file, await res.text());
  expect(await verifyChainExport(file, auditKeys().publicKeyPem)).toMatchObject({ ok: true });
  const v = await (await h.send("/audit/verify", { method: "POST", session: admin })).text();
  expect(v).toContain("Hash chain intact");
});

test("the purge needs audit.purge and the typed confirmation, deletes only past the retention, and is audited with IP and UA", async () => {
  const auditor = await h.userWithRole("auditor");
  expect((await h.send("/audit/purge", { form: { confirm: PURGE_PHRASE }, session: auditor })).status).toBe(403);
  const admin = await h.userWithRole("admin");
  const unconfirmed = await h.send("/audit/purge", { form: { confirm: "yes" }, session: admin });
  expect(unconfirmed.status).toBeGreaterThanOrEqual(400);
  expect((await h.db.sql`select count(*)::int as n from audit_log where action = 'audit.purge'`)[0]!.n).toBe(0);
  const before = (await h.db.sql`select count(*)::int as n from audit_log`)[0]!.n;
  const res = await h.send("/audit/purge", { form: { confirm: PURGE_PHRASE }, session: admin, headers: { "user-agent": "PurgeUA/1", "x-test-client-ip": "203.0.113.50" } });
  expect(res.status).toBe(200);
  expect(await res.text()).toContain("0 records older than the retention period deleted");
  const [rec] = await h.db.sql`select actor_name, ip, user_agent, category, details from audit_log where action = 'audit.purge'`;
  expect(rec).toMatchObject({ actor_name: admin.username, ip: "203.0.113.50", user_agent: "PurgeUA/1", category: "config_change" });
  expect(rec!.details).toMatchObject({ deleted: 0, dangerous: true, confirmed: true });
  // nothing recent was deleted
  expect((await h.db.sql`select count(*)::int as n from audit_log`)[0]!.n).toBe(before + 1);
});
