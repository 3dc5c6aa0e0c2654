/**
 * The last step shared by every provider kind: provision (JIT + group-to-role sync), choose the
 * session stage from the MFA policy, start the session and audit the sign-in. Failures are
 * audited by the caller with the reason (SsoError.reason).
 */
import type { SsoDeps } from "./deps.ts";
import type { RequestInfo } from "./audit-event.ts";
import { loginStage, provisionUser } from "./provision.ts";
import { loadSsoPolicy } from "./policy.ts";
import { saveLoginRequest, takeLoginRequest } from "./login-requests.ts";
import { randomBytes } from "node:crypto";
import { SsoError } from "./types.ts";
import type { ExternalIdentity, ProvisioningSettings } from "./types.ts";

export interface SignedIn {
  userId: number;
  username: string;
  stage: ReturnType<typeof loginStage>;
  setCookie: string;
  location: string;
}

export async function completeSignIn(deps: SsoDeps, kind: string, ident: ExternalIdentity, settings: ProvisioningSettings, req: RequestInfo): Promise<SignedIn> {
  const p = await provisionUser(deps.sql, deps.audit, ident, settings, req);
  const policy = await loadSsoPolicy(deps.sql);
  const stage = loginStage(policy, ident.idpMfa, p.totpEnrolled);
  const session = await deps.startSession(p.userId, stage, req);
  await deps.audit({
    actor: { type: "user", id: p.userId, name: p.username },
    ip: req.ip,
    userAgent: req.userAgent,
    category: "authentication",
    action: "sso.login",
    target: `provider:${ident.provider}`,
    success: true,
    details: { kind, subject: ident.subject, idpMfa: ident.idpMfa, stage, roles: p.roles, created: p.created },
  });
  return { userId: p.userId, username: p.username, stage, ...session };
}

/** What a re-authentication request remembers between the IdP round trip's two ends. */
export interface ReauthRequest {
  startedAt: number;
  returnTo: string;
}

/** A path on this console to come back to, or the fallback. */
export function safeReturnTo(v: unknown, fallback = "/hosts"): string {
  return typeof v === "string" && /^\/[A-Za-z0-9/_?=&%.-]*$/.test(v) && !v.startsWith("//") ? v : fallback;
}

const REAUTH_SKEW_MS = 60_000;

/**
 * The IdP confirmed who the user is just now (forced sign-in). Checks that it really happened
 * after we asked, provisions as usual, and returns a single-use ticket path; the browser
 * follows it as a same-site navigation (so the console's SameSite=Strict cookie comes along)
 * and `redeemReauthTicket` marks that session re-authenticated.
 */
export async function completeReauth(deps: SsoDeps, ident: ExternalIdentity, settings: ProvisioningSettings, pending: ReauthRequest, req: RequestInfo): Promise<string> {
  if (!ident.authTime || ident.authTime.getTime() < pending.startedAt - REAUTH_SKEW_MS) {
    throw new SsoError("reauth_not_fresh", "The identity provider did not ask you to sign in again.", { authTime: ident.authTime?.toISOString() ?? null });
  }
  const p = await provisionUser(deps.sql, deps.audit, ident, settings, req);
  const ticket = randomBytes(24).toString("base64url");
  await saveLoginRequest(deps.sql, "reauth-ticket", ticket, ident.provider, { userId: p.userId, username: p.username, returnTo: pending.returnTo }, 120);
  return `/auth/sso/reauth?ticket=${ticket}`;
}

export async function redeemReauthTicket(deps: SsoDeps, request: Request, ticket: string, req: RequestInfo): Promise<string> {
  const t = await takeLoginRequest(deps.sql, "reauth-ticket", ticket);
  if (!t) throw new SsoError("unknown_ticket", "This re-authentication expired or was already used.");
  const userId = Number(t.data.userId);
  const ok = await deps.reauthenticate(request, userId);
  await deps.audit({
    actor: { type: "user", id: userId, name: String(t.data.username) },
    ip: req.ip, userAgent: req.userAgent, category: "authentication", action: "sso.reauth",
    target: `provider:${t.providerId}`, success: ok, details: ok ? {} : { reason: "session_mismatch" },
  });
  if (!ok) throw new SsoError("session_mismatch", "Re-authenticate as the user who is signed in here.", { provider: t.providerId });
  return safeReturnTo(t.data.returnTo);
}
