/**
 * Security in the console: the fleet posture page (/security: hosts by score, pass rates per
 * control, violations with acknowledge, export links, auto-remediation settings) and the
 * security section of a host page (/hosts/:id/security, lazy-loaded: score and trend, CIS
 * results with remediation, rollback, FIM events and status, incident timeline).
 * Actions post to the security routes (src/security/routes.ts, mounted by ./routes.ts).
 */
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import type { Pages } from "../respond.ts";
import { agentDetail } from "../../store/postgres/queries-console.ts";
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

const DAY = 86_400_000;

/** The violations filter: open (default) or all, and one host or every host. */
export function parseViolationFilter(q: URLSearchParams): { state: "open" | "all"; host: number | undefined } {
  const host = Number(q.get("host") ?? "");
  return { state: q.get("state") === "all" ? "all" : "open", host: Number.isSafeInteger(host) && host > 0 ? host : undefined };
}

export function securityPageRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const views = createSecurityViews(s.views);

  async function violations(req: ConsoleRequest, hosts: Array<{ agent_id: number; hostname: string }>) {
    const f = parseViolationFilter(req.query);
    const rows = await listViolations(sql, { open: f.state === "open" ? true : undefined, agentId: f.host, scopeTags: req.grants!.scopeTags, limit: 500 });
    const canAck = can(req, "compliance.exceptions.edit");
    return {
      state: f.state,
      states: [{ v: "open", l: "Open" }, { v: "all", l: "All (with resolved)" }].map((o) => ({ ...o, selected: o.v === f.state })),
      hostOptions: hosts.map((h) => ({ id: h.agent_id, hostname: h.hostname, selected: h.agent_id === f.host })),
      violations: rows.map((v) => violationModel(v, { canAck, csrf: req.csrf })),
      count: rows.length,
    };
  }

  return [
    {
      method: "GET", path: "/security", access: "compliance.view",
      async handler(req) {
        const scope = req.grants!.scopeTags;
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
          autoHtml: seeAuto ? pages.render("partials/security-auto-remediation", autoRemediationModel(await listAutoRemediation(sql), { canEdit: can(req, "compliance.policies.edit"), csrf: req.csrf })) : "",
        });
      },
    },
    {
      // Step two of changing an auto-remediation setting: the typed confirmation for exactly it.
      method: "GET", path: "/security/auto-remediation/confirm", access: "compliance.policies.edit",
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
        return pages.partial("partials/security-auto-remediation-confirm", {
          control, title: info!.title, hostGroup, enabled: String(enabled), on: enabled,
          phrase: `auto-remediate ${control}`, csrf: req.csrf,
        });
      },
    },
    {
      method: "GET", path: "/hosts/:id/security", access: "compliance.view",
      async handler(req) {
        const id = Number(req.params.id);
        const a = Number.isSafeInteger(id) && id > 0 ? await agentDetail(sql, id, req.grants!.scopeTags) : undefined;
        if (!a) return pages.notFound(req, `Host ${req.params.id}`);
        const now = Date.now();
        const [score, trend, results] = await Promise.all([currentScore(sql, a.id, now), scoreTrend(sql, a.id, new Date(now - 30 * DAY)), hostResults(sql, a.id)]);
        const points = trend.map((r) => [new Date(r.ts).getTime(), Number(r.score)] as [number, number]);
        const canFim = can(req, "fim.view");
        const canIncidents = can(req, "security.events.view");
        const canRemediate = can(req, "compliance.remediate");
        const [fim, fimStatus, incidents, rollbacks] = await Promise.all([
          canFim ? recentFimEvents(sql, a.id, new Date(now - 7 * DAY), { limit: 100 }) : [],
          canFim ? latestFimStatus(sql, a.id) : null,
          canIncidents ? hostIncidents(sql, a.id, { fromMs: now - 7 * DAY, toMs: now }) : [],
          canRemediate ? appliedRemediations(sql, a.id) : [],
        ]);
        return pages.partial("partials/host-security", {
          id: a.id, hostname: a.hostname, csrf: req.csrf,
          scoreCard: pages.render("partials/security-score", scoreModel(a.id, score, views.scoreChart(points, now - 30 * DAY, now))),
          cis: pages.render("partials/security-cis-results", cisResultsModel(results, { agentId: a.id, canRemediate, csrf: req.csrf })),
          canScan: can(req, "compliance.scan"),
          canRemediate,
          rollbacks: rollbacksModel(rollbacks, { agentId: a.id, hostname: a.hostname, canRollback: canRemediate, csrf: req.csrf }),
          canFim, fim: fimEventsModel(fim), fimStatus: fimStatusModel(fimStatus),
          canIncidents, incidents: canIncidents ? pages.render("partials/security-incidents", incidentsModel(a.id, incidents)) : "",
        });
      },
    },
  ];
}
