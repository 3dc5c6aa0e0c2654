/** Sessions: one's own (always), everyone's with sessions.view; revoke ends it at the next request. */
import type { ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { listSessions, revokeSession } from "../../auth/session.ts";
import { auditRequest } from "../audit-request.ts";
import { rolesOfUsers, type Role } from "../../auth/roles.ts";
import { combineHoldings, coversGrants, roleHolding } from "../../auth/boundaries.ts";
import { ago, isoMinute } from "../format.ts";

export function sessionRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  return [
    {
      method: "GET", path: "/sessions", access: "signed-in",
      async handler(req) {
        const policy = (await s.settings.get()).session;
        const all = can(req, "sessions.view");
        const rows = await listSessions(sql, all ? null : req.user!.id, policy);
        const mine = req.user!.id;
        // another user's session is revocable only by someone who may act on that user
        // (src/auth/boundaries.ts; the revoke route, /users/:id/sessions/:sid/revoke, checks it)
        const others = [...new Set(rows.filter((r) => r.user_id !== mine).map((r) => r.user_id))];
        const rolesBy = all && can(req, "sessions.revoke") ? await rolesOfUsers(sql, others) : new Map<number, Role[]>();
        const reachable = new Set([...rolesBy].filter(([, roles]) => coversGrants(req.grants!, combineHoldings(roles.map(roleHolding)))).map(([id]) => id));
        return pages.page(req, "pages/sessions", "Sessions", {
          all,
          policy,
          sessions: rows.map((r) => ({
            ...r, created: isoMinute(r.created_at), lastSeen: ago(r.last_seen_at), current: r.id === req.session!.id,
            own: r.user_id === mine,
            // back here afterwards, not to that user's page
            revokeUrl: r.user_id === mine ? `/sessions/${r.id}/revoke` : `/users/${r.user_id}/sessions/${r.id}/revoke?back=sessions`,
            canRevoke: r.id !== req.session!.id && (r.user_id === mine || (can(req, "sessions.revoke") && reachable.has(r.user_id))),
          })),
        });
      },
    },
    {
      method: "POST", path: "/sessions/:id/revoke", access: "signed-in",
      async handler(req) {
        const id = Number(req.params.id) || 0;
        const ok = await revokeSession(sql, id, "revoked by its user", req.user!.id);
        await auditRequest(sql, req, "authentication", "sessions.revoke", `${req.user!.username} session ${id}`, ok);
        if (!ok) return pages.formErrors(req, ["That session is not yours or has already ended."], 404);
        return done(req, "/sessions");
      },
    },
  ];
}
