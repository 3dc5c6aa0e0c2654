/**
 * The audit events this feature writes, in the console's AuditEvent shape
 * (src/audit/audit.ts). Secrets (passwords, tokens, assertions) never go into details.
 */
import type { AuditEvent } from "../../audit/audit.ts";

export type SsoAudit = (e: AuditEvent) => Promise<unknown>;

export interface RequestInfo {
  ip: string;
  userAgent: string;
}

export function loginFailure(provider: string, reason: string, req: RequestInfo, details: Record<string, unknown> = {}, who = ""): AuditEvent {
  return {
    actor: { type: "anonymous", name: who },
    ip: req.ip,
    userAgent: req.userAgent,
    category: "authentication",
    action: "sso.login",
    target: `provider:${provider.slice(0, 64)}`,
    success: false,
    details: { reason, ...details },
  };
}
