/** Console users: list, create, roles, disable, unlock, MFA reset, password reset, delete. */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { createUser, getUser, PolicyError, resetMfa, setPassword } from "../../auth/users.ts";
import { listRoles, setUserRoles, userGrants } from "../../auth/roles.ts";
import { listSessions, revokeSession, revokeUserSessions } from "../../auth/session.ts";
import { auditRequest } from "../audit-request.ts";
import { clearAccountThrottle } from "../../auth/throttle.ts";
import { ago, isoMinute } from "../format.ts";
import { dangerForm } from "../danger-form.ts";

function userId(req: ConsoleRequest): number {
  const id = Number(req.params.id);
  return Number.isSafeInteger(id) && id > 0 ? id : 0;
}

export function userRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  const usernamePhrase = async (req: ConsoleRequest) => (await getUser(sql, userId(req)))?.username ?? `user ${req.params.id}`;

  /** Refuses removing the last user who holds the admin role. */
  async function lastAdmin(id: number): Promise<boolean> {
    const [{ n }] = await sql`select count(*)::int as n from user_roles ur join console_roles r on r.id = ur.role_id
      join console_users u on u.id = ur.user_id
      where r.name = 'admin' and u.disabled_at is null and u.id <> ${id}`;
    return n === 0;
  }

  return [
    {
      method: "GET", path: "/users", access: "users.view",
      async handler(req) {
        const rows = await sql`select u.id, u.username, u.display_name, u.email, u.auth_source, u.totp_enabled_at, u.locked_until,
            u.disabled_at, u.last_login_at, u.created_at,
            coalesce(array_agg(r.name order by r.name) filter (where r.name is not null), '{}') as roles
          from console_users u left join user_roles ur on ur.user_id = u.id left join console_roles r on r.id = ur.role_id
          group by u.id order by u.username`;
        const users = rows.map((u) => ({
          id: Number(u.id), username: u.username, display_name: u.display_name, email: u.email, roles: u.roles.join(", "),
          mfa: Boolean(u.totp_enabled_at), locked: u.locked_until && new Date(u.locked_until).getTime() > Date.now(),
          disabled: Boolean(u.disabled_at), lastLogin: ago(u.last_login_at), source: u.auth_source,
        }));
        return pages.page(req, "pages/users", "Users", {
          users, canCreate: can(req, "users.create"), roles: await listRoles(sql),
          policy: (await s.settings.get()).password,
        });
      },
    },
    {
      method: "POST", path: "/users", access: "users.create",
      async handler(req) {
        const f = req.form;
        const allRoles = await listRoles(sql);
        const roleIds = f.getAll("roles").map(Number).filter((id) => allRoles.some((r) => r.id === id));
        if (f.get("password") !== f.get("password2")) return pages.formErrors(req, ["The two passwords differ."]);
        const grantsAdmin = allRoles.some((r) => roleIds.includes(r.id) && r.permissions.some((p) => !req.grants!.permissions.has(p)));
        if (grantsAdmin) return pages.formErrors(req, ["You cannot give a role with permissions you do not hold yourself."], 403);
        try {
          const id = await createUser(sql, {
            username: f.get("username") ?? "", displayName: (f.get("display_name") ?? "").slice(0, 100), email: (f.get("email") ?? "").slice(0, 200),
            password: f.get("password") ?? "", roleIds,
          }, (await s.settings.get()).password);
          await auditRequest(sql, req, "user_management", "users.create", (f.get("username") ?? "").toLowerCase(), true, { userId: id, roles: allRoles.filter((r) => roleIds.includes(r.id)).map((r) => r.name) });
          return done(req, `/users/${id}`);
        } catch (e) {
          if (e instanceof PolicyError) return pages.formErrors(req, e.problems);
          throw e;
        }
      },
    },
    {
      method: "GET", path: "/users/:id", access: "users.view",
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const held = new Set((await userGrants(sql, u.id)).roles);
        const roles = (await listRoles(sql)).map((r) => ({ ...r, checked: held.has(r.name) }));
        const settings = await s.settings.get();
        const sessions = can(req, "sessions.view") ? (await listSessions(sql, u.id, settings.session)).map((x) => ({
          ...x, created: isoMinute(x.created_at), lastSeen: ago(x.last_seen_at), canRevoke: can(req, "sessions.revoke"),
        })) : [];
        const mk = (id: string, action: string, button: string, description: string) =>
          dangerForm(pages, { id, action: `/users/${u.id}/${action}`, phrase: u.username, button, description, csrf: req.csrf });
        return pages.page(req, "pages/user-edit", u.username, {
          u, roles, sessions, showSessions: can(req, "sessions.view"),
          locked: u.locked_until && new Date(u.locked_until).getTime() > Date.now(),
          lockedUntil: isoMinute(u.locked_until), mfa: Boolean(u.totp_enabled_at), disabled: Boolean(u.disabled_at),
          created: isoMinute(u.created_at), lastLogin: ago(u.last_login_at),
          canEdit: can(req, "users.edit"), canDisable: can(req, "users.disable"), canUnlock: can(req, "users.unlock"),
          deleteForm: can(req, "users.delete") ? mk("delete-user", "delete", "Delete user", "Deletes the account, its sessions and its MFA. Its audit records stay.") : "",
          mfaForm: can(req, "users.mfa.reset") && u.totp_enabled_at ? mk("reset-mfa", "mfa/reset", "Reset MFA", "Removes the authenticator and backup codes; the user must enroll again if MFA is required.") : "",
          passwordForm: can(req, "users.password.reset") ? pages.render("partials/password-reset-form", { id: u.id, phrase: u.username, csrf: req.csrf, policy: settings.password }) : "",
        });
      },
    },
    {
      method: "POST", path: "/users/:id/roles", access: "users.edit",
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const allRoles = await listRoles(sql);
        const roleIds = req.form.getAll("roles").map(Number).filter((id) => allRoles.some((r) => r.id === id));
        const chosen = allRoles.filter((r) => roleIds.includes(r.id));
        if (chosen.some((r) => r.permissions.some((p) => !req.grants!.permissions.has(p)))) {
          return pages.formErrors(req, ["You cannot give a role with permissions you do not hold yourself."], 403);
        }
        if (!chosen.some((r) => r.name === "admin") && (await userGrants(sql, u.id)).roles.includes("admin") && (await lastAdmin(u.id))) {
          return pages.formErrors(req, ["This is the last active administrator; give another user the admin role first."], 409);
        }
        const before = (await userGrants(sql, u.id)).roles;
        await setUserRoles(sql, u.id, roleIds);
        await auditRequest(sql, req, "user_management", "users.roles", u.username, true, { before, after: chosen.map((r) => r.name) });
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/disable", access: "users.disable",
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const disable = !u.disabled_at;
        if (disable && u.id === req.user!.id) return pages.formErrors(req, ["You cannot disable your own account."], 409);
        if (disable && (await lastAdmin(u.id)) && (await userGrants(sql, u.id)).roles.includes("admin")) {
          return pages.formErrors(req, ["This is the last active administrator."], 409);
        }
        await sql`update console_users set disabled_at = ${disable ? sql`now()` : null} where id = ${u.id}`;
        if (disable) await revokeUserSessions(sql, u.id, "user disabled");
        await auditRequest(sql, req, "user_management", disable ? "users.disable" : "users.enable", u.username, true);
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/unlock", access: "users.unlock",
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        await sql`update console_users set locked_until = null, failed_logins = 0 where id = ${u.id}`;
        await clearAccountThrottle(sql, u.username); // sign-in throttle counters of this account (src/auth/throttle.ts)
        await auditRequest(sql, req, "user_management", "users.unlock", u.username, true);
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/mfa/reset", access: "users.mfa.reset", dangerous: { phrase: usernamePhrase },
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        await resetMfa(sql, u.id);
        await revokeUserSessions(sql, u.id, "MFA reset", u.id === req.user!.id ? req.session!.id : undefined);
        await auditRequest(sql, req, "user_management", "users.mfa.reset", u.username, true);
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/password", access: "users.password.reset", dangerous: { phrase: usernamePhrase },
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        if (req.form.get("password") !== req.form.get("password2")) return pages.formErrors(req, ["The two passwords differ."]);
        try {
          await setPassword(sql, u, req.form.get("password") ?? "", (await s.settings.get()).password);
        } catch (e) {
          if (e instanceof PolicyError) return pages.formErrors(req, e.problems);
          throw e;
        }
        const n = await revokeUserSessions(sql, u.id, "password reset by administrator", u.id === req.user!.id ? req.session!.id : undefined);
        await auditRequest(sql, req, "user_management", "users.password.reset", u.username, true, { sessions_revoked: n });
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/delete", access: "users.delete", dangerous: { phrase: usernamePhrase },
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        if (u.id === req.user!.id) return pages.formErrors(req, ["You cannot delete your own account."], 409);
        if ((await userGrants(sql, u.id)).roles.includes("admin") && (await lastAdmin(u.id))) {
          return pages.formErrors(req, ["This is the last active administrator."], 409);
        }
        await sql`delete from console_users where id = ${u.id}`;
        await auditRequest(sql, req, "user_management", "users.delete", u.username, true, { userId: u.id });
        return done(req, "/users");
      },
    },
    {
      method: "POST", path: "/users/:id/sessions/:sid/revoke", access: "sessions.revoke",
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const ok = await revokeSession(sql, Number(req.params.sid) || 0, `revoked by ${req.user!.username}`, u.id);
        await auditRequest(sql, req, "authentication", "sessions.revoke", `${u.username} session ${req.params.sid}`, ok);
        return done(req, `/users/${u.id}`);
      },
    },
  ];
}
