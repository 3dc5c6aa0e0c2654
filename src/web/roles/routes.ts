/** Roles: built-in ones shown read-only, custom ones created and edited (permissions + host scope). */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { createRole, deleteRole, getRole, listRoles, roleHolders, updateRole, validateRole } from "../../auth/roles.ts";
import { coversGrants, describeExcess, excessOf, isEmptyExcess, roleHolding } from "../../auth/boundaries.ts";
import { boundaryChecks } from "../boundary.ts";
import { requireEnrollmentWhereDue } from "../../auth/mfa-due.ts";
import { permissionGroups } from "../../auth/permissions.ts";
import { auditRequest } from "../audit-request.ts";
import { dangerForm } from "../danger-form.ts";
import { describeReachBeyond, FILE_PERMISSIONS, rolePolicy, rootsBeyondReach, userReach } from "../../operations/files.ts";

function parseTags(s: string): string[] {
  return [...new Set(s.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean))];
}

function roleId(req: ConsoleRequest): number {
  const id = Number(req.params.id);
  return Number.isSafeInteger(id) && id > 0 ? id : 0;
}

export function roleRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const namePhrase = async (req: ConsoleRequest) => (await getRole(sql, roleId(req)))?.name ?? `role ${req.params.id}`;

  function groupsFor(selected: Set<string>, disabled: boolean) {
    return permissionGroups().map((g) => ({
      group: g.group,
      permissions: g.permissions.map((p) => ({ ...p, checked: selected.has(p.id), disabled })),
    }));
  }

  // No escalation through roles (src/auth/boundaries.ts): a role is created or edited only into
  // permissions and a host scope the editor holds, and only a role within the editor's holding,
  // held by users within it, can be edited or deleted.
  const bounds = boundaryChecks(sql, pages);

  return [
    {
      method: "GET", path: "/roles", access: "roles.view",
      async handler(req) {
        const roles = (await listRoles(sql)).map((r) => ({ ...r, count: r.permissions.length, scope: r.scope_tags.join(", ") || "all hosts" }));
        return pages.page(req, "pages/roles", "Roles", { roles, canCreate: can(req, "roles.create"), groups: groupsFor(new Set(), false) });
      },
    },
    {
      method: "POST", path: "/roles", access: "roles.create",
      async handler(req) {
        const name = (req.form.get("name") ?? "").trim();
        const perms = req.form.getAll("permissions");
        const tags = parseTags(req.form.get("scope_tags") ?? "");
        const problems = validateRole(name, perms, tags);
        if ((await listRoles(sql)).some((r) => r.name.toLowerCase() === name.toLowerCase())) problems.push(`A role named ${name} exists.`);
        if (problems.length) return pages.formErrors(req, problems);
        const beyond = await bounds.roleContents(req, name, perms, tags, `create the role ${name}`);
        if (beyond) return beyond;
        const id = await createRole(sql, name, (req.form.get("description") ?? "").slice(0, 200), perms, tags);
        await auditRequest(sql, req, "user_management", "roles.create", name, true, { roleId: id, permissions: perms, scope_tags: tags });
        return done(req, `/roles/${id}`);
      },
    },
    {
      method: "GET", path: "/roles/:id", access: "roles.view",
      async handler(req) {
        const r = await getRole(sql, roleId(req));
        if (!r) return pages.notFound(req, `Role ${req.params.id}`);
        // a role holding more than the viewer is shown read-only (edits also check its holders)
        const excess = excessOf(req.grants!, roleHolding(r));
        const within = isEmptyExcess(excess);
        const editable = !r.builtin && can(req, "roles.edit") && within;
        return pages.page(req, "pages/role-edit", r.name, {
          r, editable,
          beyond: within || r.builtin ? "" : `This role holds ${describeExcess(excess)}, which you do not hold, so you cannot change it.`,
          groups: groupsFor(new Set(r.permissions), !editable), tags: r.scope_tags.join(", "), count: r.permissions.length,
          phrase: r.name,
          deleteForm: !r.builtin && can(req, "roles.delete") && coversGrants(req.grants!, roleHolding(r))
            ? dangerForm(pages, { id: "delete-role", action: `/roles/${r.id}/delete`, phrase: r.name, button: "Delete role", csrf: req.csrf, description: "Users holding this role lose its permissions at their next request." })
            : "",
        });
      },
    },
    {
      method: "POST", path: "/roles/:id", access: "roles.edit", dangerous: { phrase: namePhrase },
      async handler(req) {
        const r = await getRole(sql, roleId(req));
        if (!r) return pages.notFound(req, `Role ${req.params.id}`);
        if (r.builtin) return pages.formErrors(req, ["Built-in roles cannot be changed; create a custom role instead."], 409);
        const perms = req.form.getAll("permissions");
        const tags = parseTags(req.form.get("scope_tags") ?? "");
        const problems = validateRole(r.name, perms, tags);
        if (problems.length) return pages.formErrors(req, problems);
        const action = `edit the role ${r.name}`;
        const refused = (await bounds.onRole(req, r, action))
          ?? (await bounds.roleContents(req, r.name, perms, tags, action))
          // the holders must be within the editor now; with the new contents within it too, they
          // stay within it after the edit (their holding is the union of their roles')
          ?? (await bounds.onUsers(req, await roleHolders(sql, r.id), action));
        if (refused) return refused;
        // the role's file roots apply to every file permission and host it reaches: where and for
        // what it newly reaches, only within the editor's own roots there (src/operations/files.ts)
        const policy = await rolePolicy(sql, r.id);
        if (policy.roots.length && perms.some((p) => FILE_PERMISSIONS.includes(p))) {
          const reachedBefore = (p: string, tag: string | null) => r.permissions.includes(p) && (r.scope_tags.length === 0 || (tag !== null && r.scope_tags.includes(tag)));
          const beyond = rootsBeyondReach(await userReach(sql, req.user!.id), { permissions: perms, tags }, policy.roots, reachedBefore);
          if (beyond.length) {
            await auditRequest(sql, req, "security_event", "access.denied", `${req.method} ${req.url.pathname}`, false, { action, reason: "file roots beyond the editor", beyond });
            return pages.formErrors(req, [`You cannot ${action} so: its file roots would reach ${describeReachBeyond(beyond)}, outside the file roots your own roles reach there.`], 403);
          }
        }
        await updateRole(sql, r.id, (req.form.get("description") ?? "").slice(0, 200), perms, tags);
        const enrolling = await requireEnrollmentWhereDue(sql, await s.settings.get(), (await roleHolders(sql, r.id)).map((h) => h.id));
        await auditRequest(sql, req, "user_management", "roles.edit", r.name, true, {
          added: perms.filter((p) => !r.permissions.includes(p)),
          removed: r.permissions.filter((p) => !perms.includes(p)),
          scope_tags: tags,
          ...(enrolling.length ? { mfa_enrollment_required_now: enrolling.slice(0, 100) } : {}),
        });
        return done(req, `/roles/${r.id}`);
      },
    },
    {
      method: "POST", path: "/roles/:id/delete", access: "roles.delete", dangerous: { phrase: namePhrase },
      async handler(req) {
        const r = await getRole(sql, roleId(req));
        if (!r) return pages.notFound(req, `Role ${req.params.id}`);
        if (r.builtin) return pages.formErrors(req, ["Built-in roles cannot be deleted."], 409);
        const action = `delete the role ${r.name}`;
        const refused = (await bounds.onRole(req, r, action)) ?? (await bounds.onUsers(req, await roleHolders(sql, r.id), action));
        if (refused) return refused;
        await deleteRole(sql, r.id);
        await auditRequest(sql, req, "user_management", "roles.delete", r.name, true);
        return done(req, "/roles");
      },
    },
  ];
}
