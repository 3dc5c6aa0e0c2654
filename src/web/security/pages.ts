/**
 * Security in the console: the fleet posture page (/security: hosts by score, pass rates per
 * control, violations with acknowledge, export links, auto-remediation settings) and the
 * security section of a host page (/hosts/:id/security, lazy-loaded: score and trend, CIS
 * results with remediation, rollback, FIM events and status, incident timeline).
 * Actions post to the security API (./routes.ts). Every read is scoped: the fleet page by
 * `req.scope` (compliance.view), the host section by the host the guard found within it, and
 * each extra panel (FIM, incidents, remediation) by its own permission's scope for that host.
 */
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can, scopeFor } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import type { Pages } from "../respond.ts";
import { TAG_RE } from "../../auth/roles.ts";
import { controlPassRates, hostResults, listAutoRemediation, listViolations } from "../../security/posture.ts";
import { currentScore, latestScores, scoreTrend } from "../../security/score.ts";
import { hostIncidents } from "../../security/incidents.ts";
import { latestFimStatus, recentFimEvents } from "../../security/fim.ts";
import { appliedRemediations } from "../../security/issue.ts";
import { controlInfo } from "../../security/catalog.ts";
import {
  autoRemediationModel, categoriesModel, cisResultsModel, fimEventsModel, fimStatusModel, incidentsModel, isoSecond,
  passRateModel, rollbacksModel, scoreLevel, scoreModel, violationModel,
} from "../../security/views.ts";
import { createSecurityViews } from "./views.ts";
import type { ScopedHost } from "../../store/postgres/queries-console.ts";

const DAY = 86_400_000;

/** The violations filter: open (default) or all, and one host or every host. */
export function parseViolationFilter(q: URLSearchParams): { state: "open" | "all"; host: number | undefined } {
  const host = Number(q.get("host") ?? "");
  return { state: q.get("state") === "all" ? "all" : "open", host: Number.isSafeInteger(host) && host > 0 ? host : undefined };
}

/** Auto-remediation settings are shown for the groups inside the policy permission's scope. */
function autoScope(req: ConsoleRequest) {
  return scopeFor(req, can(req, "compliance.policies.edit") ? "compliance.policies.edit" : "compliance.policies.view");
}

/**
 * The parts of a host's security section that a remediation or rollback changes: rendered by the
 * section itself and, out of band, by the answer to an applied remediation or rollback.
 */
export function hostSecurityFragments(s: ConsoleServices, pages: Pages) {
  const { sql } = s;
  const views = createSecurityViews(s.views);
  return {
    async scoreCard(a: ScopedHost, oob = false, now = Date.now()) {
      const [score, trend] = await Promise.all([currentScore(sql, a, now), scoreTrend(sql, a, new Date(now - 30 * DAY))]);
      const points = trend.map((r) => [new Date(r.ts).getTime(), Number(r.score)] as [number, number]);
      return pages.render("partials/security-score", { ...scoreModel(a.id, score, views.scoreChart(points, now - 30 * DAY, now)), oob });
    },
    async cis(req: ConsoleRequest, a: ScopedHost, oob = false) {
      const canRemediate = can(req, "compliance.remediate", a);
      return pages.render("partials/security-cis-results", { ...cisResultsModel(await hostResults(sql, a), { agentId: a.id, canRemediate, csrf: req.csrf }), oob });
    },
    async rollbacks(req: ConsoleRequest, a: ScopedHost, oob = false) {
      const rows = await appliedRemediations(sql, a);
      return pages.render("partials/security-rollbacks", { rollbacks: rollbacksModel(rows, { agentId: a.id, hostname: a.hostname, canRollback: true, csrf: req.csrf }), oob });
    },
  };
}

export function securityPageRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const views = createSecurityViews(s.views);
  const fragments = hostSecurityFragments(s, pages);

  async function violations(req: ConsoleRequest, hosts: Array<{ agent_id: number; hostname: string }>) {
    const f = parseViolationFilter(req.query);
    const rows = await listViolations(sql, req.scope, { open: f.state === "open" ? true : undefined, agentId: f.host, limit: 500 });
    return {
      state: f.state,
      states: [{ v: "open", l: "Open" }, { v: "all", l: "All (with resolved)" }].map((o) => ({ ...o, selected: o.v === f.state })),
      hostOptions: hosts.map((h) => ({ id: h.agent_id, hostname: h.hostname, selected: h.agent_id === f.host })),
      violations: rows.map((v) => violationModel(v, { canAck: can(req, "compliance.exceptions.edit", { tags: v.tags }), csrf: req.csrf })),
      count: rows.length,
    };
  }

  return [
    {
      method: "GET", path: "/security", access: "compliance.view", hostData: "fleet",
      async handler(req) {
        const scope = req.scope;
        const hosts = await latestScores(sql, scope);
        const v = await violations(req, hosts);
        if (req.htmx.request && req.htmx.target === "security-violations") return pages.partial("partials/security-violations", v);
        const seeAuto = can(req, "compliance.policies.view") || can(req, "compliance.policies.edit");
        return pages.page(req, "pages/security", "Security", {
          ...v,
          hosts: hosts.map((h) => {
            const categories = categoriesModel(h.breakdown);
            return {
              agentId: h.agent_id, hostname: h.hostname, scored: h.score !== null, score: h.score ?? "–", level: scoreLevel(h.score),
              at: isoSecond(h.ts), categories, hover: categories.map((c) => `${c.name} ${c.score}`).join(" · "),
            };
          }),
          controls: passRateModel(await controlPassRates(sql, scope)),
          canExport: can(req, "compliance.reports.export"),
          seeAuto,
          autoHtml: seeAuto ? pages.render("partials/security-auto-remediation", autoRemediationModel(await listAutoRemediation(sql, autoScope(req)), { canEdit: can(req, "compliance.policies.edit"), csrf: req.csrf })) : "",
        });
      },
    },
    {
      // Step two of changing an auto-remediation setting: the typed confirmation for exactly it.
      method: "GET", path: "/security/auto-remediation/confirm", access: "compliance.policies.edit", hostData: "fleet",
      async handler(req) {
        const control = (req.query.get("control") ?? "").trim();
        const hostGroup = (req.query.get("hostGroup") ?? "").trim();
        const enabled = req.query.get("enabled") === "true";
        const info = controlInfo(control);
        const problems: string[] = [];
        if (!info) problems.push(`${control ? `"${control.slice(0, 128)}"` : "An empty id"} is not a known control.`);
        else if (!info.automatic) problems.push(`${control} cannot be fixed automatically (its remediation is manual).`);
        if (hostGroup !== "*" && !TAG_RE.test(hostGroup)) problems.push("Host group is * (every host) or a host tag such as group:web or env=prod.");
        if (problems.length) return pages.formErrors(req, problems);
        // a host group outside the scope answers like a host that does not exist
        if (!req.scope.coversGroup(hostGroup)) return pages.notFound(req, `Host group ${hostGroup}`);
        return pages.partial("partials/security-auto-remediation-confirm", {
          control, title: info!.title, hostGroup, enabled: String(enabled), on: enabled,
          phrase: `auto-remediate ${control}`, csrf: req.csrf,
        });
      },
    },
    {
      method: "GET", path: "/hosts/:id/security", access: "compliance.view", hostData: "host",
      async handler(req) {
        const a = req.host!;
        const now = Date.now();
        const canFim = can(req, "fim.view", a);
        const canIncidents = can(req, "security.events.view", a);
        const canRemediate = can(req, "compliance.remediate", a);
        const [scoreCard, cis, rollbacksHtml, fim, fimStatus, incidents] = await Promise.all([
          fragments.scoreCard(a, false, now),
          fragments.cis(req, a),
          canRemediate ? fragments.rollbacks(req, a) : "",
          canFim ? recentFimEvents(sql, a, new Date(now - 7 * DAY), { limit: 100 }) : [],
          canFim ? latestFimStatus(sql, a) : null,
          canIncidents ? hostIncidents(sql, a, { fromMs: now - 7 * DAY, toMs: now, thresholds: s.security?.thresholds ?? s.config.incidentThresholds }) : [],
        ]);
        return pages.partial("partials/host-security", {
          id: a.id, hostname: a.hostname, csrf: req.csrf, scoreCard, cis, rollbacksHtml,
          canScan: can(req, "compliance.scan", a),
          canRemediate,
          canFim, fim: fimEventsModel(fim), fimStatus: fimStatusModel(fimStatus),
          canIncidents, incidents: canIncidents ? pages.render("partials/security-incidents", incidentsModel(a.id, incidents)) : "",
        });
      },
    },
  ];
}
