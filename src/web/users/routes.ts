/** Console users: list, create, roles, disable, unlock, MFA reset, password reset, delete. */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { createUser, deleteUser, getUser, listUsers, lockedOrPausedUntil, PolicyError, resetMfa, setDisabled, setPassword, unlockUser } from "../../auth/users.ts";
import { LastAdminError, listRoles, setUserRoles, userGrants } from "../../auth/roles.ts";
import { coversGrants, describeExcess, excessOf, isEmptyExcess, roleHolding } from "../../auth/boundaries.ts";
import { boundaryChecks } from "../boundary.ts";
import { requireEnrollmentWhereDue } from "../../auth/mfa-due.ts";
import { listSessions, revokeSession, revokeUserSessions } from "../../auth/session.ts";
import { revokeUserTokens } from "../../auth/api-tokens.ts";
import { auditRequest } from "../audit-request.ts";
import { ago, isoMinute } from "../format.ts";
import { dangerForm } from "../danger-form.ts";

function userId(req: ConsoleRequest): number {
  const id = Number(req.params.id);
  return Number.isSafeInteger(id) && id > 0 ? id : 0;
}

export function userRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  const usernamePhrase = async (req: ConsoleRequest) => (await getUser(sql, userId(req)))?.username ?? `user ${req.params.id}`;
  // every route below that acts on a user first checks that the actor covers that user
  // (src/auth/boundaries.ts), and every role given must be within the actor's holding
  const bounds = boundaryChecks(sql, pages);
  const lastAdmin = (req: ConsoleRequest, e: LastAdminError) => pages.formErrors(req, [e.message], 409);

  return [
    {
      method: "GET", path: "/users", access: "users.view",
      async handler(req) {
        const users = (await listUsers(sql)).map((u) => ({
          id: Number(u.id), username: u.username, display_name: u.display_name, email: u.email, roles: u.roles.join(", "),
          mfa: Boolean(u.totp_enabled_at), locked: u.locked_until && new Date(u.locked_until).getTime() > Date.now(),
          disabled: Boolean(u.disabled_at), lastLogin: ago(u.last_login_at), source: u.auth_source,
        }));
        return pages.page(req, "pages/users", "Users", {
          users, canCreate: can(req, "users.create"),
          roles: (await listRoles(sql)).map((r) => ({ ...r, grantable: coversGrants(req.grants!, roleHolding(r)) })),
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
        const beyond = await bounds.granting(req, allRoles.filter((r) => roleIds.includes(r.id)), "give these roles to a new user");
        if (beyond) return beyond;
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
        const grants = await userGrants(sql, u.id);
        const held = new Set(grants.roles);
        // a user holding anything the viewer lacks is shown read-only (the routes refuse anyway)
        const excess = excessOf(req.grants!, grants);
        const within = isEmptyExcess(excess);
        const roles = (await listRoles(sql)).map((r) => ({ ...r, checked: held.has(r.name), grantable: within && can(req, "users.edit") && coversGrants(req.grants!, roleHolding(r)) }));
        const settings = await s.settings.get();
        const sessions = can(req, "sessions.view") ? (await listSessions(sql, u.id, settings.session)).map((x) => ({
          ...x, created: isoMinute(x.created_at), lastSeen: ago(x.last_seen_at), canRevoke: within && can(req, "sessions.revoke"),
        })) : [];
        const mk = (id: string, action: string, button: string, description: string) =>
          dangerForm(pages, { id, action: `/users/${u.id}/${action}`, phrase: u.username, button, description, csrf: req.csrf });
        const locked = await lockedOrPausedUntil(sql, u); // includes sign-in throttle pauses
        return pages.page(req, "pages/user-edit", u.username, {
          u, roles, sessions, showSessions: can(req, "sessions.view"),
          locked: locked !== null && locked.getTime() > Date.now(),
          lockedUntil: isoMinute(locked), mfa: Boolean(u.totp_enabled_at), disabled: Boolean(u.disabled_at),
          created: isoMinute(u.created_at), lastLogin: ago(u.last_login_at),
          beyond: within ? "" : `${u.username} holds ${describeExcess(excess)}, which you do not hold, so you cannot change this account.`,
          canEdit: within && can(req, "users.edit"), canDisable: within && can(req, "users.disable"), canUnlock: within && can(req, "users.unlock"),
          deleteForm: within && can(req, "users.delete") ? mk("delete-user", "delete", "Delete user", "Deletes the account, its sessions and its MFA. Its audit records stay.") : "",
          mfaForm: within && can(req, "users.mfa.reset") && u.totp_enabled_at ? mk("reset-mfa", "mfa/reset", "Reset MFA", "Removes the authenticator and backup codes (the user must enroll again if MFA is required), signs the user out everywhere and revokes all their API tokens, which ends their AI clients' MCP sessions.") : "",
          passwordForm: within && can(req, "users.password.reset") ? pages.render("partials/password-reset-form", { id: u.id, phrase: u.username, csrf: req.csrf, policy: settings.password }) : "",
        });
      },
    },
    {
      method: "POST", path: "/users/:id/roles", access: "users.edit",
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const refused = await bounds.onUser(req, u, `change the roles of ${u.username}`);
        if (refused) return refused;
        const allRoles = await listRoles(sql);
        const roleIds = req.form.getAll("roles").map(Number).filter((id) => allRoles.some((r) => r.id === id));
        const chosen = allRoles.filter((r) => roleIds.includes(r.id));
        const beyond = await bounds.granting(req, chosen, `give ${u.username} these roles`);
        if (beyond) return beyond;
        const before = (await userGrants(sql, u.id)).roles;
        try {
          await setUserRoles(sql, u.id, roleIds);
        } catch (e) {
          if (e instanceof LastAdminError) return lastAdmin(req, e);
          throw e;
        }
        const enrolling = await requireEnrollmentWhereDue(sql, await s.settings.get(), [u.id]);
        await auditRequest(sql, req, "user_management", "users.roles", u.username, true, {
          before, after: chosen.map((r) => r.name), ...(enrolling.length ? { mfa_enrollment_required_now: true } : {}),
        });
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
        const refused = await bounds.onUser(req, u, `${disable ? "disable" : "enable"} ${u.username}`);
        if (refused) return refused;
        try {
          await setDisabled(sql, u.id, disable);
        } catch (e) {
          if (e instanceof LastAdminError) return lastAdmin(req, e);
          throw e;
        }
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
        const refused = await bounds.onUser(req, u, `unlock ${u.username}`);
        if (refused) return refused;
        await unlockUser(sql, u.id);
        await auditRequest(sql, req, "user_management", "users.unlock", u.username, true);
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/mfa/reset", access: "users.mfa.reset", dangerous: { phrase: usernamePhrase },
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const refused = await bounds.onUser(req, u, `reset the MFA of ${u.username}`);
        if (refused) return refused;
        await resetMfa(sql, u.id);
        // the recovery after a suspected compromise: nothing a thief may have minted outlives it
        const n = await revokeUserSessions(sql, u.id, "MFA reset", u.id === req.user!.id ? req.session!.id : undefined);
        const tokens = await revokeUserTokens(sql, u.id, req.user!.username);
        await auditRequest(sql, req, "user_management", "users.mfa.reset", u.username, true, { sessions_revoked: n, api_tokens_revoked: tokens });
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/password", access: "users.password.reset", dangerous: { phrase: usernamePhrase },
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const refused = await bounds.onUser(req, u, `set the password of ${u.username}`);
        if (refused) return refused;
        if (req.form.get("password") !== req.form.get("password2")) return pages.formErrors(req, ["The two passwords differ."]);
        try {
          await setPassword(sql, u, req.form.get("password") ?? "", (await s.settings.get()).password);
        } catch (e) {
          if (e instanceof PolicyError) return pages.formErrors(req, e.problems);
          throw e;
        }
        const n = await revokeUserSessions(sql, u.id, "password reset by administrator", u.id === req.user!.id ? req.session!.id : undefined);
        const tokens = await revokeUserTokens(sql, u.id, req.user!.username);
        await auditRequest(sql, req, "user_management", "users.password.reset", u.username, true, { sessions_revoked: n, api_tokens_revoked: tokens });
        return done(req, `/users/${u.id}`);
      },
    },
    {
      method: "POST", path: "/users/:id/delete", access: "users.delete", dangerous: { phrase: usernamePhrase },
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        if (u.id === req.user!.id) return pages.formErrors(req, ["You cannot delete your own account."], 409);
        const refused = await bounds.onUser(req, u, `delete ${u.username}`);
        if (refused) return refused;
        try {
          await deleteUser(sql, u.id);
        } catch (e) {
          if (e instanceof LastAdminError) return lastAdmin(req, e);
          throw e;
        }
        await auditRequest(sql, req, "user_management", "users.delete", u.username, true, { userId: u.id });
        return done(req, "/users");
      },
    },
    {
      method: "POST", path: "/users/:id/sessions/:sid/revoke", access: "sessions.revoke",
      async handler(req) {
        const u = await getUser(sql, userId(req));
        if (!u) return pages.notFound(req, `User ${req.params.id}`);
        const refused = await bounds.onUser(req, u, `end a session of ${u.username}`);
        if (refused) return refused;
        const ok = await revokeSession(sql, Number(req.params.sid) || 0, `revoked by ${req.user!.username}`, u.id);
        await auditRequest(sql, req, "authentication", "sessions.revoke", `${u.username} session ${req.params.sid}`, ok);
        // from the Sessions page (?back=sessions) back to it; a fixed choice, never a URL taken from the request
        return done(req, req.query.get("back") === "sessions" ? "/sessions" : `/users/${u.id}`);
      },
    },
  ];
}
