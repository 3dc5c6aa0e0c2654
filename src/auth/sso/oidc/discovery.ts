/** OpenID Provider discovery, cached per issuer for ten minutes. */
import type { OidcSettings } from "./settings.ts";
import { SsoError } from "../types.ts";

export interface OidcDiscovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  userinfo_endpoint?: string;
  end_session_endpoint?: string;
  code_challenge_methods_supported?: string[];
}

const TTL_MS = 10 * 60_000;
const cache = new Map<string, { at: number; doc: OidcDiscovery }>();

export function checkProviderUrl(url: string, s: OidcSettings, what: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SsoError("bad_discovery", `The provider's ${what} is not a URL.`);
  }
  if (u.protocol === "https:") return;
  const loopback = u.hostname === "127.0.0.1" || u.hostname === "[::1]" || u.hostname === "localhost";
  if (u.protocol === "http:" && loopback && s.allowHttpLoopback) return;
  throw new SsoError("insecure_provider", `The provider's ${what} (${u.origin}) must use https (allowHttpLoopback permits http on loopback only).`);
}

/** Bun's fetch takes the trusted CA per request. */
export function tlsFor(s: OidcSettings): { tls?: { ca: string } } {
  return s.caPem ? { tls: { ca: s.caPem } } : {};
}

export async function providerFetch(s: OidcSettings, url: string, init: RequestInit = {}): Promise<Response> {
  checkProviderUrl(url, s, "endpoint");
  try {
    return await fetch(url, { ...init, ...tlsFor(s), redirect: "error", signal: AbortSignal.timeout(s.timeoutMs ?? 10_000) });
  } catch (e) {
    throw new SsoError("provider_unreachable", `The identity provider did not answer (${new URL(url).origin}).`, { error: String(e).slice(0, 200) });
  }
}

export async function discover(s: OidcSettings, now = Date.now()): Promise<OidcDiscovery> {
  checkProviderUrl(s.issuer, s, "issuer");
  const issuer = s.issuer.replace(/\/$/, "");
  const cacheKey = `${issuer}\n${s.caPem ?? ""}`;
  const hit = cache.get(cacheKey);
  if (hit && now - hit.at < TTL_MS) return hit.doc;
  const res = await providerFetch(s, `${issuer}/.well-known/openid-configuration`, { headers: { accept: "application/json" } });
  if (!res.ok) throw new SsoError("bad_discovery", `Discovery at ${issuer} answered HTTP ${res.status}.`);
  const doc = (await res.json()) as OidcDiscovery;
  // The issuer in the document must be exactly the configured one (OpenID Connect Discovery 4.3).
  if (doc.issuer !== s.issuer && doc.issuer !== issuer) {
    throw new SsoError("bad_discovery", `Discovery issuer ${doc.issuer} does not match the configured ${s.issuer}.`);
  }
  for (const k of ["authorization_endpoint", "token_endpoint", "jwks_uri"] as const) {
    if (typeof doc[k] !== "string") throw new SsoError("bad_discovery", `Discovery at ${issuer} lacks ${k}.`);
    checkProviderUrl(doc[k], s, k);
  }
  if (doc.code_challenge_methods_supported && !doc.code_challenge_methods_supported.includes("S256")) {
    throw new SsoError("bad_discovery", `The provider at ${issuer} does not support PKCE S256.`);
  }
  cache.set(cacheKey, { at: now, doc });
  return doc;
}
