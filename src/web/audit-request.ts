/** Audit records for console actions: the actor, IP and user-agent come from the request. */
import type { Sql } from "postgres";
import { audit, type AuditCategory, type AuditEvent } from "../audit/audit.ts";
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
  const t = req.token;
  // an API token acts for its owner: actor id "token:<id>"; an AI client's token is an "ai" actor
  // named after the client, on behalf of the owner
  const actor: AuditEvent["actor"] = t && user
    ? (t.aiClient ? { type: "ai", id: `token:${t.id}`, name: t.clientName, onBehalfOf: user.username } : { type: "user", id: `token:${t.id}`, name: user.username })
    : user ? { type: "user", id: user.id, name: user.username } : { type: "anonymous", name: actorName ?? "" };
  if (t) details = { ...details, token: { id: t.id, name: t.name } };
  return audit(sql, {
    actor,
    ip: req.ip,
    userAgent: req.userAgent,
    category,
    action,
    target,
    success,
    details: req.reauth ? { ...details, dangerous: true, confirmed: true, reauth: req.reauth } : details,
  });
}
