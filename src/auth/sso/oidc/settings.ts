/** OIDC provider settings (sso_providers.config for kind "oidc"). */
import type { ProvisioningSettings } from "../types.ts";

export interface OidcSettings extends ProvisioningSettings {
  /** Issuer URL; discovery is read from `${issuer}/.well-known/openid-configuration`. */
  issuer: string;
  clientId: string;
  /** Confidential clients (client_secret_basic); omit for a public client relying on PKCE alone. */
  clientSecret?: string;
  scopes?: string[];
  usernameClaim?: string;
  emailClaim?: string;
  nameClaim?: string;
  /** Claim with the group list (array or space/comma separated string). */
  groupsClaim?: string;
  /** `amr` values that count as multi-factor (default: mfa, otp, hwk, swk, sms, fpt, face, pop). */
  mfaAmr?: string[];
  /** `acr` values that count as multi-factor (default none). */
  mfaAcr?: string[];
  /** Read the userinfo endpoint when the ID token lacks the groups claim (default true). */
  useUserinfo?: boolean;
  /** PEM of a private CA (or self-signed certificate) the provider's TLS certificate must chain to; default: system CAs. */
  caPem?: string;
  /** http:// issuers are refused unless this is set and the host is a loopback address. */
  allowHttpLoopback?: boolean;
  /** Per-request timeout towards the provider, in ms (default 10000). */
  timeoutMs?: number;
  /** Clock tolerance for exp/iat/nbf, in seconds (default 60). */
  clockToleranceSeconds?: number;
}

export const DEFAULT_MFA_AMR = ["mfa", "otp", "hwk", "swk", "sms", "fpt", "face", "pop"];
