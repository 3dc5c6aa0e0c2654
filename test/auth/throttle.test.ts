/** The sign-in throttle (src/auth/throttle.ts) against a real PostgreSQL. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../support/db.ts";
import { addressKey, beginAttempt, clearAccountThrottle, pruneThrottle, signInSucceeded, throttleLimits, type ThrottleLimits } from "../../src/auth/throttle.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

let db: TestDb;
const limits = throttleLimits(DEFAULT_SETTINGS.password);

beforeAll(async () => {
  db = await testDatabase(12);
}, 30_000);
afterAll(() => db.drop());

const windowOf = async (key: string) =>
  Number((await db.sql`select extract(epoch from blocked_until - last_failure_at)::float8 as s from signin_throttle where key = ${key}`)[0]?.s ?? 0);

test("defaults follow the password policy: 5 per account and address, windows from 30 s up to 15 min", () => {
  expect(limits).toMatchObject({ accountIp: 5, ip: 30, mfa: 10, accountCeiling: 100, baseWindowS: 30, maxWindowS: 900, decayMinutes: 60 });
});

test("the fifth attempt opens a 30 s window; each attempt after a window doubles it, up to the maximum", async () => {
  const a = { username: "Alice", ip: "203.0.113.1", factor: "password" as const };
  for (let i = 1; i <= 5; i++) {
    const r = await beginAttempt(db.sql, limits, a);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.ticket.lastBeforePause).toBe(i === 5);
  }
  const refused = await beginAttempt(db.sql, limits, a);
  expect(refused).toEqual({ ok: false, retryAfterS: 30 });
  // the refusal charged nothing
  expect((await db.sql`select failures from signin_throttle where key = 'acct-ip:alice|203.0.113.1'`)[0]!.failures).toBe(5);
  expect(await windowOf("acct-ip:alice|203.0.113.1")).toBeCloseTo(30, 0);
  const seen: number[] = [];
  for (let i = 0; i < 7; i++) {
    await db.sql`update signin_throttle set blocked_until = now() - interval '1 second' where key = 'acct-ip:alice|203.0.113.1'`;
    expect((await beginAttempt(db.sql, limits, a)).ok).toBe(true);
    seen.push(Math.round(await windowOf("acct-ip:alice|203.0.113.1")));
  }
  expect(seen).toEqual([60, 120, 240, 480, 900, 900, 900]);
});

test("counts start over once the last attempt is older than an hour", async () => {
  const a = { username: "bob", ip: "203.0.113.2", factor: "password" as const };
  for (let i = 0; i < 4; i++) await beginAttempt(db.sql, limits, a);
  await db.sql`update signin_throttle set last_failure_at = now() - interval '61 minutes' where key like '%bob%'`;
  const r = await beginAttempt(db.sql, limits, a);
  expect(r.ok && !r.ticket.lastBeforePause).toBe(true);
  expect((await db.sql`select failures from signin_throttle where key = 'acct-ip:bob|203.0.113.2'`)[0]!.failures).toBe(1);
  expect(await pruneThrottle(db.sql, limits)).toBe(0);
  await db.sql`update signin_throttle set last_failure_at = now() - interval '2 hours' where key like '%bob%' or key = 'ip:203.0.113.2'`;
  expect(await pruneThrottle(db.sql, limits)).toBe(3); // ip:, acct:, acct-ip:
});

test("50 parallel attempts: exactly the limit get through (the upserts serialize on the row)", async () => {
  const a = { username: "carol", ip: "203.0.113.3", factor: "password" as const };
  const rs = await Promise.all(Array.from({ length: 50 }, () => beginAttempt(db.sql, limits, a)));
  expect(rs.filter((r) => r.ok).length).toBe(5);
  expect(rs.filter((r) => r.ok && r.ticket.lastBeforePause).length).toBe(1);
});

test("the address limit spans usernames; success refunds the address and resets the account", async () => {
  const ip = "203.0.113.4";
  for (let i = 0; i < 29; i++) expect((await beginAttempt(db.sql, limits, { username: `u${i}`, ip, factor: "password" })).ok).toBe(true);
  const good = await beginAttempt(db.sql, limits, { username: "dave", ip, factor: "password" });
  expect(good.ok && good.ticket.lastBeforePause).toBe(true);
  if (!good.ok) throw new Error("unreachable");
  await signInSucceeded(db.sql, limits, good.ticket);
  expect((await db.sql`select failures, blocked_until from signin_throttle where key = ${`ip:${ip}`}`)[0]).toEqual({ failures: 29, blocked_until: null });
  expect((await db.sql`select count(*)::int as n from signin_throttle where key like '%dave%'`)[0]!.n).toBe(0);
  expect((await beginAttempt(db.sql, limits, { username: "erin", ip, factor: "password" })).ok).toBe(true);
  expect((await beginAttempt(db.sql, limits, { username: "frank", ip, factor: "password" })).ok).toBe(false);
});

test("second-factor attempts also count per account across addresses, 10 at most", async () => {
  let ok = 0;
  for (let i = 0; i < 15; i++) if ((await beginAttempt(db.sql, limits, { username: "gina", ip: `198.51.100.${i}`, factor: "second" })).ok) ok++;
  expect(ok).toBe(10);
  // password attempts from a new address are not refused by the second-factor counter
  expect((await beginAttempt(db.sql, limits, { username: "gina", ip: "198.51.100.99", factor: "password" })).ok).toBe(true);
  await clearAccountThrottle(db.sql, "gina");
  expect((await beginAttempt(db.sql, limits, { username: "gina", ip: "198.51.100.1", factor: "second" })).ok).toBe(true);
});

test("past the account ceiling attempts are slowed, never refused", async () => {
  const small: ThrottleLimits = { ...limits, accountCeiling: 3, ceilingDelayMs: 300, maxCeilingDelayMs: 600 };
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    expect((await beginAttempt(db.sql, small, { username: "hank", ip: `192.0.2.${i}`, factor: "password" })).ok).toBe(true);
    times.push(performance.now() - t0);
  }
  expect(Math.max(...times.slice(0, 3))).toBeLessThan(250);
  expect(Math.min(...times.slice(3))).toBeGreaterThanOrEqual(290);
});

test("IPv6 addresses count per /64; IPv4-mapped addresses as IPv4", () => {
  expect(addressKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
  expect(addressKey("2001:db8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64");
  expect(addressKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
  expect(addressKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
  expect(addressKey("192.0.2.7")).toBe("192.0.2.7");
  expect(addressKey("[fe80::1%eth0]")).toBe("fe80:0:0:0::/64");
});
