/**
 * The SSO policy (enforcement, MFA for SSO users), stored in console_settings under the key
 * "sso" so administrators change it at run time (npm run sso -- policy ...); every server node
 * and both the SSO flows and the console's password login read the same row.
 */
import type { Sql } from "postgres";
import { DEFAULT_SSO_POLICY, type SsoPolicy } from "./types.ts";

const MODES = new Set(["trust-idp", "require-local", "off"]);

export async function loadSsoPolicy(sql: Sql, defaults: SsoPolicy = DEFAULT_SSO_POLICY): Promise<SsoPolicy> {
  const [r] = await sql`select value from console_settings where key = 'sso'`;
  const v = (r?.value ?? {}) as Partial<SsoPolicy>;
  return {
    enforced: typeof v.enforced === "boolean" ? v.enforced : defaults.enforced,
    mfa: v.mfa && MODES.has(v.mfa) ? v.mfa : defaults.mfa,
    requireMfa: typeof v.requireMfa === "boolean" ? v.requireMfa : defaults.requireMfa,
  };
}

export async function saveSsoPolicy(sql: Sql, p: SsoPolicy): Promise<void> {
  if (!MODES.has(p.mfa)) throw new Error(`sso policy: mfa must be one of ${[...MODES].join(", ")}, not ${p.mfa}`);
  await sql`insert into console_settings (key, value) values ('sso', ${sql.json({ enforced: p.enforced, mfa: p.mfa, requireMfa: p.requireMfa })})
    on conflict (key) do update set value = excluded.value, updated_at = now()`;
}
