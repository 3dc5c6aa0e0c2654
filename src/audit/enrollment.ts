/**
 * Audit records for agent enrollment (POST /api/v1/enroll): who presented which activation
 * token, from where, and what came of it. Called by the ingest enrollment route; never records
 * the token itself, only the id of the token it matched (when it matched one).
 */
import type { Sql } from "postgres";
import { audit } from "./audit.ts";
import { clientIp } from "../http/client-ip.ts";

export interface EnrollOutcome {
  hostname?: string;
  agentId?: number;
  tokenId?: number;
  /** The refusal code (bad_token, key_in_use, bad_request, ...), when refused. */
  error?: string;
}

export async function auditEnrollment(sql: Sql, req: Request, o: EnrollOutcome): Promise<void> {
  await audit(sql, {
    actor: o.agentId ? { type: "agent", id: o.agentId, name: o.hostname ?? "" } : { type: "anonymous", name: o.hostname ?? "" },
    ip: clientIp(req),
    userAgent: req.headers.get("user-agent") ?? "",
    category: "security_event",
    action: "agents.enroll",
    target: o.agentId ? `agent ${o.agentId}` : "",
    success: !o.error,
    details: { ...(o.tokenId ? { token: o.tokenId } : {}), ...(o.error ? { error: o.error } : {}) },
  });
}
