/**
 * Privilege boundaries: who may act on whom, and what may be granted. Pure functions over
 * "holdings" (a set of permissions and a host scope); no SQL, no HTTP.
 *
 * A holding's scope is `null` for every host, or a list of tags: the holder sees a host that
 * carries at least one of them (src/store/postgres/queries-console.ts `inScope`: tag overlap).
 *
 * Covers. Holding A covers holding B when
 *   - every permission of B is a permission of A, and
 *   - A's scope is `null` (all hosts), or B's scope is a list whose every tag is in A's list, and
 *   - for each permission of B, A's scope for that permission covers B's the same way.
 * That is exactly "every host B can see, A can see": a host B sees carries some tag t of B's
 * list; t is in A's list, so A sees it too. An unscoped holding (null) is wider than any scoped
 * one; tags compare exactly (case-sensitive), as the host filter does. A holding with no roles
 * (no permissions, scope []) is covered by everyone. The per-permission rule matters for a user
 * holding roles (`roleScopes`, as in Grants): host access is decided per permission
 * (src/auth/host-scope.ts), so an unscoped helpdesk role (users.*) next to an operator role
 * scoped to group:web leaves the operator permissions at group:web, and its holder must not
 * grant them over every host.
 *
 * The rules built on it (see docs/security.md, "Privilege boundaries"):
 *   - an actor may act on a user (password, MFA, roles, sessions, disable, unlock, delete,
 *     break-glass flag) only when the actor's holding covers that user's;
 *   - an actor may grant a role (to a user, itself included, or through an SSO group mapping),
 *     create one or edit one into a permission set and scope only when its holding covers it;
 *   - editing or deleting a role acts on every user who holds it: each of them must be
 *     covered by the editor, before and after the change.
 */
import type { RoleScope } from "./host-scope.ts";

export interface Holding {
  permissions: ReadonlySet<string> | readonly string[];
  /** null: every host; otherwise hosts carrying at least one of these tags */
  scopeTags: readonly string[] | null;
  /**
   * Each role's permissions and tags ([]: every host), when the holding is a user's roles (as
   * Grants carries them): its scope for a permission is then the union over the roles granting
   * it (the rule of HostScope.forPermission). Absent: `scopeTags` for every permission (one role).
   */
  roleScopes?: readonly RoleScope[];
}

/**
 * The holding's host scope for one permission (null: every host): with roleScopes, the union
 * over the roles granting it, the rule of HostScope.forPermission (which only the guard and the
 * MCP endpoint call to build scopes; here only tags are compared).
 */
function scopeOf(h: Holding, permission: string): readonly string[] | null {
  if (!h.roleScopes) return h.scopeTags;
  const granting = h.roleScopes.filter((r) => r.permissions.includes(permission));
  if (granting.some((r) => r.tags.length === 0)) return null;
  return [...new Set(granting.flatMap((r) => r.tags))];
}

/** What a target holds beyond an actor: missing permissions and the scope the actor lacks. */
export interface Excess {
  permissions: string[];
  /** "all hosts" when the target is unscoped and the actor is not; else the tags the actor lacks */
  scope: "all hosts" | string[];
}

function has(p: Holding["permissions"], id: string): boolean {
  return p instanceof Set ? p.has(id) : (p as readonly string[]).includes(id);
}

/** True when every host visible under `target` scope is visible under `actor` scope. */
export function scopeCovers(actor: readonly string[] | null, target: readonly string[] | null): boolean {
  if (actor === null) return true;
  if (target === null) return false;
  return target.every((t) => actor.includes(t));
}

/** What `target` holds that `actor` does not (empty lists when the actor covers the target). */
export function excessOf(actor: Holding, target: Holding): Excess {
  const permissions = [...new Set(target.permissions)].filter((p) => !has(actor.permissions, p)).sort();
  let scope: Excess["scope"] = [];
  if (actor.scopeTags !== null) {
    scope = target.scopeTags === null ? "all hosts" : [...new Set(target.scopeTags)].filter((t) => !actor.scopeTags!.includes(t));
  }
  // per permission: the actor's scope for it must cover the target's
  for (const p of new Set(target.permissions)) {
    if (scope === "all hosts") break;
    const mine = scopeOf(actor, p);
    if (!has(actor.permissions, p) || mine === null) continue;
    const theirs = scopeOf(target, p);
    if (theirs === null) scope = "all hosts";
    else for (const t of theirs) if (!mine.includes(t) && !scope.includes(t)) scope.push(t);
  }
  return { permissions, scope: scope === "all hosts" ? scope : scope.sort() };
}

export function isEmptyExcess(e: Excess): boolean {
  return e.permissions.length === 0 && e.scope !== "all hosts" && e.scope.length === 0;
}

/** The actor holds every permission of the target and a host scope at least as wide. */
export function coversGrants(actor: Holding, target: Holding): boolean {
  return isEmptyExcess(excessOf(actor, target));
}

/**
 * A role's holding. In `console_roles.scope_tags` an empty list means every host, so it maps to
 * `null` here.
 */
export function roleHolding(role: { permissions: readonly string[]; scope_tags: readonly string[] }): Holding {
  return { permissions: role.permissions, scopeTags: role.scope_tags.length ? role.scope_tags : null };
}

/**
 * What a user holding these roles holds, as `userGrants` (src/auth/roles.ts) computes it: the
 * union of the permissions, all hosts if any role is unscoped, else the union of the tags; no
 * role at all holds nothing (scope []).
 */
export function combineHoldings(roles: readonly Holding[]): Holding {
  const permissions = new Set<string>();
  let scope: string[] | null = [];
  const roleScopes: RoleScope[] = [];
  for (const r of roles) {
    for (const p of r.permissions) permissions.add(p);
    if (r.scopeTags === null) scope = null;
    else if (scope) for (const t of r.scopeTags) if (!scope.includes(t)) scope.push(t);
    // per permission as each role has it (a role reaching no host adds none)
    if (r.roleScopes) roleScopes.push(...r.roleScopes);
    else if (r.scopeTags === null || r.scopeTags.length) roleScopes.push({ permissions: [...r.permissions], tags: r.scopeTags ?? [] });
  }
  return { permissions, scopeTags: scope, roleScopes };
}

/**
 * Whether `actor` may grant these permissions over this scope (a role's contents, written as a
 * holding: `scopeTags` null for every host).
 */
export function canGrant(actor: Holding, permissions: readonly string[], scopeTags: readonly string[] | null): boolean {
  return coversGrants(actor, { permissions, scopeTags });
}

const LIST_MAX = 8;

function list(items: string[]): string {
  return items.length <= LIST_MAX ? items.join(", ") : `${items.slice(0, LIST_MAX).join(", ")} and ${items.length - LIST_MAX} more`;
}

/** "the permissions a, b and hosts tagged x (outside your scope)", for refusal messages. */
export function describeExcess(e: Excess): string {
  const parts: string[] = [];
  if (e.permissions.length) parts.push(`the permission${e.permissions.length > 1 ? "s" : ""} ${list(e.permissions)}`);
  if (e.scope === "all hosts") parts.push("access to all hosts (your roles are limited to tagged hosts)");
  else if (e.scope.length) parts.push(`hosts tagged ${list(e.scope)} (outside your host scope)`);
  return parts.join(" and ");
}

/** Merges the excesses of several targets into one (for a message about all of them). */
export function mergeExcess(all: readonly Excess[]): Excess {
  const permissions = new Set<string>();
  let scope: Excess["scope"] = [];
  for (const e of all) {
    for (const p of e.permissions) permissions.add(p);
    if (e.scope === "all hosts") scope = "all hosts";
    else if (scope !== "all hosts") for (const t of e.scope) if (!scope.includes(t)) scope.push(t);
  }
  return { permissions: [...permissions].sort(), scope: scope === "all hosts" ? scope : scope.sort() };
}
