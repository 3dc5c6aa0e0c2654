/**
 * What the SSO feature needs from the composition root. The console wires `startSession`,
 * `endSession` and `audit` to its own session and audit modules; nothing here knows Elysia.
 */
import type { Sql } from "postgres";
import type { SecretBox } from "../secret-box.ts";
import type { SsoAudit, RequestInfo } from "./audit-event.ts";
import type { LoginStage } from "./types.ts";
import type { LdapPoolOptions } from "./ldap/pool.ts";

/** Static settings. The SSO policy (enforcement, MFA) is run-time state: src/auth/sso/policy.ts. */
export interface SsoConfig {
  /** External base URL of the console, e.g. https://console.example.com (no trailing slash). */
  publicUrl: string;
  /** Where to send the browser after a failed sign-in (an `error` query parameter is added). */
  loginPath?: string;
  /** How long a started sign-in may take, in seconds (default 600). */
  requestTtlSeconds?: number;
  ldap?: LdapPoolOptions;
}

export interface SsoDeps {
  sql: Sql;
  config: SsoConfig;
  /** Seals provider secrets at rest (the console's SecretBox). */
  secrets: SecretBox;
  /**
   * Starts a console session for a signed-in user: returns the Set-Cookie header value and where
   * the browser goes next for that stage ("full": the console, "mfa": the TOTP page, "enroll":
   * TOTP enrollment).
   */
  startSession(userId: number, stage: LoginStage, req: RequestInfo): Promise<{ setCookie: string; location: string }>;
  /** Ends the session the request carries (if any) and says whose it was. */
  endSession(request: Request): Promise<{ userId: number } | null>;
  /**
   * Marks the session the request carries as freshly re-authenticated (the console's
   * markReauth) when it belongs to `userId`; false when the request has no live session of
   * that user. Used after a forced sign-in at the IdP, so SSO users can
   * confirm dangerous operations.
   */
  reauthenticate(request: Request, userId: number): Promise<boolean>;
  /** Appends an audit record (the console's `audit(sql, event)`). */
  audit: SsoAudit;
  /** Client address and user-agent of a request (the console's client-ip logic). */
  requestInfo(request: Request): RequestInfo;
}
