/**
 * Console sessions, stored in PostgreSQL so every server node sees the same ones. The cookie
 * carries a random token; the table keeps only its SHA-256. A session ends at its absolute
 * expiry, after the idle timeout, or when revoked (checked on every request).
 */
import type { Sql } from "postgres";
import { createHash, randomBytes } from "node:crypto";
import type { SessionPolicy } from "../settings/console-settings.ts";

export type SessionStage = "mfa" | "enroll" | "password" | "full";

export interface Session {
  id: number;
  user_id: number;
  stage: SessionStage;
  csrf_token: string;
  ip: string;
  user_agent: string;
  created_at: Date;
  last_seen_at: Date;
  expires_at: Date;
  reauth_at: Date | null;
  pending_totp: string | null;
  revoked_at: Date | null;
}

/**
 * `__Host-` makes the browser refuse the cookie unless it is Secure, Path=/ and has no Domain
 * (src/web/guard.ts cookie() sets exactly that), so no sibling host or plain-HTTP page can set
 * or overwrite it.
 */
export const SESSION_COOKIE = "__Host-sm_session";

export function tokenHash(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

export async function createSession(sql: Sql, userId: number, stage: SessionStage, ip: string, userAgent: string, policy: SessionPolicy): Promise<{ token: string; session: Session }> {
  const token = randomBytes(32).toString("base64url");
  const csrf = randomBytes(24).toString("base64url");
  const [s] = await sql<Session[]>`insert into console_sessions (token_hash, user_id, stage, csrf_token, ip, user_agent, expires_at, reauth_at)
    values (${tokenHash(token)}, ${userId}, ${stage}, ${csrf}, ${ip}, ${userAgent.slice(0, 512)},
      now() + make_interval(hours => ${policy.absoluteHours}), ${stage === "full" ? sql`now()` : null})
    returning *`;
  return { token, session: norm(s!) };
}

function norm(s: Session): Session {
  return { ...s, id: Number(s.id), user_id: Number(s.user_id) };
}

/**
 * The live session for a cookie token, or null. Touches last_seen_at (at most every 15 s, so
 * busy pages do not write on every request; never for background polls) and ends sessions past
 * their idle timeout.
 */
export async function loadSession(sql: Sql, token: string, policy: SessionPolicy, opts: { background?: boolean } = {}): Promise<Session | null> {
  if (!token || token.length > 100) return null;
  const [s] = await sql<Session[]>`select * from console_sessions where token_hash = ${tokenHash(token)}`;
  if (!s || s.revoked_at) return null;
  const now = Date.now();
  if (new Date(s.expires_at).getTime() <= now) return null;
  if (now - new Date(s.last_seen_at).getTime() > policy.idleMinutes * 60_000) {
    await sql`update console_sessions set revoked_at = now(), revoked_reason = 'idle timeout' where id = ${s.id} and revoked_at is null`;
    return null;
  }
  // background polls (live tables) do not count as activity, so the idle timeout still applies
  if (!opts.background && now - new Date(s.last_seen_at).getTime() > 15_000) {
    await sql`update console_sessions set last_seen_at = now() where id = ${s.id}`;
  }
  return norm(s);
}

export async function setStage(sql: Sql, sessionId: number, stage: SessionStage): Promise<void> {
  await sql`update console_sessions set stage = ${stage}, reauth_at = case when ${stage} = 'full' then now() else reauth_at end
    where id = ${sessionId}`;
}

export async function markReauth(sql: Sql, sessionId: number): Promise<void> {
  await sql`update console_sessions set reauth_at = now() where id = ${sessionId}`;
}

export async function setPendingTotp(sql: Sql, sessionId: number, secret: string | null): Promise<void> {
  await sql`update console_sessions set pending_totp = ${secret} where id = ${sessionId}`;
}

export async function revokeSession(sql: Sql, id: number, reason: string, userId?: number): Promise<boolean> {
  const r = await sql`update console_sessions set revoked_at = now(), revoked_reason = ${reason}
    where id = ${id} and revoked_at is null ${userId === undefined ? sql`` : sql`and user_id = ${userId}`}`;
  return r.count === 1;
}

/** Revokes every session of a user except `keep` (password change, user disabled). */
export async function revokeUserSessions(sql: Sql, userId: number, reason: string, keep?: number): Promise<number> {
  const r = await sql`update console_sessions set revoked_at = now(), revoked_reason = ${reason}
    where user_id = ${userId} and revoked_at is null ${keep === undefined ? sql`` : sql`and id <> ${keep}`}`;
  return r.count;
}

export interface SessionRow {
  id: number;
  user_id: number;
  username: string;
  ip: string;
  user_agent: string;
  created_at: Date;
  last_seen_at: Date;
  stage: SessionStage;
}

export async function listSessions(sql: Sql, userId: number | null, policy: SessionPolicy): Promise<SessionRow[]> {
  const rows = await sql<SessionRow[]>`select s.id, s.user_id, u.username, s.ip, s.user_agent, s.created_at, s.last_seen_at, s.stage
    from console_sessions s join console_users u on u.id = s.user_id
    where s.revoked_at is null and s.expires_at > now()
      and s.last_seen_at > now() - make_interval(mins => ${policy.idleMinutes})
      ${userId === null ? sql`` : sql`and s.user_id = ${userId}`}
    order by s.last_seen_at desc limit 500`;
  return rows.map((r) => ({ ...r, id: Number(r.id), user_id: Number(r.user_id) }));
}
