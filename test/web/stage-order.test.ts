/**
 * The sign-in stages are all passed, in order: a user who must enroll an authenticator AND whose
 * password has expired enrolls first, then changes the password, and only then reaches the
 * console. Completing one stage must not skip the next.
 */
import { afterAll, expect, test } from "bun:test";
import { consoleHarness, TEST_PASSWORD } from "../support/console-app.ts";
import { PRE_CSRF_COOKIE } from "../../src/web/guard.ts";
import { SESSION_COOKIE } from "../../src/auth/session.ts";
import { totp } from "../../src/auth/totp.ts";

const h = await consoleHarness();
afterAll(() => h.close());

const lastSignIn = async (id: number) => ((await h.db.sql`select last_login_at from console_users where id = ${id}`)[0]!.last_login_at as Date | null);

/** Signs in with the password: the session's cookie and CSRF token. */
async function signIn(username: string): Promise<{ cookie: string; csrf: string }> {
  const page = await h.send("/login");
  const pre = /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie")!)![1]!;
  const r = await h.send("/login", { form: { username, password: TEST_PASSWORD, _csrf: pre }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}` } });
  expect(r.headers.get("location")).toBe("/account/mfa");
  const token = /sm_session=([^;]+)/.exec(r.headers.get("set-cookie") ?? "")![1]!;
  const [s] = await h.db.sql`select csrf_token from console_sessions where token_hash = sha256(${token}::bytea)`;
  return { cookie: `${SESSION_COOKIE}=${token}`, csrf: s!.csrf_token };
}

test("enrolling TOTP does not skip the change of an expired password", async () => {
  const u = await h.userWithRole("admin", "expired-admin");
  await h.db.sql`update console_users set password_changed_at = now() - interval '100 days' where id = ${u.userId}`;
  await h.services.settings.set("password", { ...(await h.services.settings.get()).password, expiryDays: 90 });
  const { cookie, csrf } = await signIn("expired-admin");
  const enroll = await (await h.send("/account/mfa", { headers: { cookie } })).text();
  const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enroll)![1]!.replace(/ /g, "");
  expect((await h.send("/account/mfa", { form: { code: totp(secret) }, headers: { cookie, "x-csrf-token": csrf } })).status).toBe(200);
  // the expired password comes next, before anything else; the sign-in is not complete yet
  expect((await h.send("/hosts", { headers: { cookie } })).headers.get("location")).toBe("/account/password");
  expect((await lastSignIn(u.userId))).toBeNull();
  const changed = await h.send("/account/password", { form: { current: TEST_PASSWORD, password: "Fresh-Meadow-Stone-5", password2: "Fresh-Meadow-Stone-5" }, headers: { cookie, "x-csrf-token": csrf } });
  expect(changed.headers.get("location")).toBe("/account?password=changed");
  expect((await h.send("/hosts", { headers: { cookie } })).status).toBe(200);
  expect((await lastSignIn(u.userId))).not.toBeNull(); // the Users page's "last sign-in"
});

test("a sign-in that ends with enrolling an authenticator (as the first administrator's does) counts as a sign-in", async () => {
  const u = await h.userWithRole("admin", "enrolling-admin");
  const { cookie, csrf } = await signIn("enrolling-admin");
  const enroll = await (await h.send("/account/mfa", { headers: { cookie } })).text();
  const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enroll)![1]!.replace(/ /g, "");
  expect(await lastSignIn(u.userId)).toBeNull();
  expect((await h.send("/account/mfa", { form: { code: totp(secret) }, headers: { cookie, "x-csrf-token": csrf } })).status).toBe(200);
  expect((await h.send("/hosts", { headers: { cookie } })).status).toBe(200);
  expect(await lastSignIn(u.userId)).not.toBeNull();
});
