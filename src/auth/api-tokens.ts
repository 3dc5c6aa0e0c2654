/**
 * Personal API tokens: a user hands a program part of their own access. A token is
 * `smp_<base64url of 32 random bytes>`, shown once at creation; the table keeps only its
 * SHA-256 (as console sessions do), plus a short hint (the first characters) to tell tokens apart.
 *
 * What a token may do, at every use (`tokenGrants`): the permissions chosen at creation that the
 * owner STILL holds, over the hosts the owner still reaches with each of them, narrowed to the
 * token's scope tags when it has some. Demoting, disabling or deleting the owner therefore
 * demotes or kills the token at once. At creation the choice must lie within what the creator
 * holds (`validateTokenRequest`): no permission they lack, no scope tag outside their host scope
 * for any chosen permission.
 *
 * Expiry is required (at most MAX_TOKEN_DAYS). Last use (time and address) is written at most
 * once a minute per token. `ai_client` marks a token used by an AI client (the MCP endpoint, src/mcp/, accepts only these)
 * with the client's name; such requests are audited with the actor type "ai".
 */
import type { Sql } from "postgres";
import { createHash, randomBytes } from "node:crypto";
import type { Grants } from "./roles.ts";
import { TAG_RE } from "./roles.ts";
import { isPermission } from "./permissions.ts";
import { scopeCovers } from "./boundaries.ts";

export const TOKEN_PREFIX = "smp_";
export const TOKEN_RE = /^smp_[A-Za-z0-9_-]{43}$/;
export const MAX_TOKEN_DAYS = 365;
export const TOKEN_NAME_RE = /^[\p{L}\p{N} ._:@()-]{1,64}$/u;
/** Last use is written at most this often per token. */
export const LAST_USE_EVERY_MS = 60_000;

export interface ApiToken {
  id: number;
  user_id: number;
  name: string;
  hint: string;
  permissions: string[];
  scope_tags: string[];
  ai_client: boolean;
  client_name: string;
  created_at: Date;
  expires_at: Date;
  last_used_at: Date | null;
  last_used_ip: string | null;
  revoked_at: Date | null;
  revoked_by: string | null;
}

export interface ApiTokenRow extends ApiToken {
  username: string;
}

export interface NewToken {
  name: string;
  permissions: string[];
  scopeTags: string[];
  expiresInDays: number;
  aiClient: boolean;
  clientName: string;
}

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

function norm<T extends ApiToken>(r: T): T {
  return { ...r, id: Number(r.id), user_id: Number(r.user_id) };
}

/**
 * Problems with a creation request, checked against what the creator holds: `held` are their
 * permissions, `scopeOf(p)` their host scope for p (null: every host; else tags).
 */
export function validateTokenRequest(t: NewToken, held: ReadonlySet<string>, scopeOf: (permission: string) => readonly string[] | null): string[] {
  const p: string[] = [];
  if (!TOKEN_NAME_RE.test(t.name)) p.push("Give the token a name of 1-64 letters, digits, spaces or . _ : @ ( ) -.");
  if (!t.permissions.length) p.push("Choose at least one permission.");
  const unknown = t.permissions.filter((x) => !isPermission(x));
  if (unknown.length) p.push(`Unknown permissions: ${unknown.join(", ")}.`);
  const lacking = t.permissions.filter((x) => isPermission(x) && !held.has(x));
  if (lacking.length) p.push(`You cannot give a token permissions you do not hold: ${lacking.join(", ")}.`);
  const badTags = t.scopeTags.filter((x) => !TAG_RE.test(x));
  if (badTags.length) p.push(`Bad tags: ${badTags.join(", ")} (letters, digits and : . _ = -).`);
  if (t.scopeTags.length > 32) p.push(`${t.scopeTags.length} scope tags; at most 32.`);
  if (t.scopeTags.length) {
    const wider = t.permissions.filter((x) => held.has(x) && !scopeCovers(scopeOf(x), t.scopeTags));
    if (wider.length) p.push(`The scope tags ${t.scopeTags.join(", ")} reach hosts outside your host scope for ${wider.join(", ")}.`);
  }
  if (!Number.isInteger(t.expiresInDays) || t.expiresInDays < 1 || t.expiresInDays > MAX_TOKEN_DAYS) {
    p.push(`The expiry is 1 to ${MAX_TOKEN_DAYS} days.`);
  }
  if (t.aiClient && !/^[\p{L}\p{N} ._:@()\/-]{1,64}$/u.test(t.clientName)) p.push("Name the AI client (1-64 characters), e.g. claude-desktop.");
  return p;
}

/** Stores a token (call validateTokenRequest first) and returns it with its secret, shown once. */
export async function createApiToken(sql: Sql, userId: number, t: NewToken): Promise<{ token: string; row: ApiToken }> {
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  const [row] = await sql<ApiToken[]>`insert into api_tokens (user_id, name, token_hash, hint, permissions, scope_tags, ai_client, client_name, expires_at)
    values (${userId}, ${t.name}, ${hashToken(token)}, ${token.slice(0, 10)}, ${[...new Set(t.permissions)].sort()},
      ${[...new Set(t.scopeTags)].sort()}, ${t.aiClient}, ${t.aiClient ? t.clientName : ""},
      now() + make_interval(days => ${t.expiresInDays}))
    returning *`;
  return { token, row: norm(row!) };
}

export type TokenCheck =
  | { ok: true; token: ApiToken; username: string }
  | { ok: false; reason: "malformed" | "unknown" | "revoked" | "expired" | "owner_disabled" };

/**
 * The token behind a bearer secret, when it is live: not revoked, not expired, its owner enabled.
 * Records the use (time, address) at most once a minute.
 */
export async function authenticateToken(sql: Sql, secret: string, ip: string): Promise<TokenCheck> {
  if (!TOKEN_RE.test(secret)) return { ok: false, reason: "malformed" };
  const [r] = await sql<Array<ApiToken & { username: string; disabled_at: Date | null; now: Date }>>`
    select t.*, u.username, u.disabled_at, now() as now from api_tokens t join console_users u on u.id = t.user_id
    where t.token_hash = ${hashToken(secret)}`;
  if (!r) return { ok: false, reason: "unknown" };
  if (r.revoked_at) return { ok: false, reason: "revoked" };
  if (new Date(r.expires_at).getTime() <= new Date(r.now).getTime()) return { ok: false, reason: "expired" };
  if (r.disabled_at) return { ok: false, reason: "owner_disabled" };
  const { username, disabled_at: _d, now, ...token } = r;
  if (!token.last_used_at || new Date(now).getTime() - new Date(token.last_used_at).getTime() >= LAST_USE_EVERY_MS) {
    await sql`update api_tokens set last_used_at = now(), last_used_ip = ${ip.slice(0, 64)}
      where id = ${token.id} and (last_used_at is null or last_used_at < now() - make_interval(secs => ${LAST_USE_EVERY_MS / 1000}))`;
  }
  return { ok: true, token: norm(token), username };
}

/**
 * What a token may do now: the owner's current grants, cut down to the token's permissions and,
 * when it has scope tags, to those tags. Per role: the permissions both hold; the tags both
 * allow (a role without tags allows the token's tags; a token without tags keeps the role's).
 * A role left with tags in common with none of the token's adds permissions but no hosts (the
 * permission's host scope is then the union of the other granting roles, possibly none).
 */
export function tokenGrants(owner: Grants, token: Pick<ApiToken, "permissions" | "scope_tags">): Grants {
  const allowed = new Set(token.permissions);
  const permissions = new Set([...owner.permissions].filter((p) => allowed.has(p)));
  const roleScopes: Grants["roleScopes"] = [];
  for (const r of owner.roleScopes) {
    const perms = r.permissions.filter((p) => allowed.has(p));
    if (!perms.length) continue;
    let tags: string[];
    if (!token.scope_tags.length) tags = r.tags;
    else if (!r.tags.length) tags = [...token.scope_tags];
    else tags = r.tags.filter((t) => token.scope_tags.includes(t));
    if (r.tags.length && token.scope_tags.length && !tags.length) continue; // no host in common
    roleScopes.push({ permissions: perms, tags });
  }
  let scopeTags: string[] | null = [];
  for (const r of roleScopes) {
    if (!r.tags.length) scopeTags = null;
    else if (scopeTags) for (const t of r.tags) if (!scopeTags.includes(t)) scopeTags.push(t);
  }
  return { roles: owner.roles.map((n) => `${n} (via token)`), permissions, scopeTags, roleScopes };
}

/** One user's tokens (revoked and expired ones too, newest first). */
export async function listUserTokens(sql: Sql, userId: number): Promise<ApiToken[]> {
  const rows = await sql<ApiToken[]>`select * from api_tokens where user_id = ${userId} order by created_at desc limit 500`;
  return rows.map(norm);
}

/** Every user's tokens, with the owner's name (the administrators' view). */
export async function listAllTokens(sql: Sql): Promise<ApiTokenRow[]> {
  const rows = await sql<ApiTokenRow[]>`select t.*, u.username from api_tokens t join console_users u on u.id = t.user_id
    order by t.created_at desc limit 2000`;
  return rows.map(norm);
}

export async function getToken(sql: Sql, id: number): Promise<ApiTokenRow | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const [r] = await sql<ApiTokenRow[]>`select t.*, u.username from api_tokens t join console_users u on u.id = t.user_id where t.id = ${id}`;
  return r ? norm(r) : undefined;
}

/**
 * Revokes every live token of a user (an administrator's password or MFA reset: the recovery
 * after a suspected compromise). Their MCP sessions end with them: the MCP endpoint
 * re-authenticates the token at every request. Returns the ids revoked.
 */
export async function revokeUserTokens(sql: Sql, userId: number, by: string): Promise<number[]> {
  const rows = await sql`update api_tokens set revoked_at = now(), revoked_by = ${by}
    where user_id = ${userId} and revoked_at is null returning id`;
  return rows.map((r) => Number(r.id)).sort((a, b) => a - b);
}

/** Revokes a live token; with `userId`, only if it is that user's. True when it was live. */
export async function revokeToken(sql: Sql, id: number, by: string, userId?: number): Promise<boolean> {
  const r = await sql`update api_tokens set revoked_at = now(), revoked_by = ${by}
    where id = ${id} and revoked_at is null ${userId === undefined ? sql`` : sql`and user_id = ${userId}`}`;
  return r.count === 1;
}
