/**
 * Local sign-in while SSO is enforced. Only accounts flagged `break_glass` may use a local
 * password then, always with TOTP, and every use (and every refused attempt) raises a
 * security event in the audit trail. The console's login handler calls `localLoginGate` before
 * checking a password and `breakGlassSignIn` to do the whole check in one call.
 */
import type { Sql } from "postgres";
import { checkLogin, checkSecondFactor, getUserByName, type User } from "../users.ts";
import { beginAttempt, signInSucceeded, throttleLimits } from "../throttle.ts";
import type { PasswordPolicy } from "../../settings/console-settings.ts";
import type { SecretBox } from "../secret-box.ts";
import type { RequestInfo, SsoAudit } from "./audit-event.ts";
import type { SsoPolicy } from "./types.ts";

export type LocalGate =
  | { allowed: true; breakGlass: boolean }
  | { allowed: false; reason: "sso_enforced" | "break_glass_needs_totp" };

/** Whether this account may sign in with a local password under the SSO policy. */
export function localLoginGate(policy: SsoPolicy, user: Pick<User, "totp_enabled_at"> & { break_glass?: boolean }): LocalGate {
  if (!policy.enforced) return { allowed: true, breakGlass: false };
  if (!user.break_glass) return { allowed: false, reason: "sso_enforced" };
  if (!user.totp_enabled_at) return { allowed: false, reason: "break_glass_needs_totp" };
  return { allowed: true, breakGlass: true };
}

export type BreakGlassResult =
  | { ok: true; user: User; breakGlass: boolean }
  | { ok: false; reason: string };

/**
 * Password and TOTP in one step, for the login form while SSO is enforced. Each call is one
 * attempt for the sign-in throttle (src/auth/throttle.ts), charged before anything is checked.
 */
export async function breakGlassSignIn(
  sql: Sql,
  secrets: SecretBox,
  audit: SsoAudit,
  policy: SsoPolicy,
  passwordPolicy: PasswordPolicy,
  input: { username: string; password: string; totp: string },
  req: RequestInfo,
): Promise<BreakGlassResult> {
  const base = { ip: req.ip, userAgent: req.userAgent, target: `user:${input.username.slice(0, 64)}` };
  const candidate = await getUserByName(sql, input.username.trim());
  const flagged = candidate ? ((await sql`select break_glass from console_users where id = ${candidate.id}`)[0]?.break_glass as boolean) : false;
  const gate = candidate ? localLoginGate(policy, { ...candidate, break_glass: flagged }) : { allowed: false as const, reason: "sso_enforced" as const };
  if (policy.enforced && !gate.allowed) {
    await audit({ ...base, actor: { type: "anonymous", name: input.username.slice(0, 64) }, category: "security_event",
      action: "break_glass.refused", success: false, details: { reason: gate.reason } });
    return { ok: false, reason: gate.reason };
  }
  const limits = throttleLimits(passwordPolicy);
  const attempt = await beginAttempt(sql, limits, { username: input.username, ip: req.ip, factor: policy.enforced ? "second" : "password" });
  if (!attempt.ok) {
    await audit({ ...base, actor: { type: "anonymous", name: input.username.slice(0, 64) }, category: "security_event",
      action: "login.throttled", success: false, details: { retry_after_s: attempt.retryAfterS } });
    return { ok: false, reason: "throttled" };
  }
  const login = await checkLogin(sql, input.username, input.password);
  if (!login.ok) {
    await audit({ ...base, actor: { type: "anonymous", name: input.username.slice(0, 64) }, category: policy.enforced ? "security_event" : "authentication",
      action: policy.enforced ? "break_glass.refused" : "login", success: false, details: { reason: login.reason } });
    return { ok: false, reason: login.reason };
  }
  if (policy.enforced) {
    // A TOTP code only: backup codes do not open the break-glass path.
    const code = input.totp.replace(/\s/g, "");
    const factor = /^\d{6}$/.test(code) ? await checkSecondFactor(sql, secrets, login.user, code) : null;
    if (!factor) {
      await audit({ ...base, actor: { type: "user", id: login.user.id, name: login.user.username }, category: "security_event",
        action: "break_glass.refused", success: false, details: { reason: "bad_totp" } });
      return { ok: false, reason: "bad_totp" };
    }
    await signInSucceeded(sql, limits, attempt.ticket);
    await audit({ ...base, actor: { type: "user", id: login.user.id, name: login.user.username }, category: "security_event",
      action: "break_glass.used", success: true, details: { factor } });
    return { ok: true, user: login.user, breakGlass: true };
  }
  await signInSucceeded(sql, limits, attempt.ticket);
  return { ok: true, user: login.user, breakGlass: false };
}
