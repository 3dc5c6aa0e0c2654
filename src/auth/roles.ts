/** Roles: built-in ones synced from the catalog at start, custom ones edited in the console. */
import type { Sql, TransactionSql } from "postgres";
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

/** Replaces a user's roles; throws LastAdminError (nothing changed) if that leaves no active administrator. */
export async function setUserRoles(sql: Sql, userId: number, roleIds: number[]): Promise<void> {
  await keepingAnAdmin(sql, async (tx) => {
    // roles kept keep their origin (user_roles.granted_by: 'manual' or an SSO provider's mapping)
    await tx`delete from user_roles where user_id = ${userId} and not (role_id = any(${roleIds}::bigint[]))`;
    for (const r of roleIds) await tx`insert into user_roles (user_id, role_id) values (${userId}, ${r}) on conflict do nothing`;
  });
}

/** The roles each of these users holds (users without roles map to []). */
export async function rolesOfUsers(sql: Sql, userIds: number[]): Promise<Map<number, Role[]>> {
  const out = new Map<number, Role[]>(userIds.map((id) => [id, []]));
  if (!userIds.length) return out;
  const rows = await sql`select ur.user_id, r.* from user_roles ur join console_roles r on r.id = ur.role_id
    where ur.user_id = any(${userIds}::bigint[]) order by r.name`;
  for (const r of rows) {
    const { user_id, ...role } = r;
    out.get(Number(user_id))?.push({ ...(role as unknown as Role), id: Number(role.id) });
  }
  return out;
}

/** The users holding a role. */
export async function roleHolders(sql: Sql, roleId: number): Promise<Array<{ id: number; username: string }>> {
  const rows = await sql`select u.id, u.username from user_roles ur join console_users u on u.id = ur.user_id
    where ur.role_id = ${roleId} order by u.username`;
  return rows.map((r) => ({ id: Number(r.id), username: r.username as string }));
}

/** Raised when a change would leave the console without an active administrator. */
export class LastAdminError extends Error {
  constructor() {
    super("This is the last active administrator; give another user the admin role first.");
  }
}

/** Enabled users holding the built-in admin role. */
export async function activeAdminCount(sql: Sql | TransactionSql): Promise<number> {
  const [{ n }] = await sql`select count(distinct u.id)::int as n from user_roles ur join console_roles r on r.id = ur.role_id
    join console_users u on u.id = ur.user_id where r.name = 'admin' and r.builtin and u.disabled_at is null`;
  return n;
}

/** Serializes every change that could remove an administrator (held to the end of the transaction). */
export async function lockAdmins(tx: TransactionSql): Promise<void> {
  await tx`select pg_advisory_xact_lock(hashtext('servermind.console.admins'))`;
}

/**
 * Runs a change that could remove an administrator (roles replaced, user disabled or deleted) in
 * one transaction, serialized with every other such change by an advisory lock, and rolls it
 * back with LastAdminError when it takes the count of active administrators from some to none.
 * (Two administrators demoting each other at once cannot both succeed.)
 */
export async function keepingAnAdmin<T>(sql: Sql, change: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return (await sql.begin(async (tx) => {
    await lockAdmins(tx);
    const before = await activeAdminCount(tx);
    const out = await change(tx);
    if (before > 0 && (await activeAdminCount(tx)) === 0) throw new LastAdminError();
    return out;
  })) as T;
}
