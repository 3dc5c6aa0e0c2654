/**
 * The enterprise sign-in page (/sso): identity providers, group-to-role mappings, the SSO policy
 * and break-glass accounts. Every change is a dangerous operation (typed phrase + fresh
 * re-authentication, which SSO users can do at their IdP) and is audited without secrets.
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { auditRequest } from "../audit-request.ts";
import { listRoles } from "../../auth/roles.ts";
import { getUserByName, listBreakGlass, setBreakGlass } from "../../auth/users.ts";
import { boundaryChecks, refuseBeyond } from "../boundary.ts";
import { coversGrants, excessOf, mergeExcess, roleHolding } from "../../auth/boundaries.ts";
import { getProvider, listGroupMappings, listProviders, saveProvider, SECRET_FIELDS, setGroupMappings, type ProviderKind } from "../../auth/sso/providers.ts";
import { loadSsoPolicy, saveSsoPolicy } from "../../auth/sso/policy.ts";
import { importIdpMetadata } from "../../auth/sso/saml/metadata.ts";
import type { SsoMfaMode } from "../../auth/sso/types.ts";

export const SSO_POLICY_PHRASE = "apply sign-in policy";
export const SSO_PROVIDER_PHRASE = "save identity provider";
export const SSO_MAPPINGS_PHRASE = "save group mappings";

const MFA_MODES: Array<{ v: SsoMfaMode; label: string }> = [
  { v: "trust-idp", label: "Trust the identity provider's MFA" },
  { v: "require-local", label: "Always require our TOTP" },
  { v: "off", label: "No second factor of ours" },
];

/** Settings as shown: secrets are never sent back to the browser. */
function shownConfig(config: Record<string, unknown>): string {
  const c = { ...config };
  for (const f of SECRET_FIELDS) if (c[f]) c[f] = "(unchanged)";
  return JSON.stringify(c, null, 2);
}

/** The forced sign-in link that re-authenticates an SSO user for dangerous operations. */
async function reauthHref(s: ConsoleServices, req: ConsoleRequest): Promise<string> {
  const source = req.user?.auth_source ?? "";
  if (!source.startsWith("sso:")) return "";
  const p = (await listProviders(s.sql)).find((x) => x.id === source.slice(4) && x.enabled);
  if (!p || p.kind === "ldap") return "";
  return `/auth/${p.kind}/login?provider=${encodeURIComponent(source.slice(4))}&reauth=${encodeURIComponent(req.url.pathname)}`;
}

export function ssoAdminRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const bounds = boundaryChecks(sql, pages);
  return [
    {
      method: "GET", path: "/sso", access: "sso.view",
      async handler(req) {
        const providers = await listProviders(sql);
        const mappings = await listGroupMappings(sql);
        const policy = await loadSsoPolicy(sql);
        const breakGlass = await listBreakGlass(sql);
        const edit = req.query.get("edit") ?? "";
        const editing = edit ? await getProvider<Record<string, unknown>>(sql, s.secrets, edit, undefined, true) : undefined;
        return pages.page(req, "pages/sso", "Sign-in", {
          providers: providers.map((p) => ({ ...p, mappings: mappings.filter((m) => m.provider_id === p.id) })),
          mappingProviders: providers.map((p) => ({ id: p.id, text: mappings.filter((m) => m.provider_id === p.id).map((m) => `${m.external_group} = ${m.role}`).join("\n") })),
          roles: (await listRoles(sql)).map((r) => r.name),
          policy,
          mfaModes: MFA_MODES.map((m) => ({ ...m, selected: m.v === policy.mfa })),
          breakGlass,
          editing: editing ? { ...editing, configText: shownConfig(editing.config), isOidc: editing.kind === "oidc", isSaml: editing.kind === "saml", isLdap: editing.kind === "ldap" } : null,
          canEdit: can(req, "sso.edit"),
          canMap: can(req, "sso.mappings.edit"),
          metadataUrl: "/auth/saml/metadata",
          reauthHref: await reauthHref(s, req),
          policyConfirm: { phrase: SSO_POLICY_PHRASE, legend: "Confirm" },
          providerConfirm: { phrase: SSO_PROVIDER_PHRASE, legend: "Confirm" },
          mappingsConfirm: { phrase: SSO_MAPPINGS_PHRASE, legend: "Confirm" },
          saved: req.query.get("saved") ?? "",
        });
      },
    },
    {
      method: "POST", path: "/sso/policy", access: "sso.edit", dangerous: { phrase: () => SSO_POLICY_PHRASE },
      async handler(req) {
        const mfa = req.form.get("mfa") ?? "";
        if (!MFA_MODES.some((m) => m.v === mfa)) return pages.formErrors(req, ["Choose how MFA applies to users who sign in through a provider."]);
        const before = await loadSsoPolicy(sql);
        const after = { enforced: req.form.get("enforced") === "on", mfa: mfa as SsoMfaMode, requireMfa: req.form.get("require_mfa") === "on" };
        if (after.enforced && (await listProviders(sql)).every((p) => !p.enabled)) {
          return pages.formErrors(req, ["Enable an identity provider before enforcing SSO, or nobody but break-glass accounts can sign in."]);
        }
        await saveSsoPolicy(sql, after);
        await auditRequest(sql, req, "config_change", "sso.policy.saved", "settings:sso", true, { before, after });
        return done(req, "/sso?saved=policy");
      },
    },
    {
      method: "POST", path: "/sso/providers", access: "sso.edit", dangerous: { phrase: () => SSO_PROVIDER_PHRASE },
      async handler(req) {
        const f = req.form;
        const id = (f.get("id") ?? "").trim();
        const kind = (f.get("kind") ?? "") as ProviderKind;
        let config: Record<string, unknown>;
        try {
          const parsed = JSON.parse((f.get("config") ?? "").trim() || "{}");
          if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
          config = parsed;
        } catch (e) {
          return pages.formErrors(req, [`The settings must be a JSON object (${(e as Error).message.slice(0, 80)}).`]);
        }
        const metadata = (f.get("metadata") ?? "").trim();
        if (metadata) {
          if (kind !== "saml") return pages.formErrors(req, ["IdP metadata applies to SAML providers only."]);
          try {
            config = { ...config, ...importIdpMetadata(metadata) };
          } catch (e) {
            return pages.formErrors(req, [`The IdP metadata was not accepted: ${(e as Error).message}`]);
          }
        }
        // "(unchanged)" or an omitted secret keeps the stored one
        const existing = await getProvider<Record<string, unknown>>(sql, s.secrets, id, undefined, true);
        for (const k of SECRET_FIELDS) {
          if ((config[k] === undefined || config[k] === "(unchanged)") && existing?.config[k]) config[k] = existing.config[k];
          else if (config[k] === "(unchanged)") delete config[k];
        }
        try {
          await saveProvider(sql, s.secrets, { id, kind, name: (f.get("name") ?? "").trim().slice(0, 80), enabled: f.get("enabled") === "on", config });
        } catch (e) {
          return pages.formErrors(req, (e as Error).message.split("; "));
        }
        const audited = { ...config };
        for (const k of SECRET_FIELDS) if (audited[k]) audited[k] = "(set)";
        if (audited.idpCerts) audited.idpCerts = `(${(audited.idpCerts as unknown[]).length} certificate(s))`;
        if (audited.caPem) audited.caPem = "(certificate)";
        await auditRequest(sql, req, "config_change", existing ? "sso.provider.updated" : "sso.provider.created", `provider:${id}`, true,
          { kind, enabled: f.get("enabled") === "on", config: audited });
        return done(req, "/sso?saved=provider");
      },
    },
    {
      method: "POST", path: "/sso/mappings", access: "sso.mappings.edit", dangerous: { phrase: () => SSO_MAPPINGS_PHRASE },
      async handler(req) {
        const provider = req.form.get("provider") ?? "";
        if (!(await listProviders(sql)).some((p) => p.id === provider)) return pages.formErrors(req, ["Choose an identity provider."]);
        const allRoles = await listRoles(sql);
        const roles = new Set(allRoles.map((r) => r.name));
        const problems: string[] = [];
        const mappings: Array<{ group: string; role: string }> = [];
        for (const [i, line] of (req.form.get("mappings") ?? "").split(/\r?\n/).entries()) {
          if (!line.trim()) continue;
          const at = line.lastIndexOf("=");
          const group = line.slice(0, at).trim();
          const role = line.slice(at + 1).trim();
          if (at <= 0 || !group || !role) problems.push(`Line ${i + 1}: write GROUP = ROLE.`);
          else if (!roles.has(role)) problems.push(`Line ${i + 1}: there is no role named ${role}.`);
          else if (group.length > 512) problems.push(`Line ${i + 1}: the group name is longer than 512 characters.`);
          else mappings.push({ group, role });
        }
        if (problems.length) return pages.formErrors(req, problems);
        // saving replaces them all; a mapping is the same when its group (case-insensitively, as at
        // sign-in) and role are
        const current = (await listGroupMappings(sql)).filter((m) => m.provider_id === provider);
        const same = (m: { group: string; role: string }, c: { external_group: string; role: string }) => m.group.toLowerCase() === c.external_group.toLowerCase() && m.role === c.role;
        // a new mapping grants its role to every member of the group: only roles within the editor's holding
        const added = mappings.filter((m) => !current.some((c) => same(m, c)));
        const beyond = await bounds.granting(req, allRoles.filter((r) => added.some((m) => m.role === r.name)), "map groups to these roles");
        if (beyond) return beyond;
        // a mapping dropped or given another role takes its role from the group's members at their
        // next sign-in: only mappings to roles the editor could grant may go; the others are kept
        const gone = current.filter((c) => !mappings.some((m) => same(m, c)));
        const held = gone.filter((c) => !coversGrants(req.grants!, roleHolding(allRoles.find((r) => r.name === c.role)!)));
        if (held.length) {
          const heldRoles = allRoles.filter((r) => held.some((c) => c.role === r.name));
          return refuseBeyond(sql, pages, req, {
            reason: "target_holds_more", action: `remove or change the mapping${held.length > 1 ? "s" : ""} ${held.map((c) => `${c.external_group} = ${c.role}`).join(", ")}`,
            subject: `the role${heldRoles.length > 1 ? "s" : ""} ${heldRoles.map((r) => r.name).join(", ")}`, plural: heldRoles.length > 1,
            excess: mergeExcess(heldRoles.map((r) => excessOf(req.grants!, roleHolding(r)))),
          });
        }
        const before = current.map((m) => `${m.external_group} = ${m.role}`);
        await setGroupMappings(sql, provider, mappings);
        await auditRequest(sql, req, "config_change", "sso.mappings.saved", `provider:${provider}`, true,
          { before, after: mappings.map((m) => `${m.group} = ${m.role}`) });
        return done(req, "/sso?saved=mappings");
      },
    },
    {
      method: "POST", path: "/sso/break-glass", access: "sso.breakglass.edit",
      dangerous: { phrase: (req) => `${req.form.get("flag") === "on" ? "flag" : "unflag"} ${(req.form.get("username") ?? "").trim().toLowerCase()}` },
      async handler(req) {
        const username = (req.form.get("username") ?? "").trim().toLowerCase();
        const on = req.form.get("flag") === "on";
        const u = await getUserByName(sql, username);
        const noAccount = `There is no local account named ${username} (break-glass accounts need a local password).`;
        if (!u || !u.password_hash) return pages.formErrors(req, [noAccount]);
        const refused = await bounds.onUser(req, u, `${on ? "flag" : "unflag"} ${u.username} for break-glass sign-in`);
        if (refused) return refused;
        if (!(await setBreakGlass(sql, u.id, on))) return pages.formErrors(req, [noAccount]);
        await auditRequest(sql, req, "security_event", on ? "break_glass.flagged" : "break_glass.unflagged", `user:${username}`, true, { totpEnrolled: !!u.totp_enabled_at });
        return done(req, "/sso?saved=break-glass");
      },
    },
  ];
}
