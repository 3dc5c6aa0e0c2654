import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../../support/db.ts";
import { audit, verifyAuditChain } from "../../../src/audit/audit.ts";
import { createUser, enableTotp } from "../../../src/auth/users.ts";
import { newTotpSecret, totp, totpStep } from "../../../src/auth/totp.ts";
import { DEFAULT_SETTINGS } from "../../../src/settings/console-settings.ts";
import { createSecretBox } from "../../../src/auth/secret-box.ts";
import { randomBytes } from "node:crypto";
import { breakGlassSignIn, localLoginGate } from "../../../src/auth/sso/break-glass.ts";
import { clearAccountThrottle } from "../../../src/auth/throttle.ts";
import type { SsoPolicy } from "../../../src/auth/sso/types.ts";

const PW = "Correct-Horse-9-Battery";
const enforced: SsoPolicy = { enforced: true, mfa: "trust-idp", requireMfa: false };
const req = { ip: "198.51.100.4", userAgent: "break-glass-test" };
let db: TestDb;
let secret: string;
const box = createSecretBox(randomBytes(32));

beforeAll(async () => {
  db = await testDatabase(2);
  secret = newTotpSecret();
  const glass = await createUser(db.sql, { username: "glass", password: PW, roleIds: [] }, DEFAULT_SETTINGS.password);
  await db.sql`update console_users set break_glass = true where id = ${glass}`;
  await enableTotp(db.sql, box, glass, secret, totpStep(Date.now()) - 2);
  const noTotp = await createUser(db.sql, { username: "glass-no-totp", password: PW, roleIds: [] }, DEFAULT_SETTINGS.password);
  await db.sql`update console_users set break_glass = true where id = ${noTotp}`;
  await createUser(db.sql, { username: "plain", password: PW, roleIds: [] }, DEFAULT_SETTINGS.password);
}, 30_000);
afterAll(() => db.drop());

const signIn = (username: string, password: string, code: string, policy = enforced) =>
  breakGlassSignIn(db.sql, box, (e) => audit(db.sql, e), policy, DEFAULT_SETTINGS.password, { username, password, totp: code }, req);
const lastEvent = async () => (await db.sql`select category, action, success, actor_name, ip, details from audit_log order by id desc limit 1`)[0];

describe("break-glass local sign-in while SSO is enforced", () => {
  test("the gate: off when SSO is not enforced; flagged accounts with TOTP only when it is", () => {
    expect(localLoginGate({ ...enforced, enforced: false }, { totp_enabled_at: null })).toEqual({ allowed: true, breakGlass: false });
    expect(localLoginGate(enforced, { totp_enabled_at: null, break_glass: false })).toEqual({ allowed: false, reason: "sso_enforced" });
    expect(localLoginGate(enforced, { totp_enabled_at: null, break_glass: true })).toEqual({ allowed: false, reason: "break_glass_needs_totp" });
    expect(localLoginGate(enforced, { totp_enabled_at: new Date(), break_glass: true })).toEqual({ allowed: true, breakGlass: true });
  });

  test("an unflagged account is refused even with the right password, as a security event", async () => {
    expect(await signIn("plain", PW, "000000")).toEqual({ ok: false, reason: "sso_enforced" });
    expect(await lastEvent()).toMatchObject({ category: "security_event", action: "break_glass.refused", success: false, details: { reason: "sso_enforced" } });
  });

  test("a flagged account without TOTP is refused", async () => {
    expect(await signIn("glass-no-totp", PW, "123456")).toEqual({ ok: false, reason: "break_glass_needs_totp" });
  });

  test("wrong password, missing or wrong TOTP and backup-code-shaped input are refused", async () => {
    expect(await signIn("glass", "wrong", totp(secret))).toMatchObject({ ok: false, reason: "bad_password" });
    expect(await signIn("glass", PW, "")).toMatchObject({ ok: false, reason: "bad_totp" });
    expect(await signIn("glass", PW, "abcde-fghjk")).toMatchObject({ ok: false, reason: "bad_totp" });
    const wrong = totp(secret) === "000000" ? "111111" : "000000";
    expect(await signIn("glass", PW, wrong)).toMatchObject({ ok: false, reason: "bad_totp" });
    expect(await lastEvent()).toMatchObject({ category: "security_event", action: "break_glass.refused", actor_name: "glass" });
    // a fifth wrong attempt from this address fills the (account, address) counter; the sixth is refused unchecked
    expect(await signIn("glass", PW, wrong)).toMatchObject({ ok: false, reason: "bad_totp" });
    expect(await signIn("glass", PW, totp(secret))).toEqual({ ok: false, reason: "throttled" });
    await clearAccountThrottle(db.sql, "glass");
  });

  test("password + TOTP signs in and raises a security event; the same code does not work twice", async () => {
    const code = totp(secret);
    const r = await signIn("glass", PW, code);
    expect(r).toMatchObject({ ok: true, breakGlass: true });
    expect(await lastEvent()).toMatchObject({ category: "security_event", action: "break_glass.used", success: true, actor_name: "glass", ip: req.ip, details: { factor: "totp" } });
    expect(await signIn("glass", PW, code)).toMatchObject({ ok: false, reason: "bad_totp" });
    expect((await verifyAuditChain(db.sql)).ok).toBe(true);
  });

  test("without enforcement the normal password login applies", async () => {
    expect(await signIn("plain", PW, "", { ...enforced, enforced: false })).toMatchObject({ ok: true, breakGlass: false });
  });
});
