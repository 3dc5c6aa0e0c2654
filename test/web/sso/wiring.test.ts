/** The console's password login while SSO is enforced: break-glass accounts only, TOTP only, audited. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { consoleHarness, TEST_IP_HEADER, TEST_PASSWORD, type ConsoleHarness } from "../../support/console-app.ts";
import { PRE_CSRF_COOKIE } from "../../../src/web/guard.ts";
import { SESSION_COOKIE } from "../../../src/auth/session.ts";
import { enableTotp, newBackupCodes } from "../../../src/auth/users.ts";
import { newTotpSecret, totp, totpStep } from "../../../src/auth/totp.ts";
import { saveSsoPolicy, loadSsoPolicy } from "../../../src/auth/sso/policy.ts";

let h: ConsoleHarness;
let secret: string;
let backup: string[];

beforeAll(async () => {
  h = await consoleHarness();
  await h.userWithRole("viewer", "plain");
  const glass = await h.userWithRole("admin", "glass");
  await h.db.sql`update console_users set break_glass = true where id = ${glass.userId}`;
  secret = newTotpSecret();
  await enableTotp(h.db.sql, h.services.secrets, glass.userId, secret, totpStep(Date.now()) - 2);
  backup = await newBackupCodes(h.db.sql, glass.userId);
}, 30_000);
afterAll(() => h.close());

async function login(username: string) {
  const page = await h.send("/login");
  const pre = /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie")!)![1]!;
  const r = await h.send("/login", { form: { username, password: TEST_PASSWORD, _csrf: pre }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}`, [TEST_IP_HEADER]: "203.0.113.9" } });
  return { r, token: /sm_session=([^;]+)/.exec(r.headers.get("set-cookie") ?? "")?.[1] };
}

async function totpStepWith(token: string, code: string) {
  const [s] = await h.db.sql`select csrf_token from console_sessions where token_hash = sha256(${token}::bytea)`;
  return h.send("/login/totp", { form: { code }, headers: { cookie: `${SESSION_COOKIE}=${token}`, "x-csrf-token": s!.csrf_token } });
}

const security = async () => (await h.db.sql`select action, actor_name, success, details from audit_log where category = 'security_event' order by id`)
  .map((r) => `${r.action}:${r.actor_name}:${r.success}:${r.details.reason ?? r.details.factor}`);

test("SSO policy defaults and storage", async () => {
  expect(await loadSsoPolicy(h.db.sql)).toEqual({ enforced: false, mfa: "trust-idp", requireMfa: false });
  await expect(saveSsoPolicy(h.db.sql, { enforced: true, mfa: "bogus" as never, requireMfa: false })).rejects.toThrow(/mfa must be/);
});

test("not enforced: local passwords work as before", async () => {
  const { r } = await login("plain");
  expect(r.headers.get("location")).toBe("/hosts");
});

test("enforced: an unflagged account is refused after a correct password; a break-glass account needs TOTP, not a backup code; each use is a security event", async () => {
  await saveSsoPolicy(h.db.sql, { enforced: true, mfa: "trust-idp", requireMfa: false });
  const refused = await login("plain");
  expect(refused.r.status).toBe(403);
  expect(await refused.r.text()).toContain("identity provider");
  expect(refused.token).toBeUndefined();

  const viaBackup = await login("glass");
  expect(viaBackup.r.headers.get("location")).toBe("/login/totp");
  expect((await totpStepWith(viaBackup.token!, backup[0]!)).status).toBe(403);
  expect((await h.send("/hosts", { headers: { cookie: `${SESSION_COOKIE}=${viaBackup.token}` } })).status).toBe(303);

  const ok = await login("glass");
  const done = await totpStepWith(ok.token!, totp(secret));
  expect(done.headers.get("location")).toBe("/hosts");
  expect((await h.send("/hosts", { headers: { cookie: `${SESSION_COOKIE}=${ok.token}` } })).status).toBe(200);

  expect(await security()).toEqual([
    "break_glass.refused:plain:false:sso_enforced",
    "break_glass.refused:glass:false:backup_code_not_allowed",
    "break_glass.used:glass:true:totp",
  ]);
});
