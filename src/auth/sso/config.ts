/**
 * The SSO config slice, read from the environment like src/config.ts:
 *   sso.publicUrl          SERVERMIND_PUBLIC_URL   external https URL of the console (redirect URIs, SP entity ID)
 *   sso.requestTtlSeconds  SERVERMIND_SSO_REQUEST_TTL_S (default 600): how long a started sign-in may take
 *   sso.ldap.poolSize      SERVERMIND_LDAP_POOL_SIZE (default 4) connections per LDAP provider
 *   sso.ldap.acquireTimeoutMs SERVERMIND_LDAP_ACQUIRE_TIMEOUT_MS (default 5000)
 * Provider settings and the SSO policy are run-time state in PostgreSQL (npm run sso).
 */
import type { SsoConfig } from "./deps.ts";

import { envInt as int } from "../../config.ts";

/** `fallbackUrl` (the server's own URL) is used when SERVERMIND_PUBLIC_URL is unset. */
export function loadSsoConfig(env: Record<string, string | undefined>, fallbackUrl: string): SsoConfig {
  const publicUrl = (env.SERVERMIND_PUBLIC_URL || fallbackUrl).replace(/\/+$/, "");
  let u: URL;
  try {
    u = new URL(publicUrl);
  } catch {
    throw new Error(`SERVERMIND_PUBLIC_URL must be an absolute URL, got ${publicUrl}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error(`SERVERMIND_PUBLIC_URL must be https://..., got ${publicUrl}`);
  if (u.pathname !== "/" || u.search) throw new Error(`SERVERMIND_PUBLIC_URL must be an origin without a path, got ${publicUrl}`);
  return {
    publicUrl: u.origin,
    requestTtlSeconds: int(env, "SERVERMIND_SSO_REQUEST_TTL_S", 600, 30, 3600),
    ldap: {
      size: int(env, "SERVERMIND_LDAP_POOL_SIZE", 4, 1, 64),
      acquireTimeoutMs: int(env, "SERVERMIND_LDAP_ACQUIRE_TIMEOUT_MS", 5000, 100, 60_000),
    },
  };
}
