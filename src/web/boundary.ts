/**
 * Privilege-boundary refusals for console routes (rules: src/auth/boundaries.ts): a 403 that
 * names what the actor lacks, recorded as an `access.denied` security event with the reason.
 */
import type { Sql } from "postgres";
import { combineHoldings, coversGrants, describeExcess, excessOf, isEmptyExcess, mergeExcess, roleHolding, type Excess } from "../auth/boundaries.ts";
import { rolesOfUsers, userGrants, type Role } from "../auth/roles.ts";
import type { ConsoleRequest } from "./route.ts";
import type { Pages } from "./respond.ts";
import { auditRequest } from "./audit-request.ts";

export type BoundaryReason = "target_holds_more" | "grant_exceeds_actor";

/**
 * The message reads "You cannot <action>: <subject> holds <excess>, which you do not hold." or,
 * for grants, "... <subject> would grant <excess> ..." (`subject` then names the roles given).
 */
export async function refuseBeyond(
  sql: Sql, pages: Pages, req: ConsoleRequest,
  o: { reason: BoundaryReason; action: string; subject: string; excess: Excess; plural?: boolean },
): Promise<Response> {
  const what = describeExcess(o.excess);
  const message = o.reason === "target_holds_more"
    ? `You cannot ${o.action}: ${o.subject} ${o.plural ? "hold" : "holds"} ${what}, which you do not hold.`
    : `You cannot ${o.action}: ${o.subject} would grant ${what}, which you do not hold.`;
  await auditRequest(sql, req, "security_event", "access.denied", `${req.method} ${req.url.pathname}`, false, {
    reason: o.reason, action: o.action, subject: o.subject, lacking: { permissions: o.excess.permissions, scope: o.excess.scope },
  });
  return pages.formErrors(req, [message], 403);
}

/** The checks every route that acts on a user or a role, or grants a role, makes; each returns the refusal or null. */
export function boundaryChecks(sql: Sql, pages: Pages) {
  return {
    /** The actor must cover everything `user` holds now. */
    async onUser(req: ConsoleRequest, user: { id: number; username: string }, action: string): Promise<Response | null> {
      const excess = excessOf(req.grants!, await userGrants(sql, user.id));
      if (isEmptyExcess(excess)) return null;
      return refuseBeyond(sql, pages, req, { reason: "target_holds_more", action, subject: user.username, excess });
    },
    /** The actor must cover everything each of these users holds now (e.g. the holders of a role being edited). */
    async onUsers(req: ConsoleRequest, users: ReadonlyArray<{ id: number; username: string }>, action: string): Promise<Response | null> {
      const roles = await rolesOfUsers(sql, users.map((u) => u.id));
      const over = users
        .map((u) => ({ u, excess: excessOf(req.grants!, combineHoldings((roles.get(u.id) ?? []).map(roleHolding))) }))
        .filter((x) => !isEmptyExcess(x.excess));
      if (!over.length) return null;
      const names = over.map((x) => x.u.username);
      const subject = names.length > 1 ? `its holders ${names.slice(0, 8).join(", ")}${names.length > 8 ? ` and ${names.length - 8} more` : ""}` : `its holder ${names[0]}`;
      return refuseBeyond(sql, pages, req, { reason: "target_holds_more", action, subject, excess: mergeExcess(over.map((x) => x.excess)), plural: names.length > 1 });
    },
    /** The actor must cover what a role holds (before it edits or deletes it). */
    async onRole(req: ConsoleRequest, role: Role, action: string): Promise<Response | null> {
      const excess = excessOf(req.grants!, roleHolding(role));
      if (isEmptyExcess(excess)) return null;
      return refuseBeyond(sql, pages, req, { reason: "target_holds_more", action, subject: `the role ${role.name}`, excess });
    },
    /** The actor must cover each role it gives (so also any set of them: see combineHoldings). */
    async granting(req: ConsoleRequest, roles: readonly Role[], action: string): Promise<Response | null> {
      const over = roles.filter((r) => !coversGrants(req.grants!, roleHolding(r)));
      if (!over.length) return null;
      const excess = mergeExcess(over.map((r) => excessOf(req.grants!, roleHolding(r))));
      const subject = `the role${over.length > 1 ? "s" : ""} ${over.map((r) => r.name).join(", ")}`;
      return refuseBeyond(sql, pages, req, { reason: "grant_exceeds_actor", action, subject, excess });
    },
    /** The actor must cover a role's new contents (a role created or edited); `scopeTags` [] is every host. */
    async roleContents(req: ConsoleRequest, name: string, permissions: readonly string[], scopeTags: readonly string[], action: string): Promise<Response | null> {
      const excess = excessOf(req.grants!, roleHolding({ permissions, scope_tags: scopeTags }));
      if (isEmptyExcess(excess)) return null;
      return refuseBeyond(sql, pages, req, { reason: "grant_exceeds_actor", action, subject: `the role ${name} as written`, excess });
    },
  };
}
