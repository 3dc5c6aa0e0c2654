/**
 * ID token validation (OpenID Connect Core 3.1.3.7): signature against the provider's JWKS,
 * issuer, audience (and azp when several audiences), expiry and issue time with a small clock
 * tolerance, and the nonce this sign-in sent.
 */
import { createRemoteJWKSet, jwtVerify, customFetch, type JWTPayload } from "jose";
import type { OidcDiscovery } from "./discovery.ts";
import { checkProviderUrl, tlsFor } from "./discovery.ts";
import type { OidcSettings } from "./settings.ts";
import { SsoError } from "../types.ts";

const jwksCache = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

function jwks(s: OidcSettings, uri: string) {
  const key = `${uri}\n${s.caPem ?? ""}`;
  let set = jwksCache.get(key);
  if (!set) {
    checkProviderUrl(uri, s, "jwks_uri");
    set = createRemoteJWKSet(new URL(uri), {
      timeoutDuration: s.timeoutMs ?? 10_000,
      [customFetch]: (url: string, init: RequestInit) => fetch(url, { ...init, ...tlsFor(s), redirect: "error" }),
    });
    jwksCache.set(key, set);
  }
  return set;
}

export interface VerifyOptions {
  nonce: string;
  /** Injected clock for tests. */
  now?: Date;
}

export async function verifyIdToken(s: OidcSettings, d: OidcDiscovery, idToken: string, opts: VerifyOptions): Promise<JWTPayload> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(idToken, jwks(s, d.jwks_uri), {
      issuer: d.issuer,
      audience: s.clientId,
      algorithms: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
      clockTolerance: s.clockToleranceSeconds ?? 60,
      currentDate: opts.now,
      requiredClaims: ["sub", "exp", "iat"],
    }));
  } catch (e) {
    const code = (e as { code?: string }).code ?? "ERR_JWT_INVALID";
    throw new SsoError("id_token_invalid", "The identity provider's ID token was refused.", { code, error: String((e as Error).message).slice(0, 200) });
  }
  if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== s.clientId) {
    throw new SsoError("id_token_invalid", "The ID token was issued to another party (azp).", { code: "azp" });
  }
  if (typeof payload.nonce !== "string" || payload.nonce !== opts.nonce) {
    throw new SsoError("id_token_invalid", "The ID token does not belong to this sign-in (nonce).", { code: "nonce" });
  }
  return payload;
}
