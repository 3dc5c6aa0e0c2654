import { test, expect, afterAll } from "bun:test";
import { consoleHarness, TEST_PASSWORD, TEST_IP_HEADER } from "../support/console-app.ts";
import { PRE_CSRF_COOKIE } from "../../src/web/guard.ts";
import { SESSION_COOKIE } from "../../src/auth/session.ts";
import { totp } from "../../src/auth/totp.ts";
import { CSP } from "../../src/web/respond.ts";

const h = await consoleHarness();
afterAll(() => h.close());

test("state-changing requests without the session's CSRF token are refused and audited", async () => {
  const admin = await h.userWithRole("admin");
  const noToken = await h.send("/enrollment/tokens", { session: admin, form: { label: "x", hours: "1" }, csrf: null });
  expect(noToken.status).toBe(403);
  expect(await noToken.text()).toContain("This form has expired");
  const wrong = await h.send("/enrollment/tokens", { session: admin, form: { label: "x", hours: "1" }, csrf: "A".repeat(32) });
  expect(wrong.status).toBe(403);
  const other = await h.userWithRole("admin");
  const stolen = await h.send("/enrollment/tokens", { session: admin, form: { label: "x", hours: "1" }, csrf: other.csrf });
  expect(stolen.status).toBe(403);
  const [{ n }] = await h.db.sql`select count(*)::int as n from activation_tokens`;
  expect(n).toBe(0);
  expect((await h.db.sql`select count(*)::int as n from audit_log where action = 'csrf.rejected'`)[0]!.n).toBe(3);
  // form field works as well as the header
  const ok = await h.send("/enrollment/tokens", { session: admin, form: { label: "rack 4", hours: "2", _csrf: admin.csrf }, csrf: null });
  expect(ok.status).toBe(200);
  const html = await ok.text();
  expect(html).toMatch(/smt_[A-Za-z0-9_-]{43}/);
  expect(html).toContain("--fingerprint " + "ab".repeat(32));
});

test("pre-login forms need the pre-session CSRF cookie", async () => {
  const page = await h.send("/login");
  expect(page.status).toBe(200);
  const setCookie = page.headers.get("set-cookie")!;
  expect(setCookie).toContain(`${PRE_CSRF_COOKIE}=`);
  expect(setCookie).toContain("HttpOnly");
  expect(setCookie).toContain("Secure");
  expect(setCookie).toContain("SameSite=Strict");
  const pre = /sm_csrf=([^;]+)/.exec(setCookie)![1]!;
  expect(await page.text()).toContain(`name="_csrf" value="${pre}"`);
  const bad = await h.send("/login", { form: { username: "x", password: "y" }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}` } });
  expect(bad.status).toBe(403);
  const good = await h.send("/login", { form: { username: "x", password: "y", _csrf: pre }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}` } });
  expect(good.status).toBe(401);
  expect(await good.text()).toContain("Wrong username or password.");
});

test("every response carries a CSP without inline script and the security headers", async () => {
  const admin = await h.userWithRole("admin");
  for (const p of ["/hosts", "/login", "/assets/console.js"]) {
    const r = await h.send(p, { session: admin });
    expect(r.headers.get("content-security-policy")).toBe(CSP);
    expect(r.headers.get("x-frame-options")).toBe("DENY");
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  }
  expect(CSP).toContain("script-src 'self'");
  expect(CSP).not.toContain("unsafe-inline");
  const page = await (await h.send("/hosts", { session: admin })).text();
  expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script elements
  expect(page).not.toMatch(/\son[a-z]+=/i); // no inline event handlers
  expect(page).not.toMatch(/\sstyle=/i); // no inline styles
});

test("user-supplied values are escaped in pages (host names, tags, log lines, user names)", async () => {
  const admin = await h.userWithRole("admin");
  const evil = `<img src=x onerror=alert(1)>"'`;
  const [{ id }] = await h.db.sql`insert into agents (hostname, public_key, tags, last_seen) values (${evil}, ${Buffer.alloc(32, 9)}, ${[evil]}, now()) returning id`;
  await h.db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${id}, 1, now(), 3, ${evil}, ${evil})`;
  for (const path of ["/hosts", `/hosts/${id}`, `/hosts/${id}/logs`, "/enrollment"]) {
    const body = await (await h.send(path, { session: admin })).text();
    expect(body).not.toContain("<img src=x");
    expect(body).toContain("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;");
  }
  const created = await h.send("/users", { session: admin, form: { username: "eve", display_name: evil, password: TEST_PASSWORD, password2: TEST_PASSWORD } });
  expect(created.status).toBe(303);
  const list = await (await h.send("/users", { session: admin })).text();
  expect(list).not.toContain("<img src=x");
  expect(list).toContain("&lt;img src=x");
});

test("bad form input gets a clear message, never a crash", async () => {
  const admin = await h.userWithRole("admin");
  const cases: Array<[string, Record<string, string>, string]> = [
    ["/users", { username: "A B", password: "short", password2: "short" }, "Usernames are 2-64 characters"],
    ["/users", { username: "okname", password: "short", password2: "short" }, "Use at least 12 characters (this one has 5)."],
    ["/users", { username: "okname", password: "a", password2: "b" }, "The two passwords differ."],
    ["/enrollment/tokens", { hours: "abc" }, "Validity must be a whole number of hours from 1 to 720."],
    ["/roles", { name: "!", permissions: "nope.nope" }, "Unknown permissions: nope.nope."],
    ["/settings/security", { confirm: "apply security settings", reauth: TEST_PASSWORD, min_length: "x" }, "Minimum length must be a whole number from 8 to 128"],
  ];
  for (const [path, form, msg] of cases) {
    const r = await h.send(path, { session: admin, form, headers: { "hx-request": "true" } });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(await r.text()).toContain(msg.replace(/'/g, "&#39;"));
  }
  const audit = await h.send("/audit?from=yesterday", { session: admin });
  expect(audit.status).toBe(200);
  expect(await audit.text()).toContain("is not a date and time for From");
});

async function login(username: string, password: string, ua = "TestAgent/1") {
  const page = await h.send("/login");
  const pre = /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie")!)![1]!;
  const r = await h.send("/login", { form: { username, password, _csrf: pre }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}`, "user-agent": ua, [TEST_IP_HEADER]: "203.0.113.7" } });
  const token = /sm_session=([^;]+)/.exec(r.headers.get("set-cookie") ?? "")?.[1];
  return { r, token };
}

test("login: password then TOTP, lockout after the policy's failures, all audited with IP and user-agent", async () => {
  const admin = await h.userWithRole("admin", "carol");
  // enroll TOTP for carol through the account pages
  const enroll = await (await h.send("/account/mfa", { session: admin })).text();
  const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enroll)![1]!.replace(/ /g, "");
  const done = await h.send("/account/mfa", { session: admin, form: { code: totp(secret) } });
  expect(done.status).toBe(200);
  const codes = [...(await done.text()).matchAll(/<code>([a-z0-9]{5}-[a-z0-9]{5})<\/code>/g)].map((m) => m[1]!);
  expect(codes.length).toBe(10);

  const first = await login("carol", TEST_PASSWORD);
  expect(first.r.status).toBe(303);
  expect(first.r.headers.get("location")).toBe("/login/totp");
  const cookie = { cookie: `${SESSION_COOKIE}=${first.token}` };
  // the half-signed-in session cannot reach pages
  expect((await h.send("/hosts", { headers: cookie })).headers.get("location")).toBe("/login/totp");
  // and its page does not call it signed in, nor show the console's menu
  const step = await (await h.send("/login/totp", { headers: cookie })).text();
  expect(step).toContain("Signing in as <strong>carol</strong>: one more step.");
  expect(step).not.toContain('class="mainnav"');
  const [sess] = await h.db.sql`select csrf_token from console_sessions where user_id = ${admin.userId} order by id desc limit 1`;
  const wrong = await h.send("/login/totp", { form: { code: "000000" }, headers: { ...cookie, "x-csrf-token": sess!.csrf_token } });
  expect(wrong.status).toBe(401);
  // a backup code works once
  const ok = await h.send("/login/totp", { form: { code: codes[0]! }, headers: { ...cookie, "x-csrf-token": sess!.csrf_token } });
  expect(ok.headers.get("location")).toBe("/hosts");
  expect((await h.send("/hosts", { headers: cookie })).status).toBe(200);
  const again = await login("carol", TEST_PASSWORD);
  const [s2] = await h.db.sql`select csrf_token from console_sessions where user_id = ${admin.userId} order by id desc limit 1`;
  const reuse = await h.send("/login/totp", { form: { code: codes[0]! }, headers: { cookie: `${SESSION_COOKIE}=${again.token}`, "x-csrf-token": s2!.csrf_token } });
  expect(reuse.status).toBe(401);

  // throttle: 5 failures (default policy) from one address pause sign-in for that account from
  // that address; the right password is then refused too, unchecked (test/web/signin.test.ts has more)
  const dave = await h.userWithRole("viewer", "dave");
  for (let i = 0; i < 5; i++) expect((await login("dave", "wrong-password")).r.status).toBe(401);
  const paused = await login("dave", TEST_PASSWORD);
  expect(paused.r.status).toBe(429);
  expect(Number(paused.r.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(await paused.r.text()).toContain("Too many sign-in attempts");
  const rows = await h.db.sql`select action, success, ip, user_agent, actor_name from audit_log where target = 'dave' order by id`;
  expect(rows.filter((r) => r.action === "login.password" && !r.success).length).toBe(5);
  expect(rows.some((r) => r.action === "login.throttled")).toBe(true);
  expect(rows.every((r) => r.ip === "203.0.113.7" && r.user_agent === "TestAgent/1")).toBe(true);
  // an admin unlocks
  expect((await h.send(`/users/${dave.userId}/unlock`, { session: admin, form: {} })).status).toBe(303);
  expect((await login("dave", TEST_PASSWORD)).r.status).toBe(303);
});

test("dangerous operations need the typed phrase and a fresh re-authentication", async () => {
  const admin = await h.userWithRole("admin");
  const victim = await h.userWithRole("viewer", "victim1");
  await h.db.sql`update console_sessions set reauth_at = now() - interval '10 minutes' where id = ${admin.sessionId}`;
  const noPhrase = await h.send(`/users/${victim.userId}/delete`, { session: admin, form: { confirm: "victim", reauth: TEST_PASSWORD } });
  expect(noPhrase.status).toBe(403);
  expect(await noPhrase.text()).toContain("Type victim1 exactly to confirm");
  const noReauth = await h.send(`/users/${victim.userId}/delete`, { session: admin, form: { confirm: "victim1" } });
  expect(noReauth.status).toBe(403);
  expect(await noReauth.text()).toContain("needs you to confirm your identity");
  const badPw = await h.send(`/users/${victim.userId}/delete`, { session: admin, form: { confirm: "victim1", reauth: "nope-nope" } });
  expect(badPw.status).toBe(403);
  expect((await h.db.sql`select count(*)::int as n from console_users where id = ${victim.userId}`)[0]!.n).toBe(1);
  const ok = await h.send(`/users/${victim.userId}/delete`, { session: admin, form: { confirm: "victim1", reauth: TEST_PASSWORD } });
  expect(ok.status).toBe(303);
  expect((await h.db.sql`select count(*)::int as n from console_users where id = ${victim.userId}`)[0]!.n).toBe(0);
  const [rec] = await h.db.sql`select details, success from audit_log where action = 'users.delete' order by id desc limit 1`;
  expect(rec!.details).toMatchObject({ dangerous: true, confirmed: true, reauth: "password" });
  // within five minutes of that, the phrase alone is enough
  const v2 = await h.userWithRole("viewer", "victim2");
  const recent = await h.send(`/users/${v2.userId}/delete`, { session: admin, form: { confirm: "victim2" } });
  expect(recent.status).toBe(303);
  const refused = await h.db.sql`select count(*)::int as n from audit_log where action = 'dangerous.refused'`;
  expect(refused[0]!.n).toBe(3);
});

test("changing a password revokes the user's other sessions; revoked sessions end at the next request", async () => {
  const u = await h.userWithRole("viewer", "frank");
  const other = await login("frank", TEST_PASSWORD);
  expect((await h.send("/hosts", { headers: { cookie: `${SESSION_COOKIE}=${other.token}` } })).status).toBe(200);
  const changed = await h.send("/account/password", { session: u, form: { current: TEST_PASSWORD, password: "Another-Secret-42x", password2: "Another-Secret-42x" } });
  expect(changed.status).toBe(303);
  expect((await h.send("/hosts", { headers: { cookie: `${SESSION_COOKIE}=${other.token}` } })).headers.get("location")).toStartWith("/login");
  expect((await h.send("/hosts", { session: u })).status).toBe(200);
  // history: the old password cannot come back
  const back = await h.send("/account/password", { session: u, form: { current: "Another-Secret-42x", password: TEST_PASSWORD, password2: TEST_PASSWORD } });
  expect(back.status).toBe(422);
  expect(await back.text()).toContain("Choose a password you have not used");
});

test("idle timeout ends a session", async () => {
  const u = await h.userWithRole("viewer");
  await h.db.sql`update console_sessions set last_seen_at = now() - interval '31 minutes' where id = ${u.sessionId}`;
  expect((await h.send("/hosts", { session: u })).status).toBe(303);
  const [s] = await h.db.sql`select revoked_reason from console_sessions where id = ${u.sessionId}`;
  expect(s!.revoked_reason).toBe("idle timeout");
});

test("an expired password must be changed before anything else; MFA can be enforced per role", async () => {
  const u = await h.userWithRole("viewer", "gina");
  await h.db.sql`update console_users set password_changed_at = now() - interval '100 days' where id = ${u.userId}`;
  await h.services.settings.set("password", { ...(await h.services.settings.get()).password, expiryDays: 90 });
  const first = await login("gina", TEST_PASSWORD);
  expect(first.r.headers.get("location")).toBe("/account/password");
  const cookie = `${SESSION_COOKIE}=${first.token}`;
  expect((await h.send("/hosts", { headers: { cookie } })).headers.get("location")).toBe("/account/password");
  const page = await h.send("/account/password", { headers: { cookie } });
  expect(await page.text()).toContain("Your password has expired");
  const [s] = await h.db.sql`select csrf_token from console_sessions where user_id = ${u.userId} order by id desc limit 1`;
  const changed = await h.send("/account/password", { form: { current: TEST_PASSWORD, password: "Fresh-Meadow-Stone-5", password2: "Fresh-Meadow-Stone-5" }, headers: { cookie, "x-csrf-token": s!.csrf_token } });
  expect(changed.headers.get("location")).toBe("/account?password=changed");
  expect((await h.send("/hosts", { headers: { cookie } })).status).toBe(200);
  await h.services.settings.set("password", { ...(await h.services.settings.get()).password, expiryDays: 0 });

  // MFA required for the auditor role only: an auditor must enroll, a viewer need not
  await h.services.settings.set("mfa", { enforce: "roles", roles: ["auditor"], requireForAdmins: true });
  await h.userWithRole("auditor", "hank");
  await h.userWithRole("viewer", "ivy");
  expect((await login("hank", TEST_PASSWORD)).r.headers.get("location")).toBe("/account/mfa");
  expect((await login("ivy", TEST_PASSWORD)).r.headers.get("location")).toBe("/hosts");
  await h.services.settings.set("mfa", { enforce: "off", roles: [], requireForAdmins: true });
});

test("background polls of live tables do not keep an idle session alive", async () => {
  const u = await h.userWithRole("viewer");
  await h.db.sql`update console_sessions set last_seen_at = now() - interval '20 minutes' where id = ${u.sessionId}`;
  const poll = await h.send("/hosts", { session: u, headers: { "hx-request": "true", "hx-target": "fleet-table", "x-console-poll": "1" } });
  expect(poll.status).toBe(200);
  const [a] = await h.db.sql`select last_seen_at < now() - interval '19 minutes' as stale from console_sessions where id = ${u.sessionId}`;
  expect(a!.stale).toBe(true);
  expect((await h.send("/hosts", { session: u })).status).toBe(200);
  const [b] = await h.db.sql`select last_seen_at > now() - interval '1 minute' as fresh from console_sessions where id = ${u.sessionId}`;
  expect(b!.fresh).toBe(true);
});

test("wrong re-authentication counts toward lockout and a lock ends the session", async () => {
  const admin = await h.userWithRole("admin", "judy");
  const target = await h.userWithRole("viewer", "kim");
  await h.db.sql`update console_sessions set reauth_at = null where id = ${admin.sessionId}`;
  for (let i = 0; i < 4; i++) {
    const r = await h.send(`/users/${target.userId}/delete`, { session: admin, form: { confirm: "kim", reauth: `guess-${i}` } });
    expect(await r.text()).toContain("That password is not correct.");
  }
  const last = await h.send(`/users/${target.userId}/delete`, { session: admin, form: { confirm: "kim", reauth: "guess-5" } });
  expect(await last.text()).toContain("this session has ended");
  expect((await h.send("/hosts", { session: admin })).headers.get("location")).toStartWith("/login");
  expect((await h.db.sql`select count(*)::int as n from console_users where id = ${target.userId}`)[0]!.n).toBe(1);
});

test("replacing an authenticator needs the password; new backup codes need confirmation", async () => {
  const u = await h.userWithRole("viewer", "leo");
  const first = await (await h.send("/account/mfa", { session: u })).text();
  const secret1 = /id="totp-secret">([A-Z2-7 ]+)</.exec(first)![1]!.replace(/ /g, "");
  expect((await h.send("/account/mfa", { session: u, form: { code: totp(secret1) } })).status).toBe(200);
  // a second enrollment (e.g. from a stolen session) is refused without the password
  await h.db.sql`update console_sessions set pending_totp = null where id = ${u.sessionId}`;
  const again = await (await h.send("/account/mfa", { session: u })).text();
  expect(again).toContain('name="password"');
  const secret2 = /id="totp-secret">([A-Z2-7 ]+)</.exec(again)![1]!.replace(/ /g, "");
  const refused = await h.send("/account/mfa", { session: u, form: { code: totp(secret2) } });
  expect(refused.status).toBe(401);
  const [row] = await h.db.sql`select totp_secret from console_users where id = ${u.userId}`;
  expect(row!.totp_secret).toStartWith("v1."); // sealed at rest
  expect(h.services.secrets.open(row!.totp_secret)).toBe(secret1);
  const ok = await h.send("/account/mfa", { session: u, form: { code: totp(secret2, Date.now() + 30_000), password: TEST_PASSWORD } });
  expect(ok.status).toBe(200);
  expect(h.services.secrets.open((await h.db.sql`select totp_secret from console_users where id = ${u.userId}`)[0]!.totp_secret)).toBe(secret2);

  const noPhrase = await h.send("/account/backup-codes", { session: u, form: {} });
  expect(noPhrase.status).toBe(403);
  const codes = await h.send("/account/backup-codes", { session: u, form: { confirm: "new codes" } });
  expect(codes.status).toBe(200);
  expect((await codes.text()).match(/<code>[a-z0-9]{5}-[a-z0-9]{5}<\/code>/g)!.length).toBe(10);
});

test("a query string with a NUL character is refused (not silently cleaned) with a message naming the parameter", async () => {
  const admin = await h.userWithRole("admin");
  const page = await h.send("/hosts?q=we%00b", { session: admin });
  expect(page.status).toBe(400);
  expect(await page.text()).toContain("The query parameter &quot;q&quot; contains a NUL character");
  const partial = await h.send("/audit?act%00or=x", { session: admin, headers: { "hx-request": "true" } });
  expect(partial.status).toBe(400);
  expect(await partial.text()).toContain("The query parameter &quot;actor&quot; contains a NUL character");
  expect((await h.send("/hosts?q=web", { session: admin })).status).toBe(200);
});

test("a form with a NUL character is refused with a message naming the field", async () => {
  const admin = await h.userWithRole("admin");
  const r = await h.send("/enrollment/tokens", { session: admin, form: { label: "a\u0000b", hours: "1" }, headers: { "hx-request": "true" } });
  expect(r.status).toBe(400);
  expect(await r.text()).toContain("The field &quot;label&quot; contains a NUL character");
});
