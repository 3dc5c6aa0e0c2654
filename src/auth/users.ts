/**
 * Console accounts: creation, password changes under the policy (history, expiry), lockout,
 * TOTP enrollment and backup codes. Plain functions over `sql`; no HTTP here.
 */
import type { Sql } from "postgres";
import { createHash, randomBytes } from "node:crypto";
import { checkPasswordPolicy, hashPassword, verifyPassword, dummyVerify } from "./password.ts";
import { verifyTotp } from "./totp.ts";
import type { SecretBox } from "./secret-box.ts";
import type { ConsoleSettings, PasswordPolicy } from "../settings/console-settings.ts";
import { keepingAnAdmin } from "./roles.ts";

export interface User {
  id: number;
  username: string;
  display_name: string;
  email: string;
  password_hash: string | null;
  password_changed_at: Date | null;
  auth_source: string;
  /** may sign in with a local password while SSO is enforced (src/auth/sso/break-glass.ts) */
  break_glass: boolean;
  /** sealed with the SecretBox; never the raw key */
  totp_secret: string | null;
  totp_enabled_at: Date | null;
  totp_last_step: number;
  failed_logins: number;
  locked_until: Date | null;
  disabled_at: Date | null;
  last_login_at: Date | null;
  created_at: Date;
}

export class PolicyError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join(" "));
  }
}

export const USERNAME_RE = /^[a-z0-9][a-z0-9._@-]{1,63}$/;

export async function getUser(sql: Sql, id: number): Promise<User | undefined> {
  const [u] = await sql<User[]>`select * from console_users where id = ${id}`;
  return u ? { ...u, id: Number(u.id), totp_last_step: Number(u.totp_last_step) } : undefined;
}

export async function getUserByName(sql: Sql, username: string): Promise<User | undefined> {
  const [u] = await sql<User[]>`select * from console_users where username = ${username.toLowerCase()}`;
  return u ? { ...u, id: Number(u.id), totp_last_step: Number(u.totp_last_step) } : undefined;
}

export async function countUsers(sql: Sql): Promise<number> {
  const [{ n }] = await sql`select count(*)::int as n from console_users`;
  return n;
}

export interface UserListRow {
  id: number;
  username: string;
  display_name: string;
  email: string;
  auth_source: string;
  totp_enabled_at: Date | null;
  locked_until: Date | null;
  disabled_at: Date | null;
  last_login_at: Date | null;
  created_at: Date;
  /** role names, sorted */
  roles: string[];
}

/** Every user with the names of its roles, by username. */
export async function listUsers(sql: Sql): Promise<UserListRow[]> {
  const rows = await sql`select u.id, u.username, u.display_name, u.email, u.auth_source, u.totp_enabled_at, u.locked_until,
      u.disabled_at, u.last_login_at, u.created_at,
      coalesce(array_agg(r.name order by r.name) filter (where r.name is not null), '{}') as roles
    from console_users u left join user_roles ur on ur.user_id = u.id left join console_roles r on r.id = ur.role_id
    group by u.id order by u.username`;
  return rows.map((u) => ({ ...(u as unknown as UserListRow), id: Number(u.id) }));
}

/** Disables or re-enables an account; disabling the last active administrator throws LastAdminError. */
export async function setDisabled(sql: Sql, userId: number, disabled: boolean): Promise<void> {
  await keepingAnAdmin(sql, (tx) => tx`update console_users set disabled_at = ${disabled ? tx`now()` : null} where id = ${userId}`);
}

/** Clears a lockout and the failure count (an administrator's unlock). */
export async function unlockUser(sql: Sql, userId: number): Promise<void> {
  await sql`update console_users set locked_until = null, failed_logins = 0 where id = ${userId}`;
}

/** Deletes an account (sessions, MFA and roles go with it); the last active administrator throws LastAdminError. */
export async function deleteUser(sql: Sql, userId: number): Promise<void> {
  await keepingAnAdmin(sql, (tx) => tx`delete from console_users where id = ${userId}`);
}

/** Accounts flagged for break-glass sign-in, with whether they have TOTP. */
export async function listBreakGlass(sql: Sql): Promise<Array<{ username: string; totp: boolean }>> {
  const rows = await sql`select username, totp_enabled_at is not null as totp from console_users where break_glass order by username`;
  return rows.map((r) => ({ username: r.username as string, totp: Boolean(r.totp) }));
}

/** Sets or clears the break-glass flag; only accounts with a local password can carry it (false if not). */
export async function setBreakGlass(sql: Sql, userId: number, on: boolean): Promise<boolean> {
  const r = await sql`update console_users set break_glass = ${on} where id = ${userId} and password_hash is not null`;
  return r.count === 1;
}

export interface NewUser {
  username: string;
  displayName?: string;
  email?: string;
  password: string;
  roleIds: number[];
}

export async function createUser(sql: Sql, u: NewUser, policy: PasswordPolicy): Promise<number> {
  const username = u.username.trim().toLowerCase();
  const problems: string[] = [];
  if (!USERNAME_RE.test(username)) problems.push("Usernames are 2-64 characters: lower-case letters, digits and . _ @ -, starting with a letter or digit.");
  problems.push(...checkPasswordPolicy(u.password, policy, username));
  if (problems.length) throw new PolicyError(problems);
  if (await getUserByName(sql, username)) throw new PolicyError([`The username ${username} is taken.`]);
  const hash = await hashPassword(u.password);
  return sql.begin(async (tx) => {
    const [{ id }] = await tx`insert into console_users (username, display_name, email, password_hash, password_changed_at)
      values (${username}, ${u.displayName ?? ""}, ${u.email ?? ""}, ${hash}, now()) returning id`;
    await tx`insert into password_history (user_id, password_hash) values (${id}, ${hash})`;
    for (const r of u.roleIds) await tx`insert into user_roles (user_id, role_id) values (${id}, ${r}) on conflict do nothing`;
    return Number(id);
  });
}

/** Sets a new password after checking the policy and history; returns nothing or throws PolicyError. */
export async function setPassword(sql: Sql, user: User, password: string, policy: PasswordPolicy): Promise<void> {
  const problems = checkPasswordPolicy(password, policy, user.username);
  if (problems.length) throw new PolicyError(problems);
  if (policy.history > 0) {
    const old = await sql`select password_hash from password_history where user_id = ${user.id}
      order by created_at desc limit ${policy.history}`;
    for (const o of old) {
      if (await verifyPassword(password, o.password_hash)) {
        throw new PolicyError([`Choose a password you have not used for your last ${policy.history} passwords.`]);
      }
    }
  }
  const hash = await hashPassword(password);
  await sql.begin(async (tx) => {
    await tx`update console_users set password_hash = ${hash}, password_changed_at = now() where id = ${user.id}`;
    await tx`insert into password_history (user_id, password_hash) values (${user.id}, ${hash})`;
  });
}

export function passwordExpired(user: User, policy: PasswordPolicy, now = Date.now()): boolean {
  if (policy.expiryDays <= 0 || !user.password_changed_at) return false;
  return now - new Date(user.password_changed_at).getTime() > policy.expiryDays * 86400_000;
}

export type LoginResult =
  | { ok: true; user: User }
  | { ok: false; reason: "unknown" | "bad_password" | "locked" | "disabled" | "no_password"; user?: User; lockedUntil?: Date };

/** Checks a password, counting failures and locking the account at the policy's threshold. */
export async function checkLogin(sql: Sql, username: string, password: string, policy: PasswordPolicy): Promise<LoginResult> {
  const user = await getUserByName(sql, username.trim());
  if (!user) {
    await dummyVerify(password);
    return { ok: false, reason: "unknown" };
  }
  if (user.locked_until && new Date(user.locked_until).getTime() > Date.now()) {
    return { ok: false, reason: "locked", user, lockedUntil: new Date(user.locked_until) };
  }
  if (user.disabled_at) return { ok: false, reason: "disabled", user };
  if (!user.password_hash) return { ok: false, reason: "no_password", user };
  if (await verifyPassword(password, user.password_hash)) {
    await sql`update console_users set failed_logins = 0, locked_until = null where id = ${user.id}`;
    return { ok: true, user };
  }
  const lockedUntil = await recordLoginFailure(sql, user.id, policy);
  if (lockedUntil) return { ok: false, reason: "locked", user, lockedUntil };
  return { ok: false, reason: "bad_password", user };
}

/** Counts a failed password or second factor; returns the lock end when this failure locks the account. */
export async function recordLoginFailure(sql: Sql, userId: number, policy: PasswordPolicy): Promise<Date | undefined> {
  const [r] = await sql`update console_users set
      failed_logins = case when failed_logins + 1 >= ${policy.lockoutThreshold} then 0 else failed_logins + 1 end,
      locked_until = case when failed_logins + 1 >= ${policy.lockoutThreshold}
        then now() + make_interval(mins => ${policy.lockoutMinutes}) else locked_until end
    where id = ${userId} returning locked_until`;
  const lockedUntil = r?.locked_until ? new Date(r.locked_until) : undefined;
  return lockedUntil && lockedUntil.getTime() > Date.now() ? lockedUntil : undefined;
}

/** Verifies a TOTP code once (the step is recorded) or a backup code (consumed). */
export async function checkSecondFactor(sql: Sql, box: SecretBox, user: User, code: string): Promise<"totp" | "backup" | null> {
  const c = code.replace(/\s/g, "");
  if (user.totp_secret && /^\d{6}$/.test(c)) {
    let secret: string;
    try {
      secret = box.open(user.totp_secret);
    } catch (e) {
      console.error(`TOTP check for user ${user.id} impossible: ${e instanceof Error ? e.message : e}`);
      return null;
    }
    const step = verifyTotp(secret, c, Date.now(), user.totp_last_step);
    if (step === null) return null;
    const r = await sql`update console_users set totp_last_step = ${step} where id = ${user.id} and totp_last_step < ${step}`;
    return r.count === 1 ? "totp" : null;
  }
  const norm = c.toLowerCase().replace(/-/g, "");
  if (!/^[a-z0-9]{10}$/.test(norm)) return null;
  const r = await sql`update backup_codes set used_at = now()
    where user_id = ${user.id} and code_hash = ${backupHash(norm)} and used_at is null`;
  return r.count === 1 ? "backup" : null;
}

function backupHash(norm: string): Buffer {
  return createHash("sha256").update(`servermind-backup:${norm}`).digest();
}

const BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789";

/** Replaces the user's backup codes with 10 new ones and returns them (shown once). */
export async function newBackupCodes(sql: Sql, userId: number): Promise<string[]> {
  const codes: string[] = [];
  for (let i = 0; i < 10; i++) {
    const bytes = randomBytes(10);
    const s = [...bytes].map((b) => BACKUP_ALPHABET[b % BACKUP_ALPHABET.length]).join("");
    codes.push(`${s.slice(0, 5)}-${s.slice(5)}`);
  }
  await sql.begin(async (tx) => {
    await tx`delete from backup_codes where user_id = ${userId}`;
    for (const c of codes) await tx`insert into backup_codes (user_id, code_hash) values (${userId}, ${backupHash(c.replace("-", ""))})`;
  });
  return codes;
}

export async function remainingBackupCodes(sql: Sql, userId: number): Promise<number> {
  const [{ n }] = await sql`select count(*)::int as n from backup_codes where user_id = ${userId} and used_at is null`;
  return n;
}

/** Stores the TOTP key sealed (src/auth/secret-box.ts), with the step of the code that proved it. */
export async function enableTotp(sql: Sql, box: SecretBox, userId: number, secret: string, step: number): Promise<void> {
  await sql`update console_users set totp_secret = ${box.seal(secret)}, totp_enabled_at = now(), totp_last_step = ${step} where id = ${userId}`;
}

export async function resetMfa(sql: Sql, userId: number): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`update console_users set totp_secret = null, totp_enabled_at = null, totp_last_step = 0 where id = ${userId}`;
    await tx`delete from backup_codes where user_id = ${userId}`;
  });
}

/** True when the MFA policy requires this user to have TOTP. */
export function mfaRequired(settings: ConsoleSettings, roleNames: string[]): boolean {
  if (settings.mfa.enforce === "all") return true;
  if (settings.mfa.enforce === "roles") return roleNames.some((r) => settings.mfa.roles.includes(r));
  return false;
}
