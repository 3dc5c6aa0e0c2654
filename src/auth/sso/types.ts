/**
 * What every provider kind hands to provisioning, and the policy knobs shared by all of them.
 * No HTTP and no provider library here.
 */

/** A person as a provider asserted them, after our claim/attribute mapping. */
export interface ExternalIdentity {
  /** Provider id (sso_providers.id). */
  provider: string;
  /** Stable subject at that provider: OIDC `sub`, SAML NameID, LDAP entry DN or objectGUID. */
  subject: string;
  /** Preferred console username (normalized by provisioning). */
  username: string;
  email?: string;
  displayName?: string;
  /** Group names as the provider gives them; matched case-insensitively against sso_group_mappings. */
  groups: string[];
  /** True when the provider asserted a multi-factor sign-in (OIDC amr/acr, SAML AuthnContextClassRef). */
  idpMfa: boolean;
  /** When the user actually authenticated at the IdP (OIDC auth_time, SAML AuthnInstant), if said. */
  authTime?: Date;
}

/**
 * MFA for users who sign in through a provider:
 * - "trust-idp": a sign-in the IdP reports as multi-factor is complete; otherwise ours is asked for
 *   when `requireMfa` is set.
 * - "require-local": our TOTP is always asked for (enrolled first if needed).
 * - "off": the provider's sign-in alone is enough.
 */
export type SsoMfaMode = "trust-idp" | "require-local" | "off";

export interface SsoPolicy {
  /** When true, local passwords work only for break-glass accounts (with TOTP). */
  enforced: boolean;
  mfa: SsoMfaMode;
  /** With "trust-idp": refuse to skip our TOTP unless the IdP asserted MFA. */
  requireMfa: boolean;
}

export const DEFAULT_SSO_POLICY: SsoPolicy = { enforced: false, mfa: "trust-idp", requireMfa: false };

/** The stage a new session starts in; the console's stages (src/auth/session.ts). */
export type LoginStage = "full" | "mfa" | "enroll";

/** Settings shared by every provider kind, inside sso_providers.config. */
export interface ProvisioningSettings {
  /** Create users on first sign-in (default true). */
  jit?: boolean;
  /** Refuse the sign-in when no mapped group matches (default false: the user gets no roles). */
  requireMappedGroup?: boolean;
}

/** Thrown for a sign-in that must be refused; `reason` is audited, `message` may be shown. */
export class SsoError extends Error {
  constructor(readonly reason: string, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}
