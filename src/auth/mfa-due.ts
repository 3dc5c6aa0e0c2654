/**
 * MFA that became required while a user was signed in. The policy is checked at sign-in
 * (src/web/auth/routes.ts), so without this a policy change, or an administrator role granted
 * to someone already signed in, would take effect only at that user's next sign-in. After each
 * such change the signed-in sessions of the users it now concerns (local accounts without TOTP)
 * move to the enroll stage: their next request goes to /account/mfa and nowhere else until an
 * authenticator is set up. SSO users are left to their provider's MFA policy (src/auth/sso).
 */
import type { Sql } from "postgres";
import type { ConsoleSettings } from "../settings/console-settings.ts";
import { mfaRequired } from "./users.ts";
import { userGrants } from "./roles.ts";

/** Moves the due sessions (of `userIds`, or of every signed-in user) to enroll; returns the usernames concerned. */
export async function requireEnrollmentWhereDue(sql: Sql, settings: ConsoleSettings, userIds?: number[]): Promise<string[]> {
  const ids = userIds ?? null;
  const candidates = await sql<{ id: string; username: string }[]>`
    select distinct u.id, u.username from console_sessions s join console_users u on u.id = s.user_id
    where s.stage = 'full' and s.revoked_at is null and s.expires_at > now()
      and u.auth_source = 'local' and u.totp_enabled_at is null and u.disabled_at is null
      and (${ids}::bigint[] is null or u.id = any(${ids}::bigint[]))`;
  const moved: string[] = [];
  for (const c of candidates) {
    if (!mfaRequired(settings, await userGrants(sql, Number(c.id)))) continue;
    await sql`update console_sessions set stage = 'enroll' where user_id = ${c.id} and stage = 'full' and revoked_at is null`;
    moved.push(c.username);
  }
  return moved;
}
