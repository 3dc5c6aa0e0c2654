/**
 * API-token authentication for the guard: `Authorization: Bearer smp_...` on /api/* routes.
 * - Only on /api/*: an HTML page answers 401 to a bearer token.
 * - Never together with a session cookie: a request carrying both is refused (400), so a page
 *   script cannot mix a user's session with a token, and no request has two principals.
 * - Wrong, expired or revoked tokens answer 401 with `WWW-Authenticate: Bearer`, are audited,
 *   and are counted per client address (`tokip:<address>`, src/auth/throttle.ts): after
 *   BEARER_FAILURE_LIMIT failures within the decay period, the address gets 429 with
 *   Retry-After for a backoff window, whatever token it sends.
 * A live token yields its owner and what the token may do now (src/auth/api-tokens.ts
 * tokenGrants: re-intersected with the owner's current roles on every request).
 */
import type { Sql } from "postgres";
import { authenticateToken, tokenGrants } from "../auth/api-tokens.ts";
import { userGrants, type Grants } from "../auth/roles.ts";
import { getUser, type User } from "../auth/users.ts";
import { addressKey, chargeKeyFailure, keyBlockedFor, throttleLimits } from "../auth/throttle.ts";
import { audit } from "../audit/audit.ts";
import type { SettingsStore } from "../settings/console-settings.ts";
import type { TokenPrincipal } from "./route.ts";
import { securityHeaders } from "./respond.ts";

/** Failed bearer attempts per address before a backoff window opens. */
export const BEARER_FAILURE_LIMIT = 20;

export interface BearerPrincipal {
  user: User;
  grants: Grants;
  token: TokenPrincipal;
}

function refusal(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status, headers: securityHeaders(new Headers({ "content-type": "application/json", ...headers })),
  });
}

const challenge = (error?: string) => ({ "www-authenticate": error ? `Bearer realm="servermind", error="${error}"` : `Bearer realm="servermind"` });

/** The bearer secret in the Authorization header ("" for "Bearer" alone); null without a Bearer header. */
export function bearerSecret(request: Request): string | null {
  const h = request.headers.get("authorization");
  if (!h) return null;
  const m = /^Bearer(?:\s+(\S*))?\s*$/i.exec(h.trim());
  return m ? m[1] ?? "" : null;
}

/**
 * null: the request carries no bearer token (the cookie session applies). A Response: the
 * refusal to send. Otherwise the token's principal.
 */
export async function bearerPrincipal(
  s: { sql: Sql; settings: SettingsStore }, request: Request, url: URL, routePath: string, ip: string, hasSessionCookie: boolean,
): Promise<BearerPrincipal | Response | null> {
  const secret = bearerSecret(request);
  if (secret === null) return null;
  // the declared route and the requested path both under /api/
  if (!routePath.startsWith("/api/") || !url.pathname.startsWith("/api/")) {
    return refusal(401, "token_not_accepted", "API tokens are accepted on /api/ routes only; sign in to use the console pages.", challenge("invalid_request"));
  }
  return tokenPrincipal(s, request, url, secret, ip, hasSessionCookie);
}

/**
 * The principal of a bearer secret (also the MCP endpoint's, src/web/mcp/http.ts): a refusal
 * Response (both a cookie and a token, throttled address, bad token) or the token's principal.
 */
export async function tokenPrincipal(
  s: { sql: Sql; settings: SettingsStore }, request: Request, url: URL, secret: string, ip: string, hasSessionCookie: boolean,
): Promise<BearerPrincipal | Response> {
  if (hasSessionCookie) {
    return refusal(400, "ambiguous_credentials", "Send either a session cookie or an API token, not both.");
  }
  const key = `tokip:${addressKey(ip)}`;
  const wait = await keyBlockedFor(s.sql, key);
  if (wait > 0) {
    return refusal(429, "throttled", `Too many failed token attempts from this address. Try again in ${wait} seconds.`, { "retry-after": String(wait), ...challenge() });
  }
  const check = await authenticateToken(s.sql, secret, ip);
  const user = check.ok ? await getUser(s.sql, check.token.user_id) : undefined;
  if (!check.ok || !user) {
    const reason = check.ok ? "owner_gone" : check.reason;
    const limits = throttleLimits((await s.settings.get()).password);
    const opened = await chargeKeyFailure(s.sql, limits, key, BEARER_FAILURE_LIMIT);
    await audit(s.sql, {
      actor: { type: "anonymous", name: check.ok ? `token:${check.token.id}` : "" },
      ip, userAgent: request.headers.get("user-agent") ?? "",
      category: "security_event", action: "api_token.rejected", target: `${request.method} ${url.pathname}`, success: false,
      details: { reason, ...(opened ? { throttled: true } : {}) },
    });
    const message = reason === "expired" ? "This API token has expired." : reason === "revoked" ? "This API token has been revoked." : "The API token is not valid.";
    return refusal(401, "invalid_token", message, challenge("invalid_token"));
  }
  const t = check.token;
  return {
    user,
    grants: tokenGrants(await userGrants(s.sql, user.id), t),
    token: { id: t.id, name: t.name, aiClient: t.ai_client, clientName: t.client_name },
  };
}
