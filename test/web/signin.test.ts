/**
 * Sign-in that resists guessing (issue #12 part C), through the console guard over a real
 * PostgreSQL: the throttle in front of every factor, no enumeration, no lock-out of an
 * administrator from elsewhere, password strength, MFA for administrators and at setup.
 */
import { test, expect, afterAll } from "bun:test";
import { consoleHarness, TEST_PASSWORD, TEST_IP_HEADER, type ConsoleHarness } from "../support/console-app.ts";
import { PRE_CSRF_COOKIE } from "../../src/web/guard.ts";
import { SESSION_COOKIE } from "../../src/auth/session.ts";
import { enableTotp, newBackupCodes } from "../../src/auth/users.ts";
import { newTotpSecret, totp, totpStep } from "../../src/auth/totp.ts";
import { clearAccountThrottle } from "../../src/auth/throttle.ts";

const h = await consoleHarness();
afterAll(() => h.close());

let ipSeq = 0;
/** A fresh documentation-range address per scenario, so scenarios do not share counters. */
const freshIp = () => `198.18.${Math.floor(++ipSeq / 250)}.${ipSeq % 250 + 1}`;

async function preCsrf(): Promise<string> {
  const page = await h.send("/login");
  return /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie")!)![1]!;
}

async function login(username: string, password: string, ip: string, pre?: string, htmx = false) {
  const p = pre ?? (await preCsrf());
  const headers: Record<string, string> = { cookie: `${PRE_CSRF_COOKIE}=${p}`, [TEST_IP_HEADER]: ip };
  if (htmx) headers["hx-request"] = "true";
  const r = await h.send("/login", { form: { username, password, _csrf: p }, headers });
  const token = /sm_session=([^;]+)/.exec(r.headers.get("set-cookie") ?? "")?.[1];
  return { r, token, body: await r.text() };
}

async function code(token: string, c: string, ip: string) {
  const [s] = await h.db.sql`select csrf_token from console_sessions where token_hash = sha256(${token}::bytea)`;
  return h.send("/login/totp", { form: { code: c }, headers: { cookie: `${SESSION_COOKIE}=${token}`, "x-csrf-token": s!.csrf_token, [TEST_IP_HEADER]: ip } });
}

async function withTotp(role: string, name: string): Promise<{ userId: number; secret: string }> {
  const u = await h.userWithRole(role, name);
  const secret = newTotpSecret();
  await enableTotp(h.db.sql, h.services.secrets, u.userId, secret, totpStep(Date.now()) - 2);
  return { userId: u.userId, secret };
}

const wrongCode = (secret: string, i: number) => {
  let c = String(100000 + i * 7919).slice(0, 6);
  for (const t of [-30_000, 0, 30_000]) if (totp(secret, Date.now() + t) === c) c = String(200000 + i);
  return c;
};

test("16 wrong codes: a correct password does not reset second-factor failures; the fifth attempt pauses sign-in", async () => {
  const { secret } = await withTotp("viewer", "mallory-target");
  const ip = freshIp();
  const outcomes: number[] = [];
  for (let round = 0; round < 4; round++) {
    const pw = await login("mallory-target", TEST_PASSWORD, ip);
    outcomes.push(pw.r.status);
    if (pw.r.status !== 303) continue;
    for (let i = 0; i < 4; i++) outcomes.push((await code(pw.token!, wrongCode(secret, round * 4 + i), ip)).status);
  }
  // round 1: password + 4 wrong codes = 5 attempts, all evaluated; every later attempt is refused
  expect(outcomes).toEqual([303, 401, 401, 401, 401, 429, 429, 429]);
  const evaluated = await h.db.sql`select count(*)::int as n from audit_log where action = 'login.totp' and target = 'mallory-target'`;
  expect(evaluated[0]!.n).toBe(4);
}, 60_000);

test("an attacker with the password rotating addresses gets at most 10 second-factor tries per account", async () => {
  const { secret } = await withTotp("viewer", "rotated");
  let evaluated = 0;
  let refused = 0;
  let ended = 0;
  for (let round = 0; round < 5; round++) {
    const ip = freshIp();
    const pw = await login("rotated", TEST_PASSWORD, ip);
    expect(pw.r.status).toBe(303);
    for (let i = 0; i < 4; i++) {
      const r = await code(pw.token!, wrongCode(secret, round * 4 + i), ip);
      if (r.status === 401) evaluated++;
      else if (r.status === 429) refused++;
      else if (r.status === 303 && /^\/login(\?|$)/.test(r.headers.get("location") ?? "")) ended++; // the 10th wrong code ended that session
    }
  }
  expect(evaluated).toBe(10);
  expect(refused + ended).toBe(10);
  expect(refused).toBe(8);
}, 60_000);

test("an MFA-pending session cannot complete while the second factor is throttled", async () => {
  const { secret } = await withTotp("viewer", "pending");
  const home = freshIp();
  const pending = await login("pending", TEST_PASSWORD, home);
  expect(pending.r.headers.get("location")).toBe("/login/totp");
  // someone with the password burns the account's second-factor budget from elsewhere
  for (let round = 0; round < 3; round++) {
    const ip = freshIp();
    const pw = await login("pending", TEST_PASSWORD, ip);
    for (let i = 0; i < 4; i++) await code(pw.token!, wrongCode(secret, round * 4 + i), ip);
  }
  const late = await code(pending.token!, totp(secret), home);
  expect(late.status).toBe(429);
  expect(Number(late.headers.get("retry-after"))).toBeGreaterThan(0);
  expect((await h.send("/hosts", { headers: { cookie: `${SESSION_COOKIE}=${pending.token}` } })).headers.get("location")).toBe("/login/totp");
  // once an administrator clears the counters, the same session completes
  await clearAccountThrottle(h.db.sql, "pending");
  const ok = await code(pending.token!, totp(secret), home);
  expect(ok.headers.get("location")).toBe("/hosts");
}, 60_000);

test("20 parallel wrong passwords: only the threshold is evaluated, and the right one is refused while paused", async () => {
  await h.userWithRole("viewer", "racer");
  const ip = freshIp();
  const pre = await preCsrf();
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => login("racer", `wrong-guess-${i}`, ip, pre)));
  const statuses = results.map((x) => x.r.status);
  expect(statuses.filter((s) => s === 401).length).toBe(5);
  expect(statuses.filter((s) => s === 429).length).toBe(15);
  const right = await login("racer", TEST_PASSWORD, ip, pre);
  expect(right.r.status).toBe(429);
  const [{ n }] = await h.db.sql`select count(*)::int as n from audit_log where action = 'login.password' and target = 'racer' and not success`;
  expect(n).toBe(5);

  // the right password inside a parallel burst: still at most 5 evaluated in all
  await h.userWithRole("viewer", "racer2");
  const ip2 = freshIp();
  const burst = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => login("racer2", `wrong-guess-${i}`, ip2, pre)),
    login("racer2", TEST_PASSWORD, ip2, pre),
  ]);
  const evaluated = burst.filter((x) => x.r.status !== 429).length;
  expect(evaluated).toBeLessThanOrEqual(5);
}, 60_000);

test("one address guessing across many usernames is paused after 30 attempts, for every name", async () => {
  await h.userWithRole("viewer", "nat-user");
  const ip = freshIp();
  const pre = await preCsrf();
  const statuses: number[] = [];
  for (let i = 0; i < 34; i++) statuses.push((await login(`spray-${i}`, "Spring2024!", ip, pre)).r.status);
  expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
  expect(statuses.slice(30).every((s) => s === 429)).toBe(true);
  expect((await login("nat-user", TEST_PASSWORD, ip, pre)).r.status).toBe(429);
  // other addresses are not affected
  expect((await login("nat-user", TEST_PASSWORD, freshIp(), pre)).r.headers.get("location")).toBe("/hosts");
}, 60_000);

test("an attacker at address A cannot keep the administrator at address B from signing in", async () => {
  const { secret } = await withTotp("admin", "chief");
  const attacker = freshIp();
  const pre = await preCsrf();
  const seen: number[] = [];
  for (let i = 0; i < 40; i++) seen.push((await login("chief", `guess-${i}`, attacker, pre)).r.status);
  expect(seen.filter((s) => s === 401).length).toBe(5);
  expect(seen.filter((s) => s === 429).length).toBe(35);
  const office = freshIp();
  const pw = await login("chief", TEST_PASSWORD, office);
  expect(pw.r.headers.get("location")).toBe("/login/totp");
  const done = await code(pw.token!, totp(secret), office);
  expect(done.headers.get("location")).toBe("/hosts");
  expect((await h.send("/hosts", { headers: { cookie: `${SESSION_COOKIE}=${pw.token}` } })).status).toBe(200);
  // the attacker's address is still paused for that account
  expect((await login("chief", TEST_PASSWORD, attacker, pre)).r.status).toBe(429);
}, 60_000);

test("unknown and known usernames get the same status, body and Retry-After, and the same hashing work", async () => {
  await h.userWithRole("viewer", "known-user");
  const ip = freshIp();
  const pre = await preCsrf();
  for (let i = 0; i < 6; i++) {
    const known = await login("known-user", `bad-${i}`, ip, pre, true);
    const unknown = await login("nobody-here", `bad-${i}`, ip, pre, true);
    expect(unknown.r.status).toBe(known.r.status);
    expect(unknown.body).toBe(known.body);
    expect(unknown.r.headers.get("retry-after")).toBe(known.r.headers.get("retry-after"));
    expect(known.r.status).toBe(i < 5 ? 401 : 429);
  }
  // timing: interleaved, so load on the machine hits both alike; an argon2id verification is
  // tens of milliseconds, skipping it would make unknown names several times faster
  const times = { known: [] as number[], unknown: [] as number[] };
  for (let i = 0; i < 9; i++) {
    for (const [who, name] of [["known", "known-user"], ["unknown", "not-a-user"]] as const) {
      const t0 = performance.now();
      const r = await login(name, `bad-${i}`, freshIp(), pre);
      times[who].push(performance.now() - t0);
      expect(r.r.status).toBe(401);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ratio = median(times.unknown) / median(times.known);
  expect(ratio).toBeGreaterThan(0.4);
  expect(ratio).toBeLessThan(2.5);
}, 60_000);

test("re-authentication failures for dangerous operations count in the same throttle as sign-in", async () => {
  const admin = await h.userWithRole("admin", "reauther");
  const target = await h.userWithRole("viewer", "reauth-target");
  const ip = freshIp();
  await h.db.sql`update console_sessions set reauth_at = null where id = ${admin.sessionId}`;
  for (let i = 0; i < 3; i++) {
    const r = await h.send(`/users/${target.userId}/delete`, { session: admin, form: { confirm: "reauth-target", reauth: `guess-${i}` }, headers: { [TEST_IP_HEADER]: ip } });
    expect(await r.text()).toContain("That password is not correct.");
  }
  const pre = await preCsrf();
  expect((await login("reauther", "guess-3", ip, pre)).r.status).toBe(401);
  expect((await login("reauther", "guess-4", ip, pre)).r.status).toBe(401);
  expect((await login("reauther", TEST_PASSWORD, ip, pre)).r.status).toBe(429);
  const r = await h.send(`/users/${target.userId}/delete`, { session: admin, form: { confirm: "reauth-target", reauth: TEST_PASSWORD }, headers: { [TEST_IP_HEADER]: ip } });
  expect(r.status).toBe(403);
  expect(await r.text()).toContain("Too many wrong attempts");
  expect((await h.db.sql`select count(*)::int as n from console_users where id = ${target.userId}`)[0]!.n).toBe(1);
}, 60_000);

test("Password1234 and other common passwords are refused with a clear message", async () => {
  const admin = await h.userWithRole("admin");
  for (const pw of ["Password1234", "Welcome2024!"]) {
    const r = await h.send("/users", { session: admin, form: { username: "weakling", password: pw, password2: pw }, headers: { "hx-request": "true" } });
    expect(r.status).toBe(422);
    expect(await r.text()).toContain("This password is too easy to guess");
  }
  expect((await h.db.sql`select count(*)::int as n from console_users where username = 'weakling'`)[0]!.n).toBe(0);
  const ok = await h.send("/users", { session: admin, form: { username: "weakling", password: "Quiet-Lantern-Orbit-41", password2: "Quiet-Lantern-Orbit-41" } });
  expect(ok.status).toBe(303);
}, 60_000);

test("every form that sets a password states the whole policy, not only its length", async () => {
  const rules = "At least 12 characters, a lower-case letter, an upper-case letter, a digit, and hard to guess: common passwords and patterns such as Password1234 are refused.";
  const admin = await h.userWithRole("admin");
  // the administrator's new-user form (it said only "At least 12 characters." and then refused
  // a 12-character password for its missing upper-case letter, digit and strength)
  expect(await (await h.send("/users", { session: admin })).text()).toContain(`<p class="hint">${rules}</p>`);
  expect(await (await h.send("/account", { session: admin })).text()).toContain(`<p class="hint">${rules} Changing it signs out your other sessions.</p>`);
});

test("administrators must enroll TOTP before anything else; other users need not (setting on by default)", async () => {
  await h.userWithRole("admin", "boss");
  const admin = await login("boss", TEST_PASSWORD, freshIp());
  expect(admin.r.headers.get("location")).toBe("/account/mfa");
  expect((await h.send("/hosts", { headers: { cookie: `${SESSION_COOKIE}=${admin.token}` } })).headers.get("location")).toBe("/account/mfa");
  // a custom role that can change users counts as administrative; one that only views them does not
  await h.userWith(["users.view", "users.edit"], "user-editor");
  await h.userWith(["users.view", "hosts.view"], "user-viewer");
  expect((await login("user-editor", TEST_PASSWORD, freshIp())).r.headers.get("location")).toBe("/account/mfa");
  expect((await login("user-viewer", TEST_PASSWORD, freshIp())).r.headers.get("location")).toBe("/hosts");
  const settings = await h.services.settings.get();
  await h.services.settings.set("mfa", { ...settings.mfa, requireForAdmins: false });
  try {
    expect((await login("boss", TEST_PASSWORD, freshIp())).r.headers.get("location")).toBe("/hosts");
  } finally {
    await h.services.settings.set("mfa", { ...settings.mfa, requireForAdmins: true });
  }
}, 60_000);

test("first-run setup creates the administrator and enrolls TOTP before the console opens", async () => {
  const h2: ConsoleHarness = await consoleHarness();
  try {
    const page = await h2.send("/setup");
    const pre = /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie")!)![1]!;
    const post = (form: Record<string, string>) => h2.send("/setup", { form: { _csrf: pre, ...form }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}` } });
    const weak = await post({ code: h2.setupCode!, username: "root", password: "Password1234", password2: "Password1234" });
    expect(weak.status).toBe(422);
    expect(await weak.text()).toContain("too easy to guess");
    const ok = await post({ code: h2.setupCode!, username: "root", password: TEST_PASSWORD, password2: TEST_PASSWORD });
    expect(ok.headers.get("location")).toBe("/account/mfa");
    const token = /sm_session=([^;]+)/.exec(ok.headers.get("set-cookie") ?? "")![1]!;
    const cookie = `${SESSION_COOKIE}=${token}`;
    expect((await h2.send("/hosts", { headers: { cookie } })).headers.get("location")).toBe("/account/mfa");
    const enroll = await (await h2.send("/account/mfa", { headers: { cookie } })).text();
    const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enroll)![1]!.replace(/ /g, "");
    const [s] = await h2.db.sql`select csrf_token from console_sessions where token_hash = sha256(${token}::bytea)`;
    const enrolled = await h2.send("/account/mfa", { form: { code: totp(secret) }, headers: { cookie, "x-csrf-token": s!.csrf_token } });
    expect(enrolled.status).toBe(200);
    expect((await h2.send("/hosts", { headers: { cookie } })).status).toBe(200);
    const [u] = await h2.db.sql`select totp_enabled_at from console_users where username = 'root'`;
    expect(u!.totp_enabled_at).not.toBeNull();
  } finally {
    await h2.close();
  }
}, 60_000);

test("a backup code completes sign-in and resets the counters like a TOTP code", async () => {
  const { userId } = await withTotp("viewer", "backup-user");
  const codes = await newBackupCodes(h.db.sql, userId);
  const ip = freshIp();
  for (let i = 0; i < 2; i++) expect((await login("backup-user", `nope-${i}`, ip)).r.status).toBe(401);
  const pw = await login("backup-user", TEST_PASSWORD, ip);
  expect((await code(pw.token!, codes[0]!, ip)).headers.get("location")).toBe("/hosts");
  const [{ n }] = await h.db.sql`select count(*)::int as n from signin_throttle where key like 'acct%backup-user%'`;
  expect(n).toBe(0);
}, 60_000);

test("guessing the current password on the password-change form counts too", async () => {
  const u = await h.userWithRole("viewer", "changer");
  const ip = freshIp();
  const change = (current: string) => h.send("/account/password", { session: u, form: { current, password: "Quiet-Lantern-Orbit-42", password2: "Quiet-Lantern-Orbit-42" }, headers: { [TEST_IP_HEADER]: ip } });
  for (let i = 0; i < 5; i++) expect((await change(`guess-${i}`)).status).toBe(401);
  const paused = await change(TEST_PASSWORD);
  expect(paused.status).toBe(429);
  expect(Number(paused.headers.get("retry-after"))).toBeGreaterThan(0);
  expect((await login("changer", TEST_PASSWORD, ip)).r.status).toBe(429);
}, 60_000);

test("the security settings page shows and saves the strength minimum and MFA for administrators", async () => {
  const admin = await h.userWithRole("admin");
  const page = await (await h.send("/settings", { session: admin })).text();
  expect(page).toContain('name="min_strength" type="number" min="0" max="4" value="3"');
  expect(page).toMatch(/name="mfa_admins" checked/);
  const before = await h.services.settings.get();
  const form = {
    min_length: "12", require_lower: "on", require_upper: "on", require_digit: "on", expiry_days: "0", history: "5",
    lockout_threshold: "5", lockout_minutes: "15", min_strength: "4", mfa_enforce: "off", mfa_admins_shown: "1",
    idle_minutes: "30", absolute_hours: "12", confirm: "apply security settings", reauth: TEST_PASSWORD,
  };
  try {
    expect((await h.send("/settings/security", { session: admin, form })).status).toBe(303);
    const after = await h.services.settings.get();
    expect(after.password.minStrength).toBe(4);
    expect(after.mfa.requireForAdmins).toBe(false);
  } finally {
    await h.services.settings.set("password", before.password);
    await h.services.settings.set("mfa", before.mfa);
  }
}, 60_000);

test("a paused account shows as locked on the users pages, and Unlock clears its counters", async () => {
  const admin = await h.userWithRole("admin");
  const target = await h.userWithRole("viewer", "paused-user");
  const ip = freshIp();
  const pre = await preCsrf();
  for (let i = 0; i < 5; i++) await login("paused-user", `nope-${i}`, ip, pre);
  expect((await login("paused-user", TEST_PASSWORD, ip, pre)).r.status).toBe(429);
  const list = await (await h.send("/users", { session: admin })).text();
  expect(list).toMatch(/paused-user<\/a>((?!<\/tr>).)*<span class="badge crit">locked<\/span>/s); // in that user's row
  const detail = await (await h.send(`/users/${target.userId}`, { session: admin })).text();
  expect(detail).toContain("locked until");
  expect(detail).toContain(`action="/users/${target.userId}/unlock"`);
  expect((await h.send(`/users/${target.userId}/unlock`, { session: admin, form: {} })).status).toBe(303);
  expect((await login("paused-user", TEST_PASSWORD, ip, pre)).r.headers.get("location")).toBe("/hosts");
}, 60_000);
