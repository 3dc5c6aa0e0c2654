/**
 * The SAML sign-in as the routes call it: `beginSamlSignIn` issues an AuthnRequest (its ID is
 * remembered for InResponseTo) with a single-use RelayState naming the provider;
 * `finishSamlSignIn` validates the posted Response and completes the sign-in.
 */
import { randomBytes } from "node:crypto";
import type { SsoDeps } from "../deps.ts";
import type { RequestInfo } from "../audit-event.ts";
import { getProvider } from "../providers.ts";
import { saveLoginRequest, takeLoginRequest } from "../login-requests.ts";
import { completeReauth, completeSignIn, safeReturnTo, type ReauthRequest } from "../sign-in.ts";
import type { SignInOutcome } from "../oidc/flow.ts";
import { SsoError } from "../types.ts";
import { authnRequestUrl, consumeResponse, spEndpoints, spMetadata } from "./service-provider.ts";
import type { SamlSettings } from "./settings.ts";

export async function samlSettings(deps: SsoDeps, providerId: string): Promise<SamlSettings> {
  const p = await getProvider<SamlSettings>(deps.sql, deps.secrets, providerId, "saml");
  if (!p) throw new SsoError("unknown_provider", "This sign-in provider is not configured.", { provider: providerId.slice(0, 40) });
  return p.config;
}

export async function beginSamlSignIn(deps: SsoDeps, providerId: string, reauth?: { returnTo: string }): Promise<string> {
  const s = await samlSettings(deps, providerId);
  const relay = randomBytes(24).toString("base64url");
  const data: Record<string, unknown> = reauth ? { reauth: { startedAt: Date.now(), returnTo: safeReturnTo(reauth.returnTo) } satisfies ReauthRequest } : {};
  await saveLoginRequest(deps.sql, "saml-relay", relay, providerId, data, deps.config.requestTtlSeconds ?? 600);
  return authnRequestUrl(deps.sql, providerId, s, spEndpoints(deps.config.publicUrl), relay, !!reauth);
}

export async function finishSamlSignIn(deps: SsoDeps, form: { SAMLResponse?: string; RelayState?: string }, req: RequestInfo): Promise<SignInOutcome> {
  const relay = form.RelayState ? await takeLoginRequest(deps.sql, "saml-relay", form.RelayState) : undefined;
  if (!relay) throw new SsoError("unknown_relay_state", "This sign-in expired or was not started here; start again.");
  const provider = relay.providerId;
  try {
    const s = await samlSettings(deps, provider);
    const ident = await consumeResponse(deps.sql, provider, s, spEndpoints(deps.config.publicUrl), form.SAMLResponse ?? "");
    const reauth = relay.data.reauth as ReauthRequest | undefined;
    if (reauth) return { kind: "reauth", provider, location: await completeReauth(deps, ident, s, reauth, req) };
    return { kind: "session", provider, ...(await completeSignIn(deps, "saml", ident, s, req)) };
  } catch (e) {
    if (e instanceof SsoError) throw new SsoError(e.reason, e.message, { provider, ...e.details });
    throw e;
  }
}

/** SP metadata; `providerId` picks whose SP certificate (if any) is published. */
export async function samlMetadata(deps: SsoDeps, providerId?: string): Promise<string> {
  const [first] = providerId
    ? [providerId]
    : (await deps.sql`select id from sso_providers where kind = 'saml' and enabled order by id limit 1`).map((r) => r.id as string);
  const s: SamlSettings = first ? await samlSettings(deps, first) : { idpEntityId: "none", idpSsoUrl: "https://invalid.invalid/", idpCerts: ["none"] };
  return spMetadata(deps.sql, first ?? "none", s, spEndpoints(deps.config.publicUrl));
}
