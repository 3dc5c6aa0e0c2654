/**
 * Provider records and group mappings in PostgreSQL (150_sso.sql). Plain functions over `sql`.
 * Secret fields (client secret, LDAP bind password, SP private key) are sealed at rest with the
 * console's SecretBox (AES-256-GCM, src/auth/secret-box.ts) and opened only when read for use.
 */
import type { Sql } from "postgres";
import type { SecretBox } from "../secret-box.ts";

export type ProviderKind = "oidc" | "saml" | "ldap";

export interface ProviderRecord<C = Record<string, unknown>> {
  id: string;
  kind: ProviderKind;
  name: string;
  enabled: boolean;
  config: C;
}

export const SECRET_FIELDS = ["clientSecret", "bindPassword", "spPrivateKeyPem"] as const;

const REQUIRED: Record<ProviderKind, string[]> = {
  oidc: ["issuer", "clientId"],
  saml: ["idpEntityId", "idpSsoUrl", "idpCerts"],
  ldap: ["url", "bindDn", "bindPassword", "userBase", "userFilter", "groupBase"],
};

/** What is wrong with a provider's settings, as messages naming the field; empty when usable. */
export function validateProvider(p: ProviderRecord<object>): string[] {
  const c = p.config as Record<string, unknown>;
  const problems: string[] = [];
  if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(p.id)) problems.push(`provider id ${JSON.stringify(p.id)}: 1-32 of a-z 0-9 _ -, starting with a letter or digit`);
  if (!REQUIRED[p.kind]) return [...problems, `provider kind must be oidc, saml or ldap, not ${p.kind}`];
  for (const f of REQUIRED[p.kind]) {
    const v = c[f];
    if (v === undefined || v === "" || (Array.isArray(v) && v.length === 0)) problems.push(`${p.kind} provider ${p.id}: ${f} is required`);
  }
  const url = (f: string, schemes: string[]) => {
    if (typeof c[f] !== "string" || !c[f]) return;
    try {
      if (!schemes.includes(new URL(c[f] as string).protocol)) problems.push(`${p.kind} provider ${p.id}: ${f} must use ${schemes.join(" or ")}`);
    } catch {
      problems.push(`${p.kind} provider ${p.id}: ${f} is not a URL`);
    }
  };
  if (p.kind === "oidc") url("issuer", c.allowHttpLoopback ? ["https:", "http:"] : ["https:"]);
  if (p.kind === "saml") url("idpSsoUrl", ["https:", "http:"]);
  if (p.kind === "ldap") {
    url("url", ["ldaps:", "ldap:"]);
    if (typeof c.userFilter === "string" && !c.userFilter.includes("{username}")) problems.push(`ldap provider ${p.id}: userFilter must contain {username}`);
    if (c.nested !== undefined && !["ad", "recursive", "none"].includes(c.nested as string)) problems.push(`ldap provider ${p.id}: nested must be ad, recursive or none`);
  }
  return problems;
}

export async function saveProvider(sql: Sql, secrets: SecretBox, p: ProviderRecord<object>): Promise<void> {
  const problems = validateProvider(p);
  if (problems.length) throw new Error(problems.join("; "));
  const config: Record<string, unknown> = { ...(p.config as Record<string, unknown>) };
  for (const f of SECRET_FIELDS) if (typeof config[f] === "string" && config[f]) config[f] = secrets.seal(config[f] as string);
  await sql`insert into sso_providers (id, kind, name, enabled, config)
    values (${p.id}, ${p.kind}, ${p.name}, ${p.enabled}, ${sql.json(config as never)})
    on conflict (id) do update set kind = excluded.kind, name = excluded.name, enabled = excluded.enabled,
      config = excluded.config, updated_at = now()`;
}

/** An enabled provider (of `kind`, when given) with its secrets opened, or undefined. */
export async function getProvider<C>(sql: Sql, secrets: SecretBox, id: string, kind?: ProviderKind, includeDisabled = false): Promise<ProviderRecord<C> | undefined> {
  const [r] = await sql`select id, kind, name, enabled, config from sso_providers where id = ${id}`;
  if (!r || (!r.enabled && !includeDisabled) || (kind && r.kind !== kind)) return undefined;
  const config: Record<string, unknown> = { ...r.config };
  for (const f of SECRET_FIELDS) if (typeof config[f] === "string" && config[f]) config[f] = secrets.open(config[f] as string);
  return { id: r.id, kind: r.kind, name: r.name, enabled: r.enabled, config: config as C };
}

export async function listProviders(sql: Sql): Promise<Array<Omit<ProviderRecord, "config">>> {
  const rows = await sql`select id, kind, name, enabled from sso_providers order by id`;
  return rows as unknown as Array<Omit<ProviderRecord, "config">>;
}

/** Replaces a provider's mappings: external group -> role names. Unknown role names throw. */
export async function setGroupMappings(sql: Sql, providerId: string, mappings: Array<{ group: string; role: string }>): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`delete from sso_group_mappings where provider_id = ${providerId}`;
    for (const m of mappings) {
      const [r] = await tx`select id from console_roles where name = ${m.role}`;
      if (!r) throw new Error(`group mapping for ${m.group}: no role named ${m.role}`);
      await tx`insert into sso_group_mappings (provider_id, external_group, role_id) values (${providerId}, ${m.group}, ${r.id})
        on conflict do nothing`;
    }
  });
}

/** Every mapping, for display: provider, external group, role name. */
export async function listGroupMappings(sql: Sql): Promise<Array<{ provider_id: string; external_group: string; role: string }>> {
  const rows = await sql`select m.provider_id, m.external_group, r.name as role from sso_group_mappings m
    join console_roles r on r.id = m.role_id order by m.provider_id, lower(m.external_group), r.name`;
  return rows as unknown as Array<{ provider_id: string; external_group: string; role: string }>;
}
