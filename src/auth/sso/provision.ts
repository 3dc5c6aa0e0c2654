/**
 * Just-in-time provisioning and group-to-role mapping, run at every sign-in through a provider:
 * the external identity (provider, subject) finds or creates its console user, profile fields
 * follow the provider, and the roles granted by that provider's group mappings are made to match
 * the groups asserted now. Roles granted by hand (user_roles.granted_by = 'manual') stay.
 * Host-group scopes come with the roles (console_roles.scope_tags).
 */
import type { Sql } from "postgres";
import { USERNAME_RE } from "../users.ts";
import { activeAdminCount, lockAdmins } from "../roles.ts";
import { SsoError, type ExternalIdentity, type LoginStage, type ProvisioningSettings, type SsoPolicy } from "./types.ts";
import type { RequestInfo, SsoAudit } from "./audit-event.ts";

export interface ProvisionResult {
  userId: number;
  username: string;
  created: boolean;
  roles: string[];
  rolesAdded: string[];
  rolesRemoved: string[];
  /**
   * Roles the groups no longer grant but which stay, because removing them would leave the
   * console without an active administrator (the built-in admin role of the last one).
   */
  rolesKept: string[];
  totpEnrolled: boolean;
}

/** Lower-case, characters outside the console's username alphabet become "-", at most 64. */
export function normalizeUsername(raw: string): string {
  const u = raw.trim().toLowerCase().replace(/[^a-z0-9._@-]/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 64);
  return u;
}

export async function provisionUser(
  sql: Sql,
  audit: SsoAudit,
  ident: ExternalIdentity,
  settings: ProvisioningSettings,
  req: RequestInfo,
): Promise<ProvisionResult> {
  const grant = `sso:${ident.provider}`;
  const result = await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${`sso:${ident.provider}:${ident.subject}`}))`;
    const [linked] = await tx`select u.id, u.username, u.disabled_at, u.totp_enabled_at from user_identities i
      join console_users u on u.id = i.user_id where i.provider = ${ident.provider} and i.subject = ${ident.subject}`;
    let userId: number;
    let username: string;
    let created = false;
    let totpEnrolled = false;
    if (linked) {
      if (linked.disabled_at) throw new SsoError("disabled", "This account is disabled.", { user: linked.username });
      userId = Number(linked.id);
      username = linked.username;
      totpEnrolled = !!linked.totp_enabled_at;
      await tx`update console_users set email = ${ident.email ?? ""}, display_name = ${ident.displayName ?? ""},
        last_login_at = now() where id = ${userId}`;
    } else {
      if (settings.jit === false) throw new SsoError("not_provisioned", "No account is linked to this identity and automatic provisioning is off.");
      username = normalizeUsername(ident.username);
      if (!USERNAME_RE.test(username)) {
        throw new SsoError("bad_username", "The identity provider sent no usable username.", { username: ident.username.slice(0, 80) });
      }
      // An existing account is never taken over by a provider asserting the same name: an admin
      // links it explicitly (user_identities) if that is intended.
      const [taken] = await tx`select id, auth_source from console_users where username = ${username}`;
      if (taken) throw new SsoError("username_taken", `The username ${username} belongs to another account.`, { username, authSource: taken.auth_source });
      const [row] = await tx`insert into console_users (username, display_name, email, auth_source, last_login_at)
        values (${username}, ${ident.displayName ?? ""}, ${ident.email ?? ""}, ${grant}, now()) returning id`;
      userId = Number(row!.id);
      await tx`insert into user_identities (user_id, provider, subject) values (${userId}, ${ident.provider}, ${ident.subject})`;
      created = true;
    }

    const groups = [...new Set(ident.groups.map((g) => g.toLowerCase()))];
    const mapped = await tx`select distinct m.role_id, r.name from sso_group_mappings m join console_roles r on r.id = m.role_id
      where m.provider_id = ${ident.provider} and lower(m.external_group) = any(${groups}::text[])`;
    if (settings.requireMappedGroup && mapped.length === 0) {
      throw new SsoError("no_mapped_group", "None of your groups grants access to this console.", { groups: groups.slice(0, 50) });
    }
    const wanted = new Set(mapped.map((r) => Number(r.role_id)));
    const held = await tx`select ur.role_id, r.name, r.builtin from user_roles ur join console_roles r on r.id = ur.role_id
      where ur.user_id = ${userId} and ur.granted_by = ${grant}`;
    const rolesRemoved: string[] = [];
    const rolesKept: string[] = [];
    for (const h of held) {
      if (wanted.has(Number(h.role_id))) continue;
      const adminRole = h.builtin && h.name === "admin";
      // as every other change that can remove an administrator: serialized, and never the last one
      if (adminRole) await lockAdmins(tx);
      await tx`delete from user_roles where user_id = ${userId} and role_id = ${h.role_id} and granted_by = ${grant}`;
      if (adminRole && (await activeAdminCount(tx)) === 0) {
        await tx`insert into user_roles (user_id, role_id, granted_by) values (${userId}, ${h.role_id}, ${grant})`;
        rolesKept.push(h.name);
        continue;
      }
      rolesRemoved.push(h.name);
    }
    const rolesAdded: string[] = [];
    for (const m of mapped) {
      const ins = await tx`insert into user_roles (user_id, role_id, granted_by) values (${userId}, ${m.role_id}, ${grant})
        on conflict do nothing returning role_id`;
      if (ins.length) rolesAdded.push(m.name);
    }
    const roles = (await tx`select r.name from user_roles ur join console_roles r on r.id = ur.role_id
      where ur.user_id = ${userId} order by r.name`).map((r) => r.name as string);
    return { userId, username, created, roles, rolesAdded, rolesRemoved, rolesKept, totpEnrolled };
  });

  const actor = { type: "system" as const, name: `sso:${ident.provider}` };
  if (result.created) {
    await audit({ actor, ip: req.ip, userAgent: req.userAgent, category: "user_management", action: "sso.user.provisioned",
      target: `user:${result.username}`, success: true, details: { provider: ident.provider, subject: ident.subject, userId: result.userId } });
  }
  if (result.rolesAdded.length || result.rolesRemoved.length) {
    await audit({ actor, ip: req.ip, userAgent: req.userAgent, category: "user_management", action: "sso.roles.synced",
      target: `user:${result.username}`, success: true,
      details: { provider: ident.provider, added: result.rolesAdded, removed: result.rolesRemoved, groups: ident.groups.slice(0, 100) } });
  }
  if (result.rolesKept.length) {
    await audit({ actor, ip: req.ip, userAgent: req.userAgent, category: "user_management", action: "sso.roles.kept",
      target: `user:${result.username}`, success: false,
      details: { provider: ident.provider, kept: result.rolesKept, reason: "last active administrator", groups: ident.groups.slice(0, 100) } });
  }
  return result;
}

/** Which stage the session starts in, from the MFA policy and what the IdP asserted. */
export function loginStage(policy: SsoPolicy, idpMfa: boolean, totpEnrolled: boolean): LoginStage {
  const ours: LoginStage = totpEnrolled ? "mfa" : "enroll";
  switch (policy.mfa) {
    case "off":
      return "full";
    case "require-local":
      return ours;
    case "trust-idp":
      return idpMfa || !policy.requireMfa ? "full" : ours;
  }
}
