/**
 * The host scope of an MCP principal (an AI-client token's grants, or the approving person's):
 * the hosts the roles granting `permission` cover, as the guard's scopeFor builds a console
 * request's. The MCP endpoint is the second entry point besides the console guard, and this is
 * its one place that builds a principal's scope (test/architecture.test.ts).
 */
import { HostScope } from "../auth/host-scope.ts";
import type { Grants } from "../auth/roles.ts";

export function principalScope(grants: Grants, permission: string): HostScope {
  return grants.permissions.has(permission) ? HostScope.forPermission(grants.roleScopes, permission) : HostScope.none(permission);
}
