/** LDAP / Active Directory settings (sso_providers.config for kind "ldap"). */
import type { ProvisioningSettings } from "../types.ts";

export interface LdapSettings extends ProvisioningSettings {
  /** ldaps://host:636, or ldap://host:389 with `startTls`. */
  url: string;
  startTls?: boolean;
  /** PEM of the CA (or self-signed certificate) the directory's certificate must chain to; default: system CAs. */
  caPem?: string;
  /** Plain ldap:// without StartTLS is refused unless this is set (lab use only). */
  allowPlaintext?: boolean;
  /** Service account used to find users and groups. */
  bindDn: string;
  bindPassword: string;
  userBase: string;
  /** `{username}` is replaced by the escaped login name, e.g. (&(objectClass=inetOrgPerson)(uid={username})) or AD's (&(objectCategory=person)(sAMAccountName={username})). */
  userFilter: string;
  usernameAttribute?: string;
  emailAttribute?: string;
  nameAttribute?: string;
  /** Attribute whose value is the stable subject (AD: objectGUID); default: the entry DN. */
  subjectAttribute?: string;
  groupBase: string;
  /** Narrows group searches, e.g. (objectClass=groupOfNames) or (objectClass=group). */
  groupFilter?: string;
  /** Attribute naming the group in mappings (default cn); "dn" uses the full DN. */
  groupNameAttribute?: string;
  /** Attribute of a group listing its members' DNs (default member). */
  memberAttribute?: string;
  /**
   * Nested groups: "ad" asks the server with the in-chain matching rule
   * (member:1.2.840.113556.1.4.1941:=<user DN>); "recursive" walks group membership level by
   * level (OpenLDAP and others); "none" takes direct membership only.
   */
  nested?: "ad" | "recursive" | "none";
  /** Levels followed by "recursive" (default 10). */
  maxDepth?: number;
  /** Operation timeout and connect timeout, in ms (defaults 5000 and 3000). */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** Active Directory's userAccountControl "disabled" bit refuses the sign-in (default true when nested = "ad"). */
  checkAdDisabled?: boolean;
}
