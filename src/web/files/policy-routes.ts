/**
 * The file-path policy of a role (roots it may reach, paths it may not), edited on the role's
 * page. No escalation: the editor must be within the role (src/web/boundary.ts onRole), and every
 * root granted must lie inside the editor's own reach where the role applies it (a root of one of
 * the editor's roles with none of that role's denied paths at or below it, for each file
 * permission of the role and each host of its scope, as commands carry rules: rootsBeyondReach):
 * an editor cannot grant roots it does not have there. Denied paths only narrow a role and may
 * always be added.
 */
import type { ConsoleServices } from "../deps.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import { done, type Pages } from "../respond.ts";
import { getRole } from "../../auth/roles.ts";
import { boundaryChecks } from "../boundary.ts";
import { auditRequest } from "../audit-request.ts";
import { describeReachBeyond, parsePathList, rolePolicy, rootsBeyondReach, setRolePolicy, userReach } from "../../operations/files.ts";

const roleId = (req: ConsoleRequest) => {
  const id = Number(req.params.id);
  return Number.isSafeInteger(id) && id > 0 ? id : 0;
};

export function filePolicyRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const bounds = boundaryChecks(sql, pages);
  return [
    {
      method: "GET", path: "/roles/:id/files", access: "roles.view",
      async handler(req) {
        const r = await getRole(sql, roleId(req));
        if (!r) return pages.notFound(req, `Role ${req.params.id}`);
        const p = await rolePolicy(sql, r.id);
        return pages.partial("partials/role-file-policy", {
          r, roots: p.roots.join("\n"), denied: p.denied.join("\n"), explicit: p.explicit, editable: can(req, "roles.edit"), csrf: req.csrf, phrase: r.name,
        });
      },
    },
    {
      method: "POST", path: "/roles/:id/files", access: "roles.edit", dangerous: { phrase: async (req) => (await getRole(sql, roleId(req)))?.name ?? `role ${req.params.id}` },
      async handler(req) {
        const r = await getRole(sql, roleId(req));
        if (!r) return pages.notFound(req, `Role ${req.params.id}`);
        const roots = parsePathList(req.form.get("roots") ?? "");
        const denied = parsePathList(req.form.get("denied") ?? "");
        const invalid = [...roots.invalid, ...denied.invalid];
        if (invalid.length) return pages.formErrors(req, [`Not absolute paths without . or ..: ${invalid.join(", ")}`]);
        if (roots.paths.length > 100 || denied.paths.length > 100) return pages.formErrors(req, ["At most 100 roots and 100 denied paths."]);
        const action = `change the file policy of ${r.name}`;
        const refused = await bounds.onRole(req, r, action);
        if (refused) return refused;
        const beyond = rootsBeyondReach(await userReach(sql, req.user!.id), { permissions: r.permissions, tags: r.scope_tags }, roots.paths);
        if (beyond.length) {
          const named = [...new Set(beyond.map((b) => b.root))];
          await auditRequest(sql, req, "user_management", "roles.files.edit", r.name, false, { refused: "beyond the editor's roots", roots: named, beyond });
          return pages.formErrors(req, [`You cannot grant ${describeReachBeyond(beyond)}: it lies outside the file roots your own roles reach there.`], 403);
        }
        const before = await rolePolicy(sql, r.id);
        await setRolePolicy(sql, r.id, { roots: roots.paths, denied: denied.paths }, `${req.user!.username} (${req.user!.id})`);
        await auditRequest(sql, req, "user_management", "roles.files.edit", r.name, true, { roleId: r.id, before: { roots: before.roots, denied: before.denied }, roots: roots.paths, denied: denied.paths });
        return done(req, `/roles/${r.id}`);
      },
    },
  ];
}
