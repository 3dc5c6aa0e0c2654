/**
 * Sign-in throttling: every password, second-factor and re-authentication attempt is charged
 * against counters in PostgreSQL (table signin_throttle) before the credential is evaluated,
 * in one transaction whose upserts lock the counter rows, so parallel attempts cannot get past
 * the limit. A successful full sign-in resets the account's counters and refunds the attempt to
 * the address. Keys use the typed username, so unknown and known accounts behave alike.
 *
 * Counters (defaults; `accountIp` and `maxWindowS` come from the password policy):
 * - `acct-ip:<user>|<ip>`  5 attempts, then backoff windows of 30 s doubling per attempt up to
 *                          15 min. Blocks only that address for that account.
 * - `ip:<ip>`              30 attempts across all usernames, then the same backoff.
 * - `mfa:<user>`           10 second-factor attempts from any address (only someone who knows
 *                          the password reaches this step), then the same backoff.
 * - `acct:<user>`          never blocks: past 100 attempts every further attempt on the account
 *                          waits 1 s more per 100, up to 5 s (the ceiling slows, it never locks).
 * A counter starts over once its last attempt is older than `decayMinutes` (60).
 * IPv6 addresses count per /64, the block one subscriber usually holds.
 */
import type { Sql } from "postgres";
import type { PasswordPolicy } from "../settings/console-settings.ts";

export interface ThrottleLimits {
  accountIp: number;
  ip: number;
  mfa: number;
  accountCeiling: number;
  ceilingDelayMs: number;
  maxCeilingDelayMs: number;
  baseWindowS: number;
  maxWindowS: number;
  decayMinutes: number;
}

export function throttleLimits(policy: Pick<PasswordPolicy, "lockoutThreshold" | "lockoutMinutes">): ThrottleLimits {
  return {
    accountIp: policy.lockoutThreshold,
    ip: 30,
    mfa: 10,
    accountCeiling: 100,
    ceilingDelayMs: 1000,
    maxCeilingDelayMs: 5000,
    baseWindowS: 30,
    maxWindowS: policy.lockoutMinutes * 60,
    decayMinutes: 60,
  };
}

/** What is being tried: the password (sign-in or re-authentication) or a second factor. */
export type Factor = "password" | "second";

export interface Ticket {
  username: string;
  ipKey: string;
  /** this attempt filled a counter: the next one from here will be refused for a while */
  lastBeforePause: boolean;
}

export type Attempt = { ok: true; ticket: Ticket } | { ok: false; retryAfterS: number };

/** Address key: IPv4 as is, IPv6 by its /64 prefix. */
export function addressKey(ip: string): string {
  const v = ip.trim().toLowerCase().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!v.includes(":")) return v || "unknown";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v);
  if (mapped) return mapped[1]!;
  const [head, tail] = v.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(":")}::/64`;
}

function accountKey(username: string): string {
  return username.trim().toLowerCase().slice(0, 64);
}

class Refused extends Error {
  constructor(readonly key: string) {
    super(key);
  }
}

let calls = 0;

/**
 * Charges one attempt to every counter that applies, or refuses without charging any when one
 * of them is in a backoff window. Call before evaluating the credential.
 */
export async function beginAttempt(sql: Sql, limits: ThrottleLimits, a: { username: string; ip: string; factor: Factor }): Promise<Attempt> {
  const user = accountKey(a.username);
  const ip = addressKey(a.ip);
  // a fixed order (address, account, second factor, pair), so concurrent attempts lock rows alike;
  // a null limit only counts (the account-wide ceiling slows, it never refuses)
  const counters: Array<[string, number | null]> = [[`ip:${ip}`, limits.ip], [`acct:${user}`, null]];
  if (a.factor === "second") counters.push([`mfa:${user}`, limits.mfa]);
  counters.push([`acct-ip:${user}|${ip}`, limits.accountIp]);
  if (++calls % 500 === 0) void pruneThrottle(sql, limits).catch(() => {});
  try {
    const r = await sql.begin(async (tx) => {
      let last = false;
      let accountFailures = 0;
      for (const [key, limit] of counters) {
        if (limit === null) accountFailures = await count(tx as unknown as Sql, limits, key);
        else last = (await charge(tx as unknown as Sql, limits, key, limit)) || last;
      }
      return { last, accountFailures };
    });
    const over = r.accountFailures - limits.accountCeiling;
    if (over > 0) await Bun.sleep(Math.min(limits.maxCeilingDelayMs, limits.ceilingDelayMs * Math.ceil(over / limits.accountCeiling)));
    return { ok: true, ticket: { username: user, ipKey: ip, lastBeforePause: r.last } };
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    const [row] = await sql`select greatest(1, ceil(extract(epoch from blocked_until - now())))::int as s
      from signin_throttle where key = ${e.key}`;
    return { ok: false, retryAfterS: Number(row?.s ?? 1) };
  }
}

/** Counts the attempt without ever refusing; returns the count. */
async function count(tx: Sql, limits: ThrottleLimits, key: string): Promise<number> {
  const [row] = await tx`insert into signin_throttle as t (key, failures) values (${key}, 1)
    on conflict (key) do update set
      failures = case when t.last_failure_at < now() - make_interval(mins => ${limits.decayMinutes}) then 1 else t.failures + 1 end,
      last_failure_at = now()
    returning failures`;
  return Number(row!.failures);
}

/**
 * One upsert that counts the attempt and opens a backoff window once the limit is reached; it
 * changes nothing (and refuses) while a window is open. True when this attempt opened one.
 */
async function charge(tx: Sql, limits: ThrottleLimits, key: string, limit: number): Promise<boolean> {
  const [row] = await tx`insert into signin_throttle as t (key, failures, last_failure_at, blocked_until)
    values (${key}, 1, now(), case when 1 >= ${limit} then now() + make_interval(secs => ${limits.baseWindowS}) end)
    on conflict (key) do update set
      failures = case when t.last_failure_at < now() - make_interval(mins => ${limits.decayMinutes}) then 1 else t.failures + 1 end,
      last_failure_at = now(),
      blocked_until = case
        when (case when t.last_failure_at < now() - make_interval(mins => ${limits.decayMinutes}) then 1 else t.failures + 1 end) >= ${limit}
        then now() + make_interval(secs => least(${limits.maxWindowS}::float8, ${limits.baseWindowS}::float8 * power(2, least(30,
          (case when t.last_failure_at < now() - make_interval(mins => ${limits.decayMinutes}) then 1 else t.failures + 1 end) - ${limit}))))
        end
    where t.blocked_until is null or t.blocked_until <= now()
    returning blocked_until`;
  if (!row) throw new Refused(key);
  return row.blocked_until !== null;
}

/**
 * The whole sign-in succeeded (every factor the account has): its counters start over and the
 * address gets back the attempts this sign-in was charged (`attempts`: 2 after password + code).
 */
export async function signInSucceeded(sql: Sql, limits: ThrottleLimits, ticket: Ticket, attempts = 1): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`update signin_throttle set failures = greatest(0, failures - ${attempts}),
        blocked_until = case when failures - ${attempts} < ${limits.ip} then null else blocked_until end
      where key = ${`ip:${ticket.ipKey}`}`;
    // one row per statement, in beginAttempt's order, so the two never wait for each other in a cycle
    for (const key of [`acct:${ticket.username}`, `mfa:${ticket.username}`, `acct-ip:${ticket.username}|${ticket.ipKey}`]) {
      await tx`delete from signin_throttle where key = ${key}`;
    }
  });
}

/** An administrator clears an account's counters (the users page's unlock). */
export async function clearAccountThrottle(sql: Sql, username: string): Promise<void> {
  const user = accountKey(username);
  await sql`delete from signin_throttle where key = ${`acct:${user}`}`;
  await sql`delete from signin_throttle where key = ${`mfa:${user}`}`;
  await sql`delete from signin_throttle where key like ${`acct-ip:${user.replace(/[\\%_]/g, "\\$&")}|%`}`;
}

/**
 * Accounts whose sign-in is paused from some address or for the second factor, with the latest
 * end of those windows: what the users pages show as locked (and the Unlock button clears).
 */
export async function pausedAccounts(sql: Sql): Promise<Map<string, Date>> {
  const rows = await sql`select case when key like 'mfa:%' then substr(key, 5) else split_part(substr(key, 9), '|', 1) end as username,
      max(blocked_until) as until
    from signin_throttle where (key like 'mfa:%' or key like 'acct-ip:%') and blocked_until > now() group by 1`;
  return new Map(rows.map((r) => [r.username as string, new Date(r.until)]));
}

/** Drops counters that have decayed and are not in a window. */
export async function pruneThrottle(sql: Sql, limits: ThrottleLimits): Promise<number> {
  // skip rows a sign-in holds, so pruning never waits for (or deadlocks with) an attempt
  const r = await sql`delete from signin_throttle where key in (select key from signin_throttle
    where last_failure_at < now() - make_interval(mins => ${limits.decayMinutes})
      and (blocked_until is null or blocked_until < now())
    for update skip locked)`;
  return r.count;
}

/**
 * For credentials that are not sign-ins (API bearer tokens): the seconds left in `key`'s backoff
 * window, or 0 when none is open. Check before evaluating the credential.
 */
export async function keyBlockedFor(sql: Sql, key: string): Promise<number> {
  const [row] = await sql`select greatest(1, ceil(extract(epoch from blocked_until - now())))::int as s
    from signin_throttle where key = ${key} and blocked_until > now()`;
  return row ? Number(row.s) : 0;
}

/**
 * Counts one failed credential against `key` (same decay and backoff as sign-in counters);
 * true when this failure opened a backoff window. Successful uses are not charged.
 */
export async function chargeKeyFailure(sql: Sql, limits: ThrottleLimits, key: string, limit: number): Promise<boolean> {
  try {
    return await sql.begin((tx) => charge(tx as unknown as Sql, limits, key, limit));
  } catch (e) {
    if (e instanceof Refused) return false; // a window is already open
    throw e;
  }
}
