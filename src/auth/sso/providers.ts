/** Provider records and group mappings in PostgreSQL (150_sso.sql). Plain functions over `sql`. */
import type { Sql } from "postgres";

export type ProviderKind = "oidc" | "saml" | "ldap";

export interface ProviderRecord<C = Record<string, unknown>> {
  id: string;
  kind: ProviderKind;
  name: string;
  enabled: boolean;
  config: C;
}

export async function saveProvider(sql: Sql, p: ProviderRecord<object>): Promise<void> {
  await sql`insert into sso_providers (id, kind, name, enabled, config)
    values (${p.id}, ${p.kind}, ${p.name}, ${p.enabled}, ${sql.json(p.config as never)})
    on conflict (id) do update set kind = excluded.kind, name = excluded.name, enabled = excluded.enabled,
      config = excluded.config, updated_at = now()`;
}

export async function getProvider<C>(sql: Sql, id: string, kind?: ProviderKind): Promise<ProviderRecord<C> | undefined> {
  const [r] = await sql`select id, kind, name, enabled, config from sso_providers where id = ${id}`;
  if (!r || !r.enabled || (kind && r.kind !== kind)) return undefined;
  return r as unknown as ProviderRecord<C>;
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
