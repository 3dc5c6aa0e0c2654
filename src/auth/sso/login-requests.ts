/**
 * Sign-ins in flight (OIDC state + nonce + PKCE verifier, SAML AuthnRequest IDs), kept in
 * PostgreSQL so any server node can finish what another started, and consumed exactly once.
 */
import type { Sql } from "postgres";
import { createHash } from "node:crypto";

function keyOf(kind: string, value: string): string {
  return `${kind}:${createHash("sha256").update(value).digest("base64url")}`;
}

export async function saveLoginRequest(sql: Sql, kind: string, value: string, providerId: string, data: Record<string, unknown>, ttlSeconds: number): Promise<void> {
  await sql`delete from sso_login_requests where expires_at < now()`;
  await sql`insert into sso_login_requests (key, provider_id, data, expires_at)
    values (${keyOf(kind, value)}, ${providerId}, ${sql.json(data as never)}, now() + make_interval(secs => ${ttlSeconds}))`;
}

/** Deletes and returns the request, or undefined when unknown, expired or already used. */
export async function takeLoginRequest(sql: Sql, kind: string, value: string): Promise<{ providerId: string; data: Record<string, unknown> } | undefined> {
  if (!value || value.length > 512) return undefined;
  const [r] = await sql`delete from sso_login_requests where key = ${keyOf(kind, value)} returning provider_id, data, expires_at`;
  if (!r || new Date(r.expires_at).getTime() < Date.now()) return undefined;
  return { providerId: r.provider_id, data: r.data };
}

/** Reads without consuming (SAML: node-saml checks InResponseTo before we consume it). */
export async function peekLoginRequest(sql: Sql, kind: string, value: string): Promise<{ providerId: string; data: Record<string, unknown> } | undefined> {
  if (!value || value.length > 512) return undefined;
  const [r] = await sql`select provider_id, data from sso_login_requests where key = ${keyOf(kind, value)} and expires_at >= now()`;
  return r ? { providerId: r.provider_id, data: r.data } : undefined;
}
