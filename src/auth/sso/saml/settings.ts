/** SAML 2.0 IdP settings (sso_providers.config for kind "saml"); `importIdpMetadata` fills the idp* fields. */
import type { ProvisioningSettings } from "../types.ts";

export interface SamlSettings extends ProvisioningSettings {
  idpEntityId: string;
  /** SingleSignOnService location (HTTP-Redirect binding). */
  idpSsoUrl: string;
  /** PEM or bare base64 signing certificates of the IdP (several during a key rollover). */
  idpCerts: string[];
  idpSloUrl?: string;
  /** Require the whole Response to be signed too (default true); the assertion must always be signed. */
  wantResponseSigned?: boolean;
  /** Allowed clock difference for NotBefore/NotOnOrAfter, in seconds (default 60). */
  clockSkewSeconds?: number;
  /** Longest accepted assertion age, in seconds (default 300). */
  maxAssertionAgeSeconds?: number;
  /** NameID format to ask for (default: none requested). */
  nameIdFormat?: string;
  /**
   * Attribute holding a stable subject (e.g. an employee ID or objectGUID); default: the NameID,
   * which must then be persistent or otherwise stable (a transient NameID is refused).
   */
  subjectAttribute?: string;
  usernameAttribute?: string;
  emailAttribute?: string;
  nameAttribute?: string;
  groupsAttribute?: string;
  /** AuthnContextClassRef values that mean multi-factor (for the "trust-idp" MFA mode). */
  mfaAuthnContexts?: string[];
  /** Optional SP key pair to sign AuthnRequests and to publish in SP metadata. */
  spPrivateKeyPem?: string;
  spCertPem?: string;
}
