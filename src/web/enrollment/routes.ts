/**
 * Agent enrollment: activation tokens (created here, shown once, stored as SHA-256), agent
 * downloads with their SHA-256 checksums and the install one-liner; revoking enrolled agents.
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { createActivationToken } from "../../ingest/agent/enroll.ts";
import { listActivationTokens, revokeActivationToken, revokeAgent, fleetOverview } from "../../store/postgres/queries-console.ts";
import { auditRequest } from "../audit-request.ts";
import { isoMinute, ago } from "../format.ts";
import { installCommand } from "../../downloads/install-script.ts";
import { distStatus, type TargetStatus } from "../../downloads/agent-builds.ts";
import { agentBinaryName } from "../../downloads/targets.ts";

/** What a target's row says when it has no binary yet (only a ready binary is a link). */
function stateNote(t: TargetStatus): string {
  if (t.state === "queued") return "queued: built after the targets above";
  if (t.state === "building") return "building now…";
  if (t.state === "failed") return `build failed: ${t.error ?? ""}`;
  return t.state === "missing" ? `not built on this server (npm run build:agent -- --target ${t.target})` : "";
}

export function enrollmentRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const installLine = (token: string) =>
    installCommand({ serverUrl: s.config.publicUrl, pubkeyPin: s.serverPubkeyPin ?? "", fingerprint: s.serverFingerprint, token });
  function downloads() {
    const status = s.agentBuilds?.status() ?? distStatus(s.agentDistDir ?? "dist/agent");
    const rows = status.map((t) => ({
      target: t.target, file: agentBinaryName(t.target), ready: t.state === "ready", href: `/api/v1/agent/download/${t.target}`, sha256: t.sha256 ?? "", state: t.state,
      note: stateNote(t),
    }));
    return { downloads: rows, haveSums: rows.some((r) => r.ready), building: rows.some((r) => r.state === "queued" || r.state === "building") };
  }

  async function tokenRows(req: ConsoleRequest) {
    return (await listActivationTokens(sql, req.scope)).map((t) => {
      const expired = new Date(t.expires_at).getTime() < Date.now();
      const state = t.revoked_at ? "revoked" : t.used_at ? "used" : expired ? "expired" : "active";
      return { ...t, state, created: isoMinute(t.created_at), expires: isoMinute(t.expires_at), usedBy: t.used_by_hostname ?? "", canRevoke: state === "active" && can(req, "agents.tokens.revoke") };
    });
  }
  return [
    {
      method: "GET", path: "/enrollment", access: "agents.enroll", hostData: "fleet",
      async handler(req) {
        const tokens = await tokenRows(req);
        const agents = (await fleetOverview(sql, req.scope, { sort: "hostname" })).map((a) => ({
          id: a.id, hostname: a.hostname, version: a.agent_version, lastSeen: ago(a.last_seen), revoked: Boolean(a.revoked_at),
        }));
        return pages.page(req, "pages/enrollment", "Enrollment", {
          tokens,
          agents,
          fingerprint: s.serverFingerprint,
          pin: s.serverPubkeyPin ?? "",
          publicUrl: s.config.publicUrl,
          example: installLine("TOKEN"),
          ...downloads(),
        });
      },
    },
    {
      // the downloads card alone: it polls itself while binaries are being built
      method: "GET", path: "/enrollment/downloads", access: "agents.enroll",
      async handler() {
        return pages.partial("partials/enrollment-downloads", downloads());
      },
    },
    {
      method: "POST", path: "/enrollment/tokens", access: "agents.enroll", hostData: "fleet",
      async handler(req) {
        const label = (req.form.get("label") ?? "").trim();
        const hours = Number(req.form.get("hours") ?? "24");
        const problems: string[] = [];
        if (label.length > 100) problems.push(`The label has ${label.length} characters; at most 100.`);
        if (!Number.isInteger(hours) || hours < 1 || hours > 720) problems.push("Validity must be a whole number of hours from 1 to 720.");
        if (problems.length) return pages.formErrors(req, problems);
        // one definition of the token format and hashing: the ingest enrollment module's
        const { id, token, expiresAt: expires } = await createActivationToken(sql, { label, createdBy: req.user!.username, ttlHours: hours });
        await auditRequest(sql, req, "config_change", "agents.token.create", `token ${id}`, true, { label, expires: expires.toISOString() });
        // the token list is refreshed out of band, next to the one-time display of the token
        const tokensCard = pages.render("partials/enrollment-tokens", { tokens: await tokenRows(req), csrf: req.csrf, oob: true });
        return pages.partial("partials/token-created", { token, label, expires: isoMinute(expires), install: installLine(token), tokensCard });
      },
    },
    {
      method: "POST", path: "/enrollment/tokens/:id/revoke", access: "agents.tokens.revoke",
      async handler(req) {
        const id = Number(req.params.id);
        if (!Number.isSafeInteger(id)) return pages.notFound(req, "That token");
        const ok = await revokeActivationToken(sql, id);
        await auditRequest(sql, req, "config_change", "agents.token.revoke", `token ${id}`, ok);
        if (!ok) return pages.formErrors(req, ["That token is already used, revoked or does not exist."], 409);
        return done(req, "/enrollment");
      },
    },
    {
      method: "POST", path: "/agents/:id/revoke", access: "agents.revoke", hostData: "host",
      dangerous: { phrase: (req) => req.host!.hostname },
      async handler(req) {
        const a = req.host!;
        const ok = await revokeAgent(sql, a);
        await auditRequest(sql, req, "security_event", "agents.revoke", `${a.hostname} (agent ${a.id})`, ok);
        return done(req, `/hosts/${a.id}`);
      },
    },
  ];
}

