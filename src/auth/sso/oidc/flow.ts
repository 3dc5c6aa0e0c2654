/**
 * The OIDC sign-in as two steps the routes call: `beginOidcSignIn` stores state, nonce and PKCE
 * verifier (single-use, in PostgreSQL) and binds them to the browser with a cookie;
 * `finishOidcSignIn` checks that binding, exchanges the code and completes the sign-in.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import type { SsoDeps } from "../deps.ts";
import type { RequestInfo } from "../audit-event.ts";
import { getProvider } from "../providers.ts";
import { saveLoginRequest, takeLoginRequest } from "../login-requests.ts";
import { completeReauth, completeSignIn, safeReturnTo, type ReauthRequest, type SignedIn } from "../sign-in.ts";
import { SsoError } from "../types.ts";
import { authorizationUrl, endSessionUrl, exchangeCode, identityFromClaims } from "./client.ts";
import type { OidcSettings } from "./settings.ts";

export const OIDC_BINDING_COOKIE = "sm_oidc";

export function oidcRedirectUri(publicUrl: string): string {
  return `${publicUrl.replace(/\/$/, "")}/auth/oidc/callback`;
}

export async function oidcSettings(deps: SsoDeps, providerId: string): Promise<OidcSettings> {
  const p = await getProvider<OidcSettings>(deps.sql, deps.secrets, providerId, "oidc");
  if (!p) throw new SsoError("unknown_provider", "This sign-in provider is not configured.", { provider: providerId.slice(0, 40) });
  return p.config;
}

export async function beginOidcSignIn(deps: SsoDeps, providerId: string, reauth?: { returnTo: string }): Promise<{ location: string; bindingValue: string }> {
  const s = await oidcSettings(deps, providerId);
  const { url, pending } = await authorizationUrl(s, oidcRedirectUri(deps.config.publicUrl), { forceLogin: !!reauth });
  const data: Record<string, unknown> = { nonce: pending.nonce, verifier: pending.verifier };
  if (reauth) data.reauth = { startedAt: Date.now(), returnTo: safeReturnTo(reauth.returnTo) } satisfies ReauthRequest;
  await saveLoginRequest(deps.sql, "oidc", pending.state, providerId, data, deps.config.requestTtlSeconds ?? 600);
  return { location: url, bindingValue: pending.state };
}

function same(a: string, b: string): boolean {
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y);
}

export interface OidcCallback {
  code?: string;
  state?: string;
  error?: string;
  error_description?: string;
}

/** Returns the provider id (for auditing failures) alongside the outcome. */
export type SignInOutcome =
  | ({ kind: "session"; provider: string } & SignedIn)
  | { kind: "reauth"; provider: string; location: string };

export async function finishOidcSignIn(deps: SsoDeps, q: OidcCallback, bindingCookie: string | undefined, req: RequestInfo): Promise<SignInOutcome> {
  const pending = q.state ? await takeLoginRequest(deps.sql, "oidc", q.state) : undefined;
  if (!pending) throw new SsoError("unknown_state", "This sign-in expired or was already used; start again.");
  const provider = pending.providerId;
  const fail = (reason: string, message: string, details: Record<string, unknown> = {}) => new SsoError(reason, message, { provider, ...details });
  if (!bindingCookie || !same(bindingCookie, q.state!)) throw fail("state_not_bound", "This sign-in was started in another browser.");
  if (q.error) throw fail("idp_error", "The identity provider did not sign you in.", { error: String(q.error).slice(0, 100), description: String(q.error_description ?? "").slice(0, 200) });
  if (!q.code) throw fail("no_code", "The identity provider sent no sign-in code.");
  const s = await oidcSettings(deps, provider);
  try {
    const { claims } = await exchangeCode(s, oidcRedirectUri(deps.config.publicUrl), q.code, pending.data as { nonce: string; verifier: string });
    const ident = identityFromClaims(provider, s, claims);
    const reauth = pending.data.reauth as ReauthRequest | undefined;
    if (reauth) return { kind: "reauth", provider, location: await completeReauth(deps, ident, s, reauth, req) };
    return { kind: "session", provider, ...(await completeSignIn(deps, "oidc", ident, s, req)) };
  } catch (e) {
    if (e instanceof SsoError) throw new SsoError(e.reason, e.message, { provider, ...e.details });
    throw e;
  }
}

export async function oidcLogoutUrl(deps: SsoDeps, providerId: string, postLogoutPath: string): Promise<string | undefined> {
  const s = await oidcSettings(deps, providerId);
  return endSessionUrl(s, `${deps.config.publicUrl.replace(/\/$/, "")}${postLogoutPath}`, crypto.randomUUID());
}
