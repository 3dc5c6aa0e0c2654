/**
 * The approval queue of AI-initiated operations in the console (/ai/approvals): what AI clients
 * asked for over MCP (src/mcp/tools.ts), with their stated reason, tool, arguments and host.
 *
 * Access: ai.assistant.act, over the hosts that permission's scope covers (a request on another
 * host is not shown, and answers 404). Approving is dangerous (typed `approve request N` and a
 * fresh re-authentication); it also needs the operation's own permission on the host, and the
 * operation then runs only if the requesting token still may do it too (src/mcp/approvals.ts
 * runApproved: within BOTH). Rejecting needs no confirmation. Every decision is audited as
 * `ai_operation` with the client, tool, arguments, the deciding person and the outcome.
 */
import type { ConsoleServices } from "../deps.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can, scopeFor } from "../route.ts";
import type { Pages } from "../respond.ts";
import { auditRequest } from "../audit-request.ts";
import { ACT_PERMISSION } from "../../mcp/tools.ts";
import { claimDecision, findApproval, listApprovals, recordOutcome, runApproved, type Approval } from "../../mcp/approvals.ts";

const time = (d: Date | null) => (d ? new Date(d).toISOString().replace("T", " ").slice(0, 19) : "");

export function aiRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const approvalOf = (req: ConsoleRequest) => findApproval(sql, scopeFor(req, ACT_PERMISSION), Number(req.params.id));

  function row(a: Approval) {
    return {
      ...a, pending: a.status === "pending", requested: time(a.requested_at), decided: time(a.decided_at),
      argsJson: JSON.stringify(a.args, null, 1), resultJson: a.result ? JSON.stringify(a.result, null, 1) : "",
      phrase: `approve request ${a.id}`, ok: a.outcome === "ok",
      target: a.tool === "service_action_group" ? `${String(a.args.group)} (${Array.isArray(a.args.hosts) ? a.args.hosts.length : 0} hosts)` : a.hostname,
    };
  }

  async function list(req: ConsoleRequest, notice = "", problem = "", status = 200) {
    const rows = await listApprovals(sql, scopeFor(req, ACT_PERMISSION));
    const pending = rows.filter((r) => r.status === "pending").map(row);
    const decided = rows.filter((r) => r.status !== "pending").map(row);
    return pages.page(req, "pages/ai-approvals", "AI approvals", { pending, decided, notice, problem }, status);
  }

  const details = (a: Approval) => ({ client: { name: a.client_name, version: a.client_version }, tool: a.tool, arguments: a.args, host: a.hostname, agentId: a.agent_id, reason: a.reason, request: a.id, requester: { token: a.token_id, user: a.username } });

  return [
    {
      method: "GET", path: "/ai/approvals", access: ACT_PERMISSION, hostData: "fleet",
      handler: (req) => list(req),
    },
    {
      method: "POST", path: "/ai/approvals/:id/approve", access: ACT_PERMISSION, hostData: "fleet",
      dangerous: {
        // a request that is not there (or not pending) needs no confirmation: the handler refuses it
        async phrase(req) {
          const a = await approvalOf(req);
          return a && a.status === "pending" ? `approve request ${a.id}` : null;
        },
      },
      async handler(req) {
        const a = await approvalOf(req);
        if (!a) return pages.notFound(req, `AI request ${req.params.id}`);
        if (a.status !== "pending") return list(req, "", `Request ${a.id} was already ${a.status}.`, 409);
        const grants = req.grants!;
        if (!can(req, a.permission, { tags: a.tags })) {
          await auditRequest(sql, req, "ai_operation", "ai.approve", `agent:${a.agent_id}`, false, { ...details(a), outcome: "refused", error: `approver lacks ${a.permission}` });
          return list(req, "", `Approving this needs the ${a.permission} permission on ${a.hostname}, which you do not hold.`, 403);
        }
        if (!s.security) return list(req, "", "No command channel to agents is set up on this server.", 503);
        const claim = await claimDecision(sql, a.id, "approved", req.user!.username);
        if (!claim.ok) return list(req, "", `Request ${a.id} was already decided.`, 409);
        const deps = {
          sql, commandKey: s.security.commandKey, dispatch: s.security.dispatch, now: s.security.now,
          audit: (e: { action: string; target: string; success: boolean; details: Record<string, unknown> }) =>
            auditRequest(sql, req, "service_operation", e.action, e.target, e.success, { ...e.details, aiRequest: a.id }).then(() => {}),
        };
        const r = await runApproved(deps, a, { id: req.user!.id, username: req.user!.username, grants }, claim.payload);
        await recordOutcome(sql, a.id, r.outcome, r.result);
        await auditRequest(sql, req, "ai_operation", "ai.approve", `agent:${a.agent_id}`, r.ok, { ...details(a), approvedBy: req.user!.username, outcome: r.outcome, result: r.result });
        return r.ok ? list(req, `Request ${a.id} approved and run: ${r.outcome}.`) : list(req, "", `Request ${a.id} approved, but it did not succeed: ${String(r.result.error ?? r.outcome)}`);
      },
    },
    {
      method: "POST", path: "/ai/approvals/:id/reject", access: ACT_PERMISSION, hostData: "fleet",
      async handler(req) {
        const a = await approvalOf(req);
        if (!a) return pages.notFound(req, `AI request ${req.params.id}`);
        const claim = await claimDecision(sql, a.id, "rejected", req.user!.username);
        if (!claim.ok) return list(req, "", `Request ${a.id} was already decided.`, 409);
        const note = (req.form.get("note") ?? "").trim().slice(0, 1000);
        await recordOutcome(sql, a.id, "rejected", note ? { note } : {});
        await auditRequest(sql, req, "ai_operation", "ai.reject", `agent:${a.agent_id}`, true, { ...details(a), rejectedBy: req.user!.username, outcome: "rejected", ...(note ? { note } : {}) });
        return list(req, `Request ${a.id} rejected.`);
      },
    },
  ];
}
