/**
 * The least-privilege role the server runs as. Migrations, partition upkeep and other DDL run as
 * the owner (DATABASE_URL, or the embedded cluster's `postgres`); everything else runs as a
 * runtime role that is neither superuser nor owner. It may read and write the application's
 * tables, but on the audit trail only INSERT and SELECT: no UPDATE, DELETE or TRUNCATE on
 * audit_log, audit_anchor or audit_checkpoints. Rows leave audit_log only through the owner's
 * SECURITY DEFINER function audit_purge_by_retention(), which the runtime role may EXECUTE.
 *
 * The grants are re-applied at every start, after migrations, so tables added later are covered;
 * default privileges cover tables the owner creates at run time (daily partitions).
 */
import type { Sql } from "postgres";

/** Tables the runtime role may only append to and read. */
export const APPEND_ONLY_TABLES = ["audit_log", "audit_anchor", "audit_checkpoints"] as const;

function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`"${name}" is not a usable role name (lower-case letters, digits, _; at most 63)`);
  return `"${name}"`;
}

/** The generated runtime role's name for a database: `<database>_app`, made a valid identifier. */
export function runtimeRoleName(database: string): string {
  const base = database.toLowerCase().replace(/[^a-z0-9_]/g, "_").replace(/^([^a-z_])/, "_$1").slice(0, 58);
  return `${base}_app`;
}

/**
 * Creates the role (LOGIN, no other attribute) or resets its password to `password`. Needs
 * CREATEROLE (or superuser) on the owner connection. The password never reaches a log: it is
 * sent only in this statement, which the server does not log by default.
 */
export async function ensureRuntimeRole(owner: Sql, role: string, password: string): Promise<void> {
  const quoted = ident(role);
  const literal = `'${password.replace(/'/g, "''")}'`;
  const [exists] = await owner`select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls from pg_roles where rolname = ${role}`;
  if (exists && (exists.rolsuper || exists.rolcreaterole || exists.rolcreatedb || exists.rolbypassrls)) {
    throw new Error(`the runtime role ${role} has SUPERUSER, CREATEROLE, CREATEDB or BYPASSRLS; it must be a plain LOGIN role`);
  }
  await owner.unsafe(exists
    ? `alter role ${quoted} with login password ${literal}`
    : `create role ${quoted} with login nosuperuser nocreatedb nocreaterole noinherit noreplication nobypassrls password ${literal}`);
}

/** Grants `role` what the server needs in the current database, and no more on the audit trail. */
export async function grantRuntimeRole(owner: Sql, role: string): Promise<void> {
  const r = ident(role);
  const [{ db, me }] = await owner`select current_database() as db, current_user as me`;
  if (me === role) throw new Error(`the runtime role ${role} is the owner connection's own role; give the server a separate role (DATABASE_RUNTIME_URL)`);
  const append = APPEND_ONLY_TABLES.join(", ");
  await owner.begin(async (tx) => {
    await tx.unsafe(`grant connect, temporary on database "${String(db).replace(/"/g, '""')}" to ${r}`);
    await tx.unsafe(`grant usage on schema public to ${r}`);
    await tx.unsafe(`grant select, insert, update, delete on all tables in schema public to ${r}`);
    await tx.unsafe(`grant usage, select, update on all sequences in schema public to ${r}`);
    await tx.unsafe(`alter default privileges in schema public grant select, insert, update, delete on tables to ${r}`);
    await tx.unsafe(`alter default privileges in schema public grant usage, select, update on sequences to ${r}`);
    await tx.unsafe(`revoke update, delete, truncate, references, trigger on ${append} from ${r}`);
    await tx.unsafe(`revoke insert on audit_anchor from ${r}`);
    await tx.unsafe(`revoke insert, update, delete, truncate on schema_migrations from ${r}`);
    await tx.unsafe(`grant execute on function audit_purge_by_retention() to ${r}`);
  });
}

/** `url` with its user and password replaced. */
export function withCredentials(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
}
