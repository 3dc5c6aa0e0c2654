/**
 * Host scope: which hosts a request may read or act on. The console guard builds one per
 * request from the user's roles (`HostScope.forPermission`); background jobs that act for the
 * system build one with `HostScope.system(reason)`. The constructor is private, so no other
 * code can make one, and every host-data query of the model modules takes one (or a
 * `ScopedHost`, which only a scoped lookup returns): a query over host data cannot be written
 * without a scope. test/architecture.test.ts checks both rules on the source.
 *
 * How roles combine: the scope for permission P is the union of the host sets of the user's
 * roles that grant P. A role without scope tags covers every host; a scoped role covers the
 * hosts carrying at least one of its tags. Roles that do not grant P add nothing to P's scope,
 * so an unscoped helpdesk role (users.*) does not widen a scoped operator role's host access.
 */

/** One role's contribution: its permissions and its scope tags (empty: every host). */
export interface RoleScope {
  permissions: readonly string[];
  tags: readonly string[];
}

export class HostScope {
  private constructor(
    /** null: every host; otherwise hosts carrying at least one of these tags (empty: none). */
    readonly tags: readonly string[] | null,
    /** For logs and errors: what this scope was built for. */
    readonly label: string,
  ) {}

  /** The hosts the roles let a user reach with `permission` (union over the roles granting it). */
  static forPermission(roles: readonly RoleScope[], permission: string): HostScope {
    const granting = roles.filter((r) => r.permissions.includes(permission));
    if (granting.some((r) => r.tags.length === 0)) return new HostScope(null, permission);
    return new HostScope([...new Set(granting.flatMap((r) => r.tags))].sort(), permission);
  }

  /** Every host, for work the server does on its own (scoring, auto-remediation, exports of jobs). */
  static system(reason: string): HostScope {
    return new HostScope(null, `system: ${reason}`);
  }

  /** No host at all (routes without a permission, signed-out requests). */
  static none(label = "none"): HostScope {
    return new HostScope([], label);
  }

  get allHosts(): boolean {
    return this.tags === null;
  }

  /** Whether a host carrying these tags is in scope. */
  covers(hostTags: readonly string[]): boolean {
    return this.tags === null || hostTags.some((t) => this.tags!.includes(t));
  }

  /**
   * Whether a host group (a tag, or "*" for every host) lies inside the scope: "*" only for
   * an all-hosts scope, a tag only when it is one of the scope's tags.
   */
  coversGroup(group: string): boolean {
    return this.tags === null || (group !== "*" && this.tags.includes(group));
  }
}
