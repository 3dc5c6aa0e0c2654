/**
 * API tokens in the console: one's own (/account/tokens: list with last use, create, revoke)
 * and everyone's for administrators (/tokens, api.tokens.view; revoke with api.tokens.revoke
 * and only for owners the administrator covers, src/auth/boundaries.ts). A new token's secret
 * is shown once, in the page that answers the creation. Creating one is a dangerous operation
 * (typed phrase + fresh re-authentication, checked by the guard): a token outlives the session,
 * so a stolen session must not be enough to mint one. Model: src/auth/api-tokens.ts.
 */
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can, scopeFor } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { auditRequest } from "../audit-request.ts";
import { boundaryChecks } from "../boundary.ts";
import { permissionGroups } from "../../auth/permissions.ts";
import {
  createApiToken, getToken, listAllTokens, listUserTokens, MAX_TOKEN_DAYS, revokeToken, validateTokenRequest,
  type ApiToken, type NewToken,
} from "../../auth/api-tokens.ts";
import { ago, isoMinute } from "../format.ts";

export const EXPIRY_CHOICES = [7, 30, 90, 180, 365];
export const CREATE_TOKEN_PHRASE = "create token";

function state(t: ApiToken, now = Date.now()): "revoked" | "expired" | "active" {
  if (t.revoked_at) return "revoked";
  return new Date(t.expires_at).getTime() <= now ? "expired" : "active";
}

function tokenView(t: ApiToken) {
  const st = state(t);
  return {
    id: t.id, name: t.name, hint: `${t.hint}…`, state: st, stateClass: st === "active" ? "ok" : st === "expired" ? "warn" : "crit",
    permissions: t.permissions.join(", "), permissionCount: t.permissions.length,
    scope: t.scope_tags.length ? t.scope_tags.join(", ") : "as the owner",
    aiClient: t.ai_client, clientName: t.client_name,
    created: isoMinute(t.created_at), expires: isoMinute(t.expires_at),
    lastUsed: t.last_used_at ? `${ago(t.last_used_at)} from ${t.last_used_ip ?? "?"}` : "never",
    live: st === "active",
  };
}

/** The token request in a form (or a JSON body, which the guard turns into form fields). */
export function parseTokenForm(form: URLSearchParams): NewToken {
  const days = Number(form.get("expires_days") ?? "");
  return {
    name: (form.get("name") ?? "").trim(),
    permissions: [...new Set(form.getAll("permissions").flatMap((p) => p.split(",")).map((p) => p.trim()).filter(Boolean))],
    scopeTags: [...new Set((form.get("scope_tags") ?? "").split(/[\s,]+/).map((t) => t.trim()).filter(Boolean))],
    expiresInDays: days,
    aiClient: ["on", "true", "1"].includes(form.get("ai_client") ?? ""),
    clientName: (form.get("client_name") ?? "").trim(),
  };
}

export function tokenRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const boundary = boundaryChecks(sql, pages);

  /** The permission checkboxes: only what the user holds. */
  function groupsFor(req: ConsoleRequest, selected: ReadonlySet<string>) {
    return permissionGroups()
      .map((g) => ({ group: g.group, permissions: g.permissions.filter((p) => req.grants!.permissions.has(p.id)).map((p) => ({ ...p, checked: selected.has(p.id) })) }))
      .filter((g) => g.permissions.length > 0);
  }

  async function ownPage(req: ConsoleRequest, extra: { created?: { token: string; name: string; expires: string }; problems?: string[]; selected?: ReadonlySet<string> } = {}, status = 200) {
    const tokens = await listUserTokens(sql, req.user!.id);
    return pages.page(req, "pages/tokens", "API tokens", {
      tokens: tokens.map(tokenView),
      canCreate: can(req, "api.tokens.create"),
      canViewAll: can(req, "api.tokens.view"),
      groups: groupsFor(req, extra.selected ?? new Set()),
      expiries: EXPIRY_CHOICES.map((d) => ({ d, selected: d === 90 })),
      maxDays: MAX_TOKEN_DAYS,
      confirm: { phrase: CREATE_TOKEN_PHRASE, legend: "Confirm it is you" },
      created: extra.created ?? null,
      problems: extra.problems ?? [],
    }, status);
  }

  return [
    {
      method: "GET", path: "/account/tokens", access: "signed-in",
      handler: (req) => ownPage(req),
    },
    {
      method: "POST", path: "/account/tokens", access: "api.tokens.create", dangerous: { phrase: () => CREATE_TOKEN_PHRASE },
      async handler(req) {
        const t = parseTokenForm(req.form);
        const problems = validateTokenRequest(t, req.grants!.permissions, (p) => scopeFor(req, p).tags);
        if (problems.length) {
          await auditRequest(sql, req, "security_event", "api_token.create", t.name, false, { problems });
          return ownPage(req, { problems, selected: new Set(t.permissions) }, 422);
        }
        const { token, row } = await createApiToken(sql, req.user!.id, t);
        await auditRequest(sql, req, "user_management", "api_token.create", `token:${row.id} ${row.name}`, true, {
          token_id: row.id, permissions: row.permissions, scope_tags: row.scope_tags, expires_at: row.expires_at,
          ai_client: row.ai_client, ...(row.ai_client ? { client_name: row.client_name } : {}),
        });
        return ownPage(req, { created: { token, name: row.name, expires: isoMinute(row.expires_at) } }, 201);
      },
    },
    {
      method: "POST", path: "/account/tokens/:id/revoke", access: "signed-in",
      async handler(req) {
        const id = Number(req.params.id) || 0;
        const ok = await revokeToken(sql, id, req.user!.username, req.user!.id);
        await auditRequest(sql, req, "user_management", "api_token.revoke", `token:${id}`, ok, { own: true });
        if (!ok) return pages.formErrors(req, ["That token is not yours or is already revoked."], 404);
        return done(req, "/account/tokens");
      },
    },
    {
      method: "GET", path: "/tokens", access: "api.tokens.view",
      async handler(req) {
        const rows = await listAllTokens(sql);
        return pages.page(req, "pages/tokens-admin", "All API tokens", {
          tokens: rows.map((t) => ({ ...tokenView(t), owner: t.username, ownerId: t.user_id })),
          canRevoke: can(req, "api.tokens.revoke"),
        });
      },
    },
    {
      method: "POST", path: "/tokens/:id/revoke", access: "api.tokens.revoke",
      async handler(req) {
        const t = await getToken(sql, Number(req.params.id) || 0);
        if (!t) return pages.formErrors(req, ["No such token."], 404);
        // revoking acts on the owner: only for owners the administrator covers
        if (t.user_id !== req.user!.id) {
          const refused = await boundary.onUser(req, { id: t.user_id, username: t.username }, `revoke ${t.username}'s API token`);
          if (refused) return refused;
        }
        const ok = await revokeToken(sql, t.id, req.user!.username);
        await auditRequest(sql, req, "user_management", "api_token.revoke", `token:${t.id} of ${t.username}`, ok, { owner: t.username });
        if (!ok) return pages.formErrors(req, ["That token is already revoked."], 409);
        return done(req, "/tokens");
      },
    },
  ];
}
