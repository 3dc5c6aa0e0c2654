/**
 * The SAML 2.0 service provider: SP-initiated sign-in (HTTP-Redirect AuthnRequest), the
 * assertion consumer (HTTP-POST), SP metadata. Signature, audience, time and InResponseTo checks
 * are node-saml's; on top we require a signed assertion (and by default a signed Response),
 * refuse a replayed assertion ID and map attributes to an ExternalIdentity.
 */
import type { Sql } from "postgres";
import { SAML, ValidateInResponseTo, type Profile } from "@node-saml/node-saml";
import { DOMParser, type Element } from "@xmldom/xmldom";
import { requestIdCache, firstUseOfAssertion } from "./replay.ts";
import type { SamlSettings } from "./settings.ts";
import { SsoError, type ExternalIdentity } from "../types.ts";

const ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion";

export interface SpEndpoints {
  /** Our entity ID; the metadata URL by convention. */
  entityId: string;
  acsUrl: string;
}

export function spEndpoints(publicUrl: string): SpEndpoints {
  const base = publicUrl.replace(/\/$/, "");
  return { entityId: `${base}/auth/saml/metadata`, acsUrl: `${base}/auth/saml/acs` };
}

function bareCert(c: string): string {
  return c.replace(/-----[^-]+-----|\s/g, "");
}

export function createSp(sql: Sql, providerId: string, s: SamlSettings, sp: SpEndpoints, requestTtlSeconds = 600, forceAuthn = false): SAML {
  return new SAML({
    forceAuthn,
    issuer: sp.entityId,
    callbackUrl: sp.acsUrl,
    entryPoint: s.idpSsoUrl,
    idpIssuer: s.idpEntityId,
    idpCert: s.idpCerts.map(bareCert),
    audience: sp.entityId,
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: s.wantResponseSigned ?? true,
    acceptedClockSkewMs: (s.clockSkewSeconds ?? 60) * 1000,
    maxAssertionAgeMs: (s.maxAssertionAgeSeconds ?? 300) * 1000,
    validateInResponseTo: ValidateInResponseTo.always,
    requestIdExpirationPeriodMs: requestTtlSeconds * 1000,
    cacheProvider: requestIdCache(sql, providerId, requestTtlSeconds),
    identifierFormat: s.nameIdFormat ?? null,
    disableRequestedAuthnContext: true,
    signatureAlgorithm: "sha256",
    digestAlgorithm: "sha256",
    privateKey: s.spPrivateKeyPem,
    publicCert: s.spCertPem,
  });
}

export function spMetadata(sql: Sql, providerId: string, s: SamlSettings, sp: SpEndpoints): string {
  return createSp(sql, providerId, s, sp).generateServiceProviderMetadata(null, s.spCertPem ?? null);
}

export async function authnRequestUrl(sql: Sql, providerId: string, s: SamlSettings, sp: SpEndpoints, relayState: string, forceAuthn = false): Promise<string> {
  return createSp(sql, providerId, s, sp, 600, forceAuthn).getAuthorizeUrlAsync(relayState, undefined, {});
}

function attr(profile: Profile, name: string | undefined): string[] {
  if (!name) return [];
  const attrs = (profile.attributes ?? {}) as Record<string, unknown>;
  const v = attrs[name] ?? profile[name];
  if (Array.isArray(v)) return v.map(String);
  return v === undefined || v === null ? [] : [String(v)];
}

interface AssertionFacts {
  id: string;
  expiresAt: Date;
  authnContext: string[];
  authnInstant?: Date;
}

function assertionFacts(xml: string): AssertionFacts {
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const a = doc.documentElement as unknown as Element | null;
  if (!a || a.localName !== "Assertion") throw new SsoError("saml_invalid", "The SAML assertion could not be read.");
  const id = a.getAttribute("ID");
  if (!id) throw new SsoError("saml_invalid", "The SAML assertion has no ID.");
  const times = [
    ...Array.from(a.getElementsByTagNameNS(ASSERTION_NS, "Conditions") as unknown as Iterable<Element>),
    ...Array.from(a.getElementsByTagNameNS(ASSERTION_NS, "SubjectConfirmationData") as unknown as Iterable<Element>),
  ].map((e) => Date.parse(e.getAttribute("NotOnOrAfter") ?? "")).filter((t) => !Number.isNaN(t));
  const expiresAt = new Date(times.length ? Math.max(...times) : Date.now() + 3600_000);
  const authnContext = Array.from(a.getElementsByTagNameNS(ASSERTION_NS, "AuthnContextClassRef") as unknown as Iterable<Element>)
    .map((e) => (e.textContent ?? "").trim());
  const statement = (a.getElementsByTagNameNS(ASSERTION_NS, "AuthnStatement") as unknown as ArrayLike<Element>)[0];
  const instant = Date.parse(statement?.getAttribute("AuthnInstant") ?? "");
  return { id, expiresAt, authnContext, authnInstant: Number.isNaN(instant) ? undefined : new Date(instant) };
}

/** Validates a posted SAMLResponse and returns the identity it asserts. */
export async function consumeResponse(sql: Sql, providerId: string, s: SamlSettings, sp: SpEndpoints, samlResponse: string): Promise<ExternalIdentity> {
  if (!samlResponse || samlResponse.length > 512 * 1024) throw new SsoError("saml_invalid", "The SAML response is missing or too large.", { bytes: samlResponse?.length ?? 0 });
  let profile: Profile | null;
  try {
    ({ profile } = await createSp(sql, providerId, s, sp).validatePostResponseAsync({ SAMLResponse: samlResponse }));
  } catch (e) {
    throw new SsoError("saml_invalid", "The SAML response was refused.", { error: String((e as Error).message).slice(0, 200) });
  }
  if (!profile || !profile.getAssertionXml) throw new SsoError("saml_invalid", "The SAML response carries no assertion.");
  const facts = assertionFacts(profile.getAssertionXml());
  if (!(await firstUseOfAssertion(sql, providerId, facts.id, facts.expiresAt))) {
    throw new SsoError("saml_replay", "This SAML assertion was already used.", { assertionId: facts.id });
  }
  const username = attr(profile, s.usernameAttribute ?? "uid")[0] ?? profile.nameID;
  let subject: string | undefined = s.subjectAttribute ? attr(profile, s.subjectAttribute)[0] : profile.nameID;
  if (!s.subjectAttribute && profile.nameIDFormat === "urn:oasis:names:tc:SAML:2.0:nameid-format:transient") subject = undefined;
  if (!subject) {
    throw new SsoError("saml_no_subject", "The identity provider sent no stable identifier for you.", { nameIdFormat: profile.nameIDFormat, subjectAttribute: s.subjectAttribute ?? null });
  }
  return {
    provider: providerId,
    subject,
    username,
    email: attr(profile, s.emailAttribute ?? "mail")[0],
    displayName: attr(profile, s.nameAttribute ?? "displayName")[0],
    groups: attr(profile, s.groupsAttribute ?? "groups"),
    idpMfa: facts.authnContext.some((c) => (s.mfaAuthnContexts ?? []).includes(c)),
    authTime: facts.authnInstant,
  };
}
