/**
 * The relying party: authorization request with PKCE (S256), state and nonce; code exchange;
 * ID token validation; claims mapping; RP-initiated logout URL. Framework-free.
 */
import { createHash, randomBytes } from "node:crypto";
import type { JWTPayload } from "jose";
import { discover, providerFetch } from "./discovery.ts";
import { verifyIdToken } from "./id-token.ts";
import { DEFAULT_MFA_AMR, type OidcSettings } from "./settings.ts";
import { SsoError, type ExternalIdentity } from "../types.ts";

export interface PendingOidcLogin {
  state: string;
  nonce: string;
  verifier: string;
}

function random(): string {
  return randomBytes(32).toString("base64url");
}

export async function authorizationUrl(s: OidcSettings, redirectUri: string, opts: { forceLogin?: boolean } = {}): Promise<{ url: string; pending: PendingOidcLogin }> {
  const d = await discover(s);
  const pending = { state: random(), nonce: random(), verifier: random() };
  const u = new URL(d.authorization_endpoint);
  u.searchParams.set("response_type", "code");
  u.searchParams.set("client_id", s.clientId);
  u.searchParams.set("redirect_uri", redirectUri);
  u.searchParams.set("scope", (s.scopes ?? ["openid", "profile", "email"]).join(" "));
  u.searchParams.set("state", pending.state);
  u.searchParams.set("nonce", pending.nonce);
  u.searchParams.set("code_challenge", createHash("sha256").update(pending.verifier).digest("base64url"));
  u.searchParams.set("code_challenge_method", "S256");
  if (opts.forceLogin) {
    // re-authentication: the user must sign in again now, and auth_time comes back in the ID token
    u.searchParams.set("prompt", "login");
    u.searchParams.set("max_age", "0");
  }
  return { url: u.toString(), pending };
}

export interface OidcResult {
  claims: JWTPayload & Record<string, unknown>;
  idToken: string;
}

/** Exchanges the code and returns the validated ID token claims (merged with userinfo if configured). */
export async function exchangeCode(s: OidcSettings, redirectUri: string, code: string, pending: { nonce: string; verifier: string }): Promise<OidcResult> {
  const d = await discover(s);
  const body = new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: pending.verifier });
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
  if (s.clientSecret) {
    const enc = (v: string) => encodeURIComponent(v).replace(/%20/g, "+");
    headers.authorization = `Basic ${Buffer.from(`${enc(s.clientId)}:${enc(s.clientSecret)}`).toString("base64")}`;
  } else {
    body.set("client_id", s.clientId);
  }
  const res = await providerFetch(s, d.token_endpoint, { method: "POST", headers, body });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok || typeof json.id_token !== "string") {
    throw new SsoError("token_exchange_failed", "The identity provider refused the sign-in code.", { status: res.status, error: String(json.error ?? "").slice(0, 100) });
  }
  const claims = (await verifyIdToken(s, d, json.id_token, { nonce: pending.nonce })) as OidcResult["claims"];
  const groupsClaim = s.groupsClaim ?? "groups";
  if (s.useUserinfo !== false && claims[groupsClaim] === undefined && d.userinfo_endpoint && typeof json.access_token === "string") {
    const ui = await providerFetch(s, d.userinfo_endpoint, { headers: { authorization: `Bearer ${json.access_token}`, accept: "application/json" } });
    if (ui.ok) {
      const info = (await ui.json()) as Record<string, unknown>;
      // Userinfo must be about the same subject (Core 5.3.2).
      if (info.sub === claims.sub) {
        for (const [k, v] of Object.entries(info)) if (claims[k] === undefined) claims[k] = v;
      }
    }
  }
  return { claims, idToken: json.id_token };
}

function asList(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  if (typeof v === "string") return v.split(/[\s,]+/).filter(Boolean);
  return [];
}

export function identityFromClaims(providerId: string, s: OidcSettings, claims: Record<string, unknown>): ExternalIdentity {
  const str = (k: string | undefined) => (k && typeof claims[k] === "string" ? (claims[k] as string) : undefined);
  const username = str(s.usernameClaim ?? "preferred_username") ?? str("email") ?? String(claims.sub);
  const amr = asList(claims.amr);
  const acr = typeof claims.acr === "string" ? claims.acr : "";
  const mfaAmr = s.mfaAmr ?? DEFAULT_MFA_AMR;
  return {
    provider: providerId,
    subject: String(claims.sub),
    username,
    email: str(s.emailClaim ?? "email"),
    displayName: str(s.nameClaim ?? "name"),
    groups: asList(claims[s.groupsClaim ?? "groups"]),
    idpMfa: amr.some((a) => mfaAmr.includes(a)) || (!!acr && (s.mfaAcr ?? []).includes(acr)),
    authTime: typeof claims.auth_time === "number" ? new Date(claims.auth_time * 1000) : undefined,
  };
}

/** RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), or undefined when unsupported. */
export async function endSessionUrl(s: OidcSettings, postLogoutRedirectUri: string, state: string): Promise<string | undefined> {
  const d = await discover(s);
  if (!d.end_session_endpoint) return undefined;
  const u = new URL(d.end_session_endpoint);
  u.searchParams.set("client_id", s.clientId);
  u.searchParams.set("post_logout_redirect_uri", postLogoutRedirectUri);
  u.searchParams.set("state", state);
  return u.toString();
}
