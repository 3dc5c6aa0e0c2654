/**
 * The security feature's API (/api/security/*): ordinary console routes through the one guard,
 * so session, permission, host scope, CSRF and the dangerous-operation checks (typed
 * confirmation + fresh re-authentication) apply to them like to every console page. Routes that
 * name a host (or a violation) get it from the guard, found within the scope of their
 * permission; fleet-wide reads pass `req.scope` to the model. No SQL here: the models in
 * src/security/ and src/store/postgres/queries-console.ts own the tables.
 *
 * Responses are JSON, or an HTML partial when the request comes from htmx (HX-Request: true).
 * Request bodies are forms (htmx, plain posts) or a JSON object (API clients). Remediation,
 * rollback and scans become commands signed with the server's command key and handed to
 * `security.dispatch`; their audit records carry the request's IP and user agent.
 */
import type { ConsoleServices, SecurityCommandDeps } from "../deps.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import { html, json, securityHeaders, type Pages } from "../respond.ts";
import { auditRequest } from "../audit-request.ts";
import { commandHost, knownSnapshot, type CommandDeps, type Requester } from "../../security/issue.ts";
import { acknowledgeViolation, controlPassRates, exportPosture, hostResults, listAutoRemediation, listViolations, recordVerdicts, setAutoRemediation, violationRow } from "../../security/posture.ts";
import { latestScores, scoreHost, scoreTrend } from "../../security/score.ts";
import { hostIncidents } from "../../security/incidents.ts";
import { recentFimEvents } from "../../security/fim.ts";
import { autoRemediationModel, incidentsModel, passRateModel, remediationModel, scoreModel, violationModel } from "../../security/views.ts";
import { createSecurityViews } from "./views.ts";
import { hostSecurityFragments } from "./pages.ts";
import type { ScopedHost } from "../../store/postgres/queries-console.ts";


/** A millisecond timestamp from the query string, or the default when absent or not a number. */
function msParam(q: URLSearchParams, name: string, def: number): number {
  const v = q.get(name);
  const n = v === null || v === "" ? NaN : Number(v);
  return Number.isFinite(n) ? n : def;
}

/** Control ids from a form: repeated fields (checkboxes) and/or comma lists. */
export function controlList(form: URLSearchParams): string[] {
  return form.getAll("controls").flatMap((c) => c.split(",")).map((c) => c.trim()).filter(Boolean);
}

/** The phrase a user types to confirm: "<verb> <hostname>", e.g. "remediate web-1". */
const confirmPhrase = (verb: string) => ({
  phrase(req: ConsoleRequest) {
    if (verb === "remediate" && req.form.get("dryRun") !== "false") return null; // a dry run changes nothing
    return `${verb} ${req.host!.hostname}`;
  },
});

export function securityApiRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const views = createSecurityViews(s.views);
  const fragments = hostSecurityFragments(s, pages);
  const now = () => s.security?.now?.() ?? Date.now();

  /** An error: JSON for API clients, the form-errors fragment for htmx. */
  const fail = (req: ConsoleRequest, status: number, code: string, message: string) =>
    req.htmx.request ? pages.formErrors(req, [message], status) : json({ error: { code, message } }, status);

  /** The requester and the per-request audit (IP, user agent) for a command. */
  function commandDeps(req: ConsoleRequest, channel: SecurityCommandDeps): CommandDeps {
    return {
      sql, commandKey: channel.commandKey, dispatch: channel.dispatch, now: channel.now,
      audit: (e) => auditRequest(sql, req, e.category, e.action, e.target, e.success, e.details ?? {}).then(() => {}),
    };
  }
  const requester = (req: ConsoleRequest): Requester => ({ type: "user", id: req.user!.id, name: req.user!.username });

  async function command(req: ConsoleRequest, host: ScopedHost, action: string, args: Record<string, unknown>) {
    if (!s.security) return null;
    return commandHost(commandDeps(req, s.security), requester(req), host, action, args);
  }
  const noChannel = (req: ConsoleRequest) => fail(req, 503, "unavailable", "no command channel to agents is set up on this server");
  /** Scans and remediation act on live hosts only: a revoked one answers like a missing one. */
  const live = (req: ConsoleRequest) => (req.host!.revoked_at ? fail(req, 404, "not_found", "no such host") : null);

  return [
    {
      method: "GET", path: "/api/security/hosts/:id/score", access: "compliance.view", hostData: "host",
      async handler(req) {
        const host = req.host!;
        const gone = live(req);
        if (gone) return gone;
        const score = await scoreHost(sql, host, s.security?.now?.());
        return req.htmx.request ? pages.partial("partials/security-score", scoreModel(host.id, score)) : json(score);
      },
    },
    {
      method: "GET", path: "/api/security/scores", access: "compliance.view", hostData: "fleet",
      async handler(req) {
        const rows = await latestScores(sql, req.scope);
        return json({ hosts: rows.map(({ breakdown, ...r }) => ({ ...r, unknown: breakdown?.unknown ?? null })) });
      },
    },
    {
      method: "GET", path: "/api/security/hosts/:id/score/trend", access: "compliance.view", hostData: "host",
      async handler(req) {
        const host = req.host!;
        const days = Math.min(365, Math.max(1, msParam(req.query, "days", 30)));
        const to = now();
        const rows = await scoreTrend(sql, host, new Date(to - days * 86_400_000));
        const points = rows.map((r) => [new Date(r.ts).getTime(), Number(r.score)] as [number, number]);
        if (!req.htmx.request) return json({ points });
        return pages.partial("partials/security-score-trend", {
          agentId: host.id, days, chart: views.scoreChart(points, to - days * 86_400_000, to), hasPoints: points.length > 0,
          latest: points.length ? points[points.length - 1]![1] : null,
        });
      },
    },
    {
      method: "GET", path: "/api/security/hosts/:id/cis", access: "compliance.view", hostData: "host",
      async handler(req) {
        return json({ results: await hostResults(sql, req.host!) });
      },
    },
    {
      method: "GET", path: "/api/security/posture/controls", access: "compliance.view", hostData: "fleet",
      async handler(req) {
        const rows = await controlPassRates(sql, req.scope);
        return req.htmx.request ? pages.partial("partials/security-pass-rates", { controls: passRateModel(rows) }) : json({ controls: rows });
      },
    },
    {
      method: "GET", path: "/api/security/posture/violations", access: "compliance.view", hostData: "fleet",
      async handler(req) {
        const agent = Number(req.query.get("agent") ?? "");
        const agentId = req.query.get("agent") && Number.isSafeInteger(agent) ? agent : undefined;
        const open = req.query.get("open") === null ? undefined : req.query.get("open") === "true";
        const rows = await listViolations(sql, req.scope, { agentId, open });
        if (!req.htmx.request) return json({ violations: rows });
        return pages.partial("partials/security-violation-rows", {
          violations: rows.map((v) => violationModel(v, { canAck: can(req, "compliance.exceptions.edit", { tags: v.tags }), csrf: req.csrf })),
        });
      },
    },
    {
      method: "POST", path: "/api/security/posture/violations/:id/ack", access: "compliance.exceptions.edit", hostData: "violation",
      async handler(req) {
        const v = req.violation!;
        const note = req.form.get("note") ?? "";
        const ok = await acknowledgeViolation(sql, v, `${req.user!.username} (${req.user!.id})`, note);
        await auditRequest(sql, req, "security_event", "cis.violation.acknowledge", `violation:${v.id}`, ok, { note });
        if (!ok) return fail(req, 409, "conflict", "this violation is already acknowledged");
        const row = await violationRow(sql, v);
        return req.htmx.request ? pages.partial("partials/security-violation-row", violationModel(row, { canAck: false })) : json({ violation: row });
      },
    },
    {
      method: "GET", path: "/api/security/posture/export", access: "compliance.reports.export", hostData: "fleet",
      async handler(req) {
        const format = req.query.get("format") === "json" ? "json" : "csv";
        const body = await exportPosture(sql, req.scope, format);
        await auditRequest(sql, req, "security_event", "cis.export", "posture", true, { format, scope: req.scope.tags ?? "all hosts" });
        return new Response(body, {
          headers: securityHeaders(new Headers({
            "content-type": format === "json" ? "application/json" : "text/csv; charset=utf-8",
            "content-disposition": `attachment; filename="compliance-posture.${format}"`,
          })),
        });
      },
    },
    {
      method: "GET", path: "/api/security/hosts/:id/fim", access: "fim.view", hostData: "host",
      async handler(req) {
        const since = new Date(msParam(req.query, "since", now() - 86_400_000));
        return json({ events: await recentFimEvents(sql, req.host!, since, { withStatus: true }) });
      },
    },
    {
      method: "GET", path: "/api/security/hosts/:id/incidents", access: "security.events.view", hostData: "host",
      async handler(req) {
        const host = req.host!;
        const to = msParam(req.query, "to", now());
        const from = Math.max(msParam(req.query, "from", to - 7 * 86_400_000), to - 90 * 86_400_000); // at most 90 days
        const incidents = await hostIncidents(sql, host, { fromMs: from, toMs: to, thresholds: s.security?.thresholds ?? s.config.incidentThresholds });
        return req.htmx.request ? pages.partial("partials/security-incidents", incidentsModel(host.id, incidents)) : json({ incidents });
      },
    },
    {
      method: "POST", path: "/api/security/hosts/:id/scan", access: "compliance.scan", hostData: "host",
      async handler(req) {
        const host = req.host!;
        const gone = live(req);
        if (gone) return gone;
        const done = await command(req, host, "cis.scan", {});
        if (!done) return noChannel(req);
        const { cmd, result } = done;
        if (req.htmx.request) return pages.partial("partials/security-scan", { agentId: host.id, ok: !!(result as any)?.ok, error: (result as any)?.error ?? "" });
        return json({ command: cmd.id, result });
      },
    },
    {
      method: "POST", path: "/api/security/hosts/:id/remediate", access: "compliance.remediate", hostData: "host",
      dangerous: confirmPhrase("remediate"),
      async handler(req) {
        const host = req.host!;
        const gone = live(req);
        if (gone) return gone;
        const controls = controlList(req.form);
        if (!controls.length || controls.length > 200 || !controls.every((c) => /^[a-z0-9._-]{1,128}$/.test(c))) {
          return fail(req, 400, "bad_request", "controls must be a list of 1-200 control ids");
        }
        const done = await command(req, host, "cis.remediate", { controls, dryRun: req.form.get("dryRun") !== "false" });
        if (!done) return noChannel(req);
        const { cmd, result } = done;
        const changed = await afterChange(req, host, result, "re-checked by Control after the remediation");
        if (!req.htmx.request) return json({ command: cmd.id, result }, (result as any)?.ok ? 200 : 502);
        const model = remediationModel(result, { agentId: host.id, hostname: host.hostname, controls, csrf: req.csrf, canApply: true });
        // the confirmation form posts into its own .form-result; the outcome replaces the whole result
        return remediationHtml(model, changed);
      },
    },
    {
      method: "POST", path: "/api/security/hosts/:id/rollback", access: "compliance.remediate", hostData: "host",
      dangerous: confirmPhrase("rollback"),
      async handler(req) {
        const host = req.host!;
        const snapshot = req.form.get("snapshot");
        if (snapshot === null) return fail(req, 400, "bad_request", "snapshot is required");
        if (!(await knownSnapshot(sql, host, snapshot))) return fail(req, 404, "not_found", "no remediation with that snapshot on this host");
        const done = await command(req, host, "cis.rollback", { snapshot });
        if (!done) return noChannel(req);
        const { cmd, result } = done;
        const changed = await afterChange(req, host, result, "re-checked by Control after the rollback");
        if (!req.htmx.request) return json({ command: cmd.id, result }, (result as any)?.ok ? 200 : 502);
        return remediationHtml(remediationModel(result, { agentId: host.id }), changed);
      },
    },
    {
      method: "POST", path: "/api/security/auto-remediation", access: "compliance.policies.edit", hostData: "fleet",
      dangerous: { phrase: (req) => (req.scope.coversGroup((req.form.get("hostGroup") ?? "").trim()) ? `auto-remediate ${req.form.get("control") ?? ""}` : null) },
      async handler(req) {
        const control = req.form.get("control");
        const hostGroup = req.form.get("hostGroup")?.trim();
        const enabled = req.form.get("enabled");
        if (control === null || !hostGroup || (enabled !== "true" && enabled !== "false")) return fail(req, 400, "bad_request", "control, hostGroup and enabled are required");
        // a host group outside the scope answers like a host that does not exist
        if (!(await setAutoRemediation(sql, req.scope, control, hostGroup, enabled === "true", `${req.user!.username} (${req.user!.id})`))) {
          return fail(req, 404, "not_found", "no such host group");
        }
        await auditRequest(sql, req, "security_event", "cis.auto-remediation.set", `control:${control}`, true, { hostGroup, enabled: enabled === "true" });
        if (!req.htmx.request) return json({ ok: true });
        const model = autoRemediationModel(await listAutoRemediation(sql, req.scope), { canEdit: true, csrf: req.csrf });
        return pages.partial("partials/security-auto-remediation", model, 200, { "hx-retarget": "#auto-remediation", "hx-reswap": "outerHTML" });
      },
    },
  ];

  /**
   * After Control changed the host (an applied remediation or a rollback that succeeded): its
   * re-checked verdicts become the host's CIS results and the score is recomputed now, not at the
   * next scan and the 15-minute score job. Returns the refreshed parts of the host page (CIS
   * table, score card, applied remediations) as out-of-band swaps, or "" when nothing changed.
   */
  async function afterChange(req: ConsoleRequest, host: ScopedHost, result: unknown, note: string): Promise<string> {
    const r = result as { ok?: boolean; dryRun?: boolean; verdicts?: Record<string, unknown> } | null;
    if (!r?.ok || r.dryRun) return "";
    await recordVerdicts(sql, host, r.verdicts ?? {}, new Date(now()), note);
    await scoreHost(sql, host, now());
    if (!req.htmx.request) return "";
    const parts = await Promise.all([fragments.cis(req, host, true), fragments.scoreCard(host, true, now()), fragments.rollbacks(req, host, true)]);
    return parts.map(String).join("\n");
  }

  /** A remediation or rollback outcome replaces the whole result area, whichever form posted it. */
  function remediationHtml(model: object, oob = "") {
    return html(String(pages.render("partials/security-remediation", model)) + oob, 200, { "hx-retarget": "#remediation-result", "hx-reswap": "outerHTML" });
  }
}
