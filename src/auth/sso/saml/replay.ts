/**
 * SAML replay protection in PostgreSQL, shared by every server node:
 * - the AuthnRequest IDs we issued (node-saml's CacheProvider), so a Response must answer one of
 *   our requests and can do so once;
 * - every accepted assertion ID until it expires, so the same assertion is never accepted twice.
 */
import type { Sql } from "postgres";
import type { CacheProvider, CacheItem } from "@node-saml/node-saml";
import { peekLoginRequest, saveLoginRequest, takeLoginRequest } from "../login-requests.ts";

export function requestIdCache(sql: Sql, providerId: string, ttlSeconds: number): CacheProvider {
  return {
    async saveAsync(key: string, value: string): Promise<CacheItem | null> {
      await saveLoginRequest(sql, "saml-request", key, providerId, { instant: value }, ttlSeconds);
      return { value, createdAt: Date.now() };
    },
    async getAsync(key: string): Promise<string | null> {
      const r = await peekLoginRequest(sql, "saml-request", key);
      return r && r.providerId === providerId ? String(r.data.instant) : null;
    },
    async removeAsync(key: string | null): Promise<string | null> {
      if (!key) return null;
      const r = await takeLoginRequest(sql, "saml-request", key);
      return r ? String(r.data.instant) : null;
    },
  };
}

/** Records an assertion ID; false when it was seen before (a replay). */
export async function firstUseOfAssertion(sql: Sql, providerId: string, assertionId: string, expiresAt: Date): Promise<boolean> {
  await sql`delete from sso_saml_assertions where expires_at < now()`;
  const rows = await sql`insert into sso_saml_assertions (provider_id, assertion_id, expires_at)
    values (${providerId}, ${assertionId}, ${expiresAt}) on conflict do nothing returning assertion_id`;
  return rows.length === 1;
}
