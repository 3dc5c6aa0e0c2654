/** Roles: built-in ones synced from the catalog at start, custom ones edited in the console. */
import type { Sql } from "postgres";
import { BUILTIN_ROLES, isPermission } from "./permissions.ts";

export interface Role {
  id: number;
  name: string;
  description: string;
  builtin: boolean;
  permissions: string[];
  scope_tags: string[];
}

export async function syncBuiltinRoles(sql: Sql): Promise<void> {
  for (const r of BUILTIN_ROLES) {
    await sql`insert into console_roles (name, description, builtin, permissions)
      values (${r.name}, ${r.description}, true, ${r.permissions})
      on conflict (name) do update set description = excluded.description, permissions = excluded.permissions,
        builtin = true, updated_at = now()
      where console_roles.builtin`;
  }
}

export async function listRoles(sql: Sql): Promise<Array<Role & { users: number }>> {
  const rows = await sql`select r.*, (select count(*)::int from user_roles ur where ur.role_id = r.id) as users
    from console_roles r order by builtin desc, name`;
  return rows.map((r) => ({ ...(r as unknown as Role), id: Number(r.id), users: r.users }));
}

export async function getRole(sql: Sql, id: number): Promise<Role | undefined> {
  const [r] = await sql<Role[]>`select * from console_roles where id = ${id}`;
  return r ? { ...r, id: Number(r.id) } : undefined;
}

export async function roleIdByName(sql: Sql, name: string): Promise<number | undefined> {
  const [r] = await sql`select id from console_roles where name = ${name}`;
  return r ? Number(r.id) : undefined;
}

export const ROLE_NAME_RE = /^[a-z0-9][a-z0-9 _-]{1,47}$/i;
export const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9:._=-]{0,63}$/;

export function validateRole(name: string, permissions: string[], tags: string[]): string[] {
  const p: string[] = [];
  if (!ROLE_NAME_RE.test(name)) p.push("Role names are 2-48 letters, digits, spaces, _ or -.");
  const unknown = permissions.filter((x) => !isPermission(x));
  if (unknown.length) p.push(`Unknown permissions: ${unknown.join(", ")}.`);
  const badTags = tags.filter((t) => !TAG_RE.test(t));
  if (badTags.length) p.push(`Bad tags: ${badTags.join(", ")} (letters, digits and : . _ = -).`);
  return p;
}

export async function createRole(sql: Sql, name: string, description: string, permissions: string[], tags: string[]): Promise<number> {
  const [{ id }] = await sql`insert into console_roles (name, description, permissions, scope_tags)
    values (${name}, ${description}, ${permissions}, ${tags}) returning id`;
  return Number(id);
}

export async function updateRole(sql: Sql, id: number, description: string, permissions: string[], tags: string[]): Promise<void> {
  await sql`update console_roles set description = ${description}, permissions = ${permissions}, scope_tags = ${tags},
    updated_at = now() where id = ${id} and not builtin`;
}

export async function deleteRole(sql: Sql, id: number): Promise<void> {
  await sql`delete from console_roles where id = ${id} and not builtin`;
}

export interface Grants {
  roles: string[];
  permissions: Set<string>;
  /**
   * null: every host; otherwise hosts carrying at least one of these tags. The union over ALL
   * roles, whatever they grant: host access is decided per permission from `roleScopes`
   * (src/auth/host-scope.ts), never from this.
   */
  scopeTags: string[] | null;
  /** Each role's permissions and scope tags, from which the guard builds per-permission HostScopes. */
  roleScopes: Array<{ permissions: string[]; tags: string[] }>;
}

export async function userGrants(sql: Sql, userId: number): Promise<Grants> {
  const rows = await sql`select r.name, r.permissions, r.scope_tags from user_roles ur
    join console_roles r on r.id = ur.role_id where ur.user_id = ${userId}`;
  const permissions = new Set<string>();
  let scope: string[] | null = [];
  for (const r of rows) {
    for (const p of r.permissions as string[]) permissions.add(p);
    if ((r.scope_tags as string[]).length === 0) scope = null;
    else if (scope) scope.push(...(r.scope_tags as string[]));
  }
  const roleScopes = rows.map((r) => ({ permissions: r.permissions as string[], tags: r.scope_tags as string[] }));
  return { roles: rows.map((r) => r.name as string), permissions, scopeTags: rows.length === 0 ? [] : scope, roleScopes };
}

export async function setUserRoles(sql: Sql, userId: number, roleIds: number[]): Promise<void> {
  await sql.begin(async (tx) => {
    // roles kept keep their origin (user_roles.granted_by: 'manual' or an SSO provider's mapping)
    await tx`delete from user_roles where user_id = ${userId} and not (role_id = any(${roleIds}::bigint[]))`;
    for (const r of roleIds) await tx`insert into user_roles (user_id, role_id) values (${userId}, ${r}) on conflict do nothing`;
  });
}
