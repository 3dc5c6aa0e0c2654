/**
 * The security feature's HTTP surface: one table of routes, each naming the permission it needs
 * (console RBAC ids from src/auth/permissions.ts on the console branch) and whether it is a
 * dangerous operation that needs a typed confirmation. `securityPlugin(deps)` mounts the table on
 * Elysia; handlers get a plain SecurityRequest, never Elysia's Context.
 *
 * Responses are JSON, or an HTML partial when the request comes from htmx (HX-Request: true),
 * rendered from views/partials/security-*.html through the injected `deps.views`.
 * Remediation, rollback and scans become commands signed with the server's command key
 * (src/ingest/frame/commands.ts) and handed to `deps.dispatch`, which delivers them to the agent.
 */
import { Elysia } from "elysia";
import { issueCommand, type CommandDeps } from "./issue.ts";
export type { SecurityAuditEvent } from "./issue.ts";
import { acknowledgeViolation, controlPassRates, exportPosture, hostResults, listAutoRemediation, listViolations, setAutoRemediation } from "./posture.ts";
import { latestScores, scoreHost, scoreTrend } from "./score.ts";
import { hostIncidents, type Threshold } from "./incidents.ts";
import { recentFimEvents } from "./fim.ts";
import { autoRemediationModel, incidentsModel, passRateModel, remediationModel, scoreModel, violationModel, type SecurityViews } from "./views.ts";
export type { SecurityViews } from "./views.ts";

export interface Principal {
  id: string | number;
  name: string;
  permissions: ReadonlySet<string>;
}

export interface SecurityDeps extends CommandDeps {
  /** Who is asking (session cookie, API token): the lead maps this onto the console's auth. */
  principal(req: Request): Promise<Principal | null>;
  thresholds?: Threshold[];
  /** The console's template engine and chart helper, for the htmx partials. */
  views: SecurityViews;
}

export interface SecurityRequest {
  url: URL;
  params: Record<string, string>;
  body: Record<string, unknown>;
  principal: Principal;
  htmx: boolean;
  /** The console's CSRF token, put into the forms of partials (absent outside the console). */
  csrf?: string;
}

export interface SecurityRoute {
  method: "GET" | "POST";
  path: string;
  permission: string;
  /** Dangerous: the body must carry `confirm` equal to the phrase; a dry run is exempt. */
  dangerous?: (req: SecurityRequest, deps: SecurityDeps) => Promise<string | null>;
  handler(req: SecurityRequest, deps: SecurityDeps): Promise<Response>;
}

const json = (v: unknown, status = 200) => new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json" } });
const html = (s: { toString(): string }, headers: Record<string, string> = {}) => new Response(String(s), { headers: { "content-type": "text/html; charset=utf-8", ...headers } });
const fail = (status: number, code: string, message: string) => json({ error: { code, message } }, status);
/** A remediation or rollback outcome replaces the whole result area, whichever form posted it. */
const remediationHtml = (deps: SecurityDeps, model: object) =>
  html(deps.views.render("partials/security-remediation", model), { "hx-retarget": "#remediation-result", "hx-reswap": "outerHTML" });

/** A millisecond timestamp from the query string, or the default when absent or not a number. */
function msParam(q: URLSearchParams, name: string, def: number): number {
  const v = q.get(name);
  const n = v === null || v === "" ? NaN : Number(v);
  return Number.isFinite(n) ? n : def;
}

function agentIdOf(req: SecurityRequest): number | null {
  const n = Number(req.params.id);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

const noSuchHost = () => fail(404, "not_found", "no such host");

/** The path's agent id when it names an enrolled, unrevoked host. */
async function knownHost(req: SecurityRequest, deps: SecurityDeps): Promise<number | null> {
  const id = agentIdOf(req);
  return id && (await hostname(deps, id)) ? id : null;
}

async function hostname(deps: SecurityDeps, id: number): Promise<string | null> {
  const r = await deps.sql`select hostname from agents where id = ${id} and revoked_at is null`;
  return r[0]?.hostname ?? null;
}

/** The phrase a user types to confirm: "<verb> <hostname>", e.g. "remediate web-1". */
const confirmPhrase = (verb: string) => async (req: SecurityRequest, deps: SecurityDeps) => {
  if (verb === "remediate" && req.body.dryRun !== false) return null; // a dry run changes nothing
  const id = agentIdOf(req);
  return id ? `${verb} ${(await hostname(deps, id)) ?? id}` : null;
};

const issue = (req: SecurityRequest, deps: SecurityDeps, agentId: number, action: string, args: Record<string, unknown>) =>
  issueCommand(deps, { type: "user", id: req.principal.id, name: req.principal.name }, agentId, action, args);

export const SECURITY_ROUTES: SecurityRoute[] = [
  {
    method: "GET",
    path: "/api/security/hosts/:id/score",
    permission: "compliance.view",
    async handler(req, deps) {
      const id = await knownHost(req, deps);
      if (!id) return noSuchHost();
      const s = await scoreHost(deps.sql, id, deps.now?.());
      return req.htmx ? html(deps.views.render("partials/security-score", scoreModel(id, s))) : json(s);
    },
  },
  {
    method: "GET",
    path: "/api/security/scores",
    permission: "compliance.view",
    async handler(_req, deps) {
      const rows = await latestScores(deps.sql);
      return json({ hosts: rows.map(({ breakdown, ...r }) => ({ ...r, unknown: breakdown?.unknown ?? null })) });
    },
  },
  {
    method: "GET",
    path: "/api/security/hosts/:id/score/trend",
    permission: "compliance.view",
    async handler(req, deps) {
      const id = agentIdOf(req);
      if (!id) return noSuchHost();
      const days = Math.min(365, Math.max(1, msParam(req.url.searchParams, "days", 30)));
      const to = deps.now?.() ?? Date.now();
      const rows = await scoreTrend(deps.sql, id, new Date(to - days * 86_400_000));
      const points = rows.map((r) => [new Date(r.ts).getTime(), Number(r.score)] as [number, number]);
      if (!req.htmx) return json({ points });
      return html(deps.views.render("partials/security-score-trend", { agentId: id, days, chart: deps.views.scoreChart(points, to - days * 86_400_000, to), hasPoints: points.length > 0, latest: points.length ? points[points.length - 1]![1] : null }));
    },
  },
  {
    method: "GET",
    path: "/api/security/hosts/:id/cis",
    permission: "compliance.view",
    async handler(req, deps) {
      const id = agentIdOf(req);
      if (!id) return noSuchHost();
      return json({ results: await hostResults(deps.sql, id) });
    },
  },
  {
    method: "GET",
    path: "/api/security/posture/controls",
    permission: "compliance.view",
    async handler(req, deps) {
      const rows = await controlPassRates(deps.sql);
      return req.htmx ? html(deps.views.render("partials/security-pass-rates", { controls: passRateModel(rows) })) : json({ controls: rows });
    },
  },
  {
    method: "GET",
    path: "/api/security/posture/violations",
    permission: "compliance.view",
    async handler(req, deps) {
      const q = req.url.searchParams;
      const agentId = q.get("agent") && Number.isSafeInteger(Number(q.get("agent"))) ? Number(q.get("agent")) : undefined;
      const open = q.get("open") === null ? undefined : q.get("open") === "true";
      const rows = await listViolations(deps.sql, { agentId, open });
      const canAck = req.principal.permissions.has("compliance.exceptions.edit");
      return req.htmx ? html(deps.views.render("partials/security-violation-rows", { violations: rows.map((v) => violationModel(v, { canAck, csrf: req.csrf })) })) : json({ violations: rows });
    },
  },
  {
    method: "POST",
    path: "/api/security/posture/violations/:id/ack",
    permission: "compliance.exceptions.edit",
    async handler(req, deps) {
      const id = Number(req.params.id);
      const note = typeof req.body.note === "string" ? req.body.note : "";
      const ok = Number.isSafeInteger(id) && (await acknowledgeViolation(deps.sql, id, `${req.principal.name} (${req.principal.id})`, note));
      await deps.audit({ actor: { type: "user", id: req.principal.id, name: req.principal.name }, category: "security_event", action: "cis.violation.acknowledge", target: `violation:${req.params.id}`, success: ok, details: { note } });
      if (!ok) return fail(404, "not_found", "no such unacknowledged violation");
      const rows = await deps.sql`select v.*, a.hostname from cis_violations v join agents a on a.id = v.agent_id where v.id = ${id}`;
      return req.htmx ? html(deps.views.render("partials/security-violation-row", violationModel(rows[0], { canAck: false }))) : json({ violation: rows[0] });
    },
  },
  {
    method: "GET",
    path: "/api/security/posture/export",
    permission: "compliance.reports.export",
    async handler(req, deps) {
      const format = req.url.searchParams.get("format") === "json" ? "json" : "csv";
      const body = await exportPosture(deps.sql, format);
      await deps.audit({ actor: { type: "user", id: req.principal.id, name: req.principal.name }, category: "security_event", action: "cis.export", target: "posture", success: true, details: { format } });
      return new Response(body, { headers: { "content-type": format === "json" ? "application/json" : "text/csv; charset=utf-8", "content-disposition": `attachment; filename="compliance-posture.${format}"` } });
    },
  },
  {
    method: "GET",
    path: "/api/security/hosts/:id/fim",
    permission: "fim.view",
    async handler(req, deps) {
      const id = agentIdOf(req);
      if (!id) return noSuchHost();
      const since = new Date(msParam(req.url.searchParams, "since", (deps.now?.() ?? Date.now()) - 86_400_000));
      return json({ events: await recentFimEvents(deps.sql, id, since, { withStatus: true }) });
    },
  },
  {
    method: "GET",
    path: "/api/security/hosts/:id/incidents",
    permission: "security.events.view",
    async handler(req, deps) {
      const id = agentIdOf(req);
      if (!id) return noSuchHost();
      const to = msParam(req.url.searchParams, "to", deps.now?.() ?? Date.now());
      const from = Math.max(msParam(req.url.searchParams, "from", to - 7 * 86_400_000), to - 90 * 86_400_000); // at most 90 days
      const incidents = await hostIncidents(deps.sql, id, { fromMs: from, toMs: to, thresholds: deps.thresholds });
      return req.htmx ? html(deps.views.render("partials/security-incidents", incidentsModel(id, incidents))) : json({ incidents });
    },
  },
  {
    method: "POST",
    path: "/api/security/hosts/:id/scan",
    permission: "compliance.scan",
    async handler(req, deps) {
      const id = await knownHost(req, deps);
      if (!id) return noSuchHost();
      const { cmd, result } = await issue(req, deps, id, "cis.scan", {});
      if (req.htmx) return html(deps.views.render("partials/security-scan", { agentId: id, ok: !!(result as any)?.ok, error: (result as any)?.error ?? "" }));
      return json({ command: cmd.id, result });
    },
  },
  {
    method: "POST",
    path: "/api/security/hosts/:id/remediate",
    permission: "compliance.remediate",
    dangerous: confirmPhrase("remediate"),
    async handler(req, deps) {
      const id = await knownHost(req, deps);
      if (!id) return noSuchHost();
      const controls = req.body.controls;
      if (!Array.isArray(controls) || !controls.length || controls.length > 200 || !controls.every((c) => typeof c === "string" && /^[a-z0-9._-]{1,128}$/.test(c))) {
        return fail(400, "bad_request", "controls must be a list of 1-200 control ids");
      }
      const { cmd, result } = await issue(req, deps, id, "cis.remediate", { controls, dryRun: req.body.dryRun !== false });
      if (!req.htmx) return json({ command: cmd.id, result }, (result as any)?.ok ? 200 : 502);
      const model = remediationModel(result, { agentId: id, hostname: (await hostname(deps, id)) ?? undefined, controls, csrf: req.csrf, canApply: true });
      // the confirmation form posts into its own .form-result; the outcome replaces the whole result
      return remediationHtml(deps, model);
    },
  },
  {
    method: "POST",
    path: "/api/security/hosts/:id/rollback",
    permission: "compliance.remediate",
    dangerous: confirmPhrase("rollback"),
    async handler(req, deps) {
      const id = agentIdOf(req);
      if (!id) return noSuchHost();
      const snapshot = req.body.snapshot;
      if (typeof snapshot !== "string") return fail(400, "bad_request", "snapshot is required");
      const known = await deps.sql`select 1 from security_commands where agent_id = ${id} and snapshot = ${snapshot}`;
      if (!known.length) return fail(404, "not_found", "no remediation with that snapshot on this host");
      const { cmd, result } = await issue(req, deps, id, "cis.rollback", { snapshot });
      if (!req.htmx) return json({ command: cmd.id, result }, (result as any)?.ok ? 200 : 502);
      return remediationHtml(deps, remediationModel(result, { agentId: id }));
    },
  },
  {
    method: "POST",
    path: "/api/security/auto-remediation",
    permission: "compliance.policies.edit",
    dangerous: async (req) => `auto-remediate ${String(req.body.control ?? "")}`,
    async handler(req, deps) {
      const { control, hostGroup, enabled } = req.body as Record<string, unknown>;
      if (typeof control !== "string" || typeof hostGroup !== "string" || typeof enabled !== "boolean") return fail(400, "bad_request", "control, hostGroup and enabled are required");
      await setAutoRemediation(deps.sql, control, hostGroup, enabled, `${req.principal.name} (${req.principal.id})`);
      await deps.audit({ actor: { type: "user", id: req.principal.id, name: req.principal.name }, category: "security_event", action: "cis.auto-remediation.set", target: `control:${control}`, success: true, details: { hostGroup, enabled } });
      if (!req.htmx) return json({ ok: true });
      const model = autoRemediationModel(await listAutoRemediation(deps.sql), { canEdit: true, csrf: req.csrf });
      return html(deps.views.render("partials/security-auto-remediation", model), { "hx-retarget": "#auto-remediation", "hx-reswap": "outerHTML" });
    },
  },
];

/** JSON bodies pass as they are; htmx form posts carry strings: "true"/"false" and comma lists. */
export function normalizeBody(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== "object" || Array.isArray(body)) return {};
  const out: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  for (const k of ["dryRun", "enabled"]) if (out[k] === "true" || out[k] === "false") out[k] = out[k] === "true";
  if (typeof out.controls === "string") out.controls = out.controls.split(",").map((c) => c.trim()).filter(Boolean);
  return out;
}

/** Runs one route: authentication, permission, confirmation, then the handler. */
export async function runRoute(route: SecurityRoute, deps: SecurityDeps, request: Request, params: Record<string, string>, body: unknown): Promise<Response> {
  const principal = await deps.principal(request);
  if (!principal) return fail(401, "unauthenticated", "sign in first");
  const req: SecurityRequest = { url: new URL(request.url), params, body: normalizeBody(body), principal, htmx: request.headers.get("hx-request") === "true" };
  if (!principal.permissions.has(route.permission)) {
    await deps.audit({ actor: { type: "user", id: principal.id, name: principal.name }, category: "security_event", action: "permission.denied", target: `${route.method} ${route.path}`, success: false, details: { permission: route.permission } });
    return fail(403, "forbidden", `this needs the ${route.permission} permission`);
  }
  if (route.dangerous) {
    const phrase = await route.dangerous(req, deps);
    if (phrase !== null && req.body.confirm !== phrase) {
      return json({ error: { code: "confirmation_required", message: `dangerous operation: type "${phrase}" to confirm`, phrase } }, 428);
    }
  }
  return route.handler(req, deps);
}

export function securityPlugin(deps: SecurityDeps) {
  let app = new Elysia({ name: "security" });
  for (const r of SECURITY_ROUTES) {
    const h = async ({ request, params, body }: { request: Request; params: Record<string, string>; body: unknown }) => runRoute(r, deps, request, params, body);
    app = (r.method === "GET" ? app.get(r.path, h as any) : app.post(r.path, h as any)) as typeof app;
  }
  return app;
}
