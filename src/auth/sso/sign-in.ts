/**
 * The last step shared by every provider kind: provision (JIT + group-to-role sync), choose the
 * session stage from the MFA policy, start the session and audit the sign-in. Failures are
 * audited by the caller with the reason (SsoError.reason).
 */
import type { SsoDeps } from "./deps.ts";
import type { RequestInfo } from "./audit-event.ts";
import { loginStage, provisionUser } from "./provision.ts";
import { loadSsoPolicy } from "./policy.ts";
import type { ExternalIdentity, ProvisioningSettings } from "./types.ts";

export interface SignedIn {
  userId: number;
  username: string;
  stage: ReturnType<typeof loginStage>;
  setCookie: string;
  location: string;
}

export async function completeSignIn(deps: SsoDeps, kind: string, ident: ExternalIdentity, settings: ProvisioningSettings, req: RequestInfo): Promise<SignedIn> {
  const p = await provisionUser(deps.sql, deps.audit, ident, settings, req);
  const policy = await loadSsoPolicy(deps.sql, deps.config.policy);
  const stage = loginStage(policy, ident.idpMfa, p.totpEnrolled);
  const session = await deps.startSession(p.userId, stage, req);
  await deps.audit({
    actor: { type: "user", id: p.userId, name: p.username },
    ip: req.ip,
    userAgent: req.userAgent,
    category: "authentication",
    action: "sso.login",
    target: `provider:${ident.provider}`,
    success: true,
    details: { kind, subject: ident.subject, idpMfa: ident.idpMfa, stage, roles: p.roles, created: p.created },
  });
  return { userId: p.userId, username: p.username, stage, ...session };
}
