/** Audit records for console actions: the actor, IP and user-agent come from the request. */
import type { Sql } from "postgres";
import { audit, type AuditCategory } from "../audit/audit.ts";
import type { ConsoleRequest } from "./route.ts";

export function auditRequest(
  sql: Sql,
  req: ConsoleRequest,
  category: AuditCategory,
  action: string,
  target: string,
  success: boolean,
  details: Record<string, unknown> = {},
  actorName?: string,
) {
  const user = req.user;
  return audit(sql, {
    actor: user ? { type: "user", id: user.id, name: user.username } : { type: "anonymous", name: actorName ?? "" },
    ip: req.ip,
    userAgent: req.userAgent,
    category,
    action,
    target,
    success,
    details: req.reauth ? { ...details, dangerous: true, confirmed: true, reauth: req.reauth } : details,
  });
}
