/**
 * Service operations in the console: a host's units (/hosts/:id/services), one unit's status
 * with its journal, the six operations on one host (/api/hosts/:id/services/<op>) and on every
 * host of a tag (/api/services/run/<op>, with a per-host result table). Each op has its own
 * route so that the op's own permission gates it (services.start / .stop / .restart (reload
 * too) / .enable (disable too)). The /api/ routes answer JSON, or an HTML fragment to htmx.
 *
 * Dangerous, so typed confirmation + fresh re-authentication (the guard checks them): stopping
 * or disabling ssh/sshd or the agent's own unit, and any op on more than one host. No SQL here:
 * src/operations/services.ts owns the table and issues the signed commands.
 */
import type { ConsoleServices } from "../deps.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import { securityHeaders, type Pages } from "../respond.ts";
import { auditRequest } from "../audit-request.ts";
import {
  groupHosts, isDangerousOp, listServices, needsConfirmation, normalizeUnit, recentOperations, runOnHosts, serviceAction, serviceStatus,
  ServiceRequestError, SERVICE_OPS, type ServiceOp, type ServiceOpsDeps, type ServiceOutcome,
} from "../../operations/services.ts";
import { listHosts } from "../../store/postgres/queries-console.ts";
import type { Requester } from "../../security/issue.ts";

/** The permission each op needs. */
export const OP_PERMISSION: Record<ServiceOp, string> = {
  start: "services.start",
  stop: "services.stop",
  restart: "services.restart",
  reload: "services.restart",
  enable: "services.enable",
  disable: "services.enable",
};

const json = (v: unknown, status = 200) => new Response(JSON.stringify(v), { status, headers: securityHeaders(new Headers({ "content-type": "application/json" })) });

const UNIT_TYPES = ["service", "socket", "timer", "target", "mount", "path", "all"] as const;
const STATES = ["all", "active", "inactive", "failed"] as const;

/** The phrase for one host: "<op> <unit> on <hostname>", or null when the op is harmless. */
function hostPhrase(op: ServiceOp) {
  return (req: ConsoleRequest) => {
    const unit = normalizeUnit(req.form.get("unit"));
    return unit && isDangerousOp(unit, op) ? `${op} ${unit} on ${req.host!.hostname}` : null;
  };
}

export function serviceRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  const deps = (req: ConsoleRequest): ServiceOpsDeps | null =>
    s.security
      ? {
          sql, commandKey: s.security.commandKey, dispatch: s.security.dispatch, now: s.security.now,
          audit: (e) => auditRequest(sql, req, "service_operation", e.action, e.target, e.success, e.details).then(() => {}),
        }
      : null;
  const who = (req: ConsoleRequest): Requester => ({ type: "user", id: req.user!.id, name: req.user!.username });
  const wantsJson = (req: ConsoleRequest) => !req.htmx.request;
  const fail = (req: ConsoleRequest, status: number, code: string, message: string) =>
    wantsJson(req) ? json({ error: { code, message } }, status) : pages.formErrors(req, [message], status);
  const noChannel = (req: ConsoleRequest) => fail(req, 503, "unavailable", "no command channel to agents is set up on this server");
  const gone = (req: ConsoleRequest) => (req.host!.revoked_at ? fail(req, 404, "not_found", "no such host") : null);
  const hostRef = (req: ConsoleRequest) => ({ id: req.host!.id, hostname: req.host!.hostname });

  /** The ops this user may run on this host (buttons shown). */
  const allowedOps = (req: ConsoleRequest) => SERVICE_OPS.filter((op) => can(req, OP_PERMISSION[op], req.host));

  function unitRows(result: Record<string, unknown>, q: URLSearchParams) {
    const type = (UNIT_TYPES as readonly string[]).includes(q.get("type") ?? "") ? q.get("type")! : "service";
    const state = (STATES as readonly string[]).includes(q.get("state") ?? "") ? q.get("state")! : "all";
    const search = (q.get("q") ?? "").trim().toLowerCase().slice(0, 100);
    const all = Array.isArray(result.units) ? (result.units as Array<Record<string, string>>) : [];
    const units = all.filter((u) =>
      (type === "all" || u.unit!.endsWith(`.${type}`)) &&
      (state === "all" || u.active === state) &&
      (!search || u.unit!.toLowerCase().includes(search) || (u.description ?? "").toLowerCase().includes(search)));
    const level = (a: string) => (a === "active" ? "ok" : a === "failed" ? "crit" : a === "activating" || a === "deactivating" || a === "reloading" ? "warn" : "");
    return { type, state, search, total: all.length, units: units.slice(0, 1000).map((u) => ({ ...u, q: encodeURIComponent(u.unit!), level: level(u.active ?? "") })), truncated: units.length > 1000 };
  }

  const statusModel = (r: ServiceOutcome) => {
    const st = (r.result.status ?? {}) as Record<string, unknown>;
    const journal = Array.isArray(st.journal) ? (st.journal as Array<{ ts: number; priority: number | null; message: string }>) : [];
    return {
      ok: r.ok, error: r.error, manager: r.result.manager ?? "", unit: r.unit, status: st,
      journal: journal.map((l) => ({ time: l.ts ? new Date(l.ts).toISOString().replace("T", " ").slice(0, 19) : "", message: l.message, level: l.priority !== null && l.priority <= 3 ? "error" : l.priority === 4 ? "warn" : "" })),
      journalNote: st.journalNote ?? "",
    };
  };

  const actionModel = (r: ServiceOutcome) => ({
    host: r.host, unit: r.unit, unitQ: encodeURIComponent(r.unit), op: r.op, ok: r.ok, error: r.error,
    exitCode: r.result.exitCode ?? null, timedOut: r.result.timedOut === true, output: String(r.result.output ?? ""),
    after: (r.result.after ?? null) as { active: string; sub: string; enabled: string } | null,
  });

  function runHandler(op: ServiceOp) {
    return async (req: ConsoleRequest) => {
      const d = deps(req);
      if (!d) return noChannel(req);
      const group = (req.form.get("group") ?? "").trim();
      const hosts = await groupHosts(sql, req.scope, group);
      try {
        const { run, outcomes } = await runOnHosts(d, who(req), hosts, req.form.get("unit"), op);
        const rows = outcomes.map(actionModel);
        const summary = { run, group, unit: rows[0]!.unit, op, hosts: rows.length, ok: rows.filter((r) => r.ok).length, failed: rows.filter((r) => !r.ok).length };
        if (wantsJson(req)) return json({ ...summary, results: rows });
        return pages.partial("partials/service-run", { ...summary, rows });
      } catch (e) {
        if (e instanceof ServiceRequestError) return fail(req, 400, "bad_request", e.message);
        throw e;
      }
    };
  }

  const routes: ConsoleRoute[] = [
    {
      method: "GET", path: "/hosts/:id/services", access: "services.view", hostData: "host",
      async handler(req) {
        const host = req.host!;
        const d = deps(req);
        const r = d && !host.revoked_at ? await listServices(d, who(req), host) : null;
        const rows = r ? unitRows(r.result, req.query) : { type: "service", state: "all", search: "", total: 0, units: [], truncated: false };
        return pages.page(req, "pages/services-host", `Services on ${host.hostname}`, {
          a: host,
          ok: r?.ok ?? false,
          error: !d ? "No command channel to agents is set up on this server." : host.revoked_at ? "This agent is revoked." : r?.error ?? "",
          manager: r?.result.manager ?? "",
          ...rows,
          types: UNIT_TYPES.map((t) => ({ value: t, selected: t === rows.type })),
          states: STATES.map((t) => ({ value: t, selected: t === rows.state })),
          ops: allowedOps(req).map((op) => ({ op, path: `/api/hosts/${host.id}/services/${op}` })),
          unit: normalizeUnit(req.query.get("unit")) ?? "",
          unitQ: encodeURIComponent(normalizeUnit(req.query.get("unit")) ?? ""),
          recent: (await recentOperations(sql, host, 10)).map((o) => ({ ...o, at: o.requested_at.toISOString().replace("T", " ").slice(0, 19) })),
        });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/services", access: "services.view", hostData: "host",
      doc: {
        summary: "A host's service units, live from its service manager",
        params: { id: "agent id" },
        responses: { "200": "{host, operation, ok, manager, units: [{unit, load, active, sub, description}]}; ok false with error when the agent could not list them", "503": "no command channel to agents" },
      },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const g = gone(req);
        if (g) return g;
        const r = await listServices(d, who(req), req.host!);
        if (!wantsJson(req)) return pages.partial("partials/service-units", { a: req.host, ...unitRows(r.result, req.query), ok: r.ok, error: r.error ?? "" });
        return json({ host: hostRef(req), operation: r.operation, ok: r.ok, manager: r.result.manager ?? null, units: r.result.units ?? [], ...(r.ok ? {} : { error: r.error }) });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/services/status", access: "services.view", hostData: "host",
      doc: {
        summary: "One unit's status and its recent journal lines",
        params: { id: "agent id" },
        query: { unit: "unit name, e.g. nginx.service (a bare name means .service)", lines: "journal lines, 0-200 (default 20)" },
        responses: { "200": "{host, operation, ok, manager, status: {unit, description, load, active, sub, enabled, mainPid, since, fragment, journal}}", "400": "bad unit name" },
      },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const g = gone(req);
        if (g) return g;
        const lines = Number(req.query.get("lines") ?? 20);
        try {
          const r = await serviceStatus(d, who(req), req.host!, req.query.get("unit"), Number.isFinite(lines) ? lines : 20);
          if (!wantsJson(req)) return pages.partial("partials/service-status", statusModel(r));
          return json({ host: hostRef(req), operation: r.operation, ok: r.ok, manager: r.result.manager ?? null, status: r.result.status ?? null, ...(r.ok ? {} : { error: r.error }) });
        } catch (e) {
          if (e instanceof ServiceRequestError) return fail(req, 400, "bad_request", e.message);
          throw e;
        }
      },
    },
    {
      method: "GET", path: "/services", access: "services.view", hostData: "fleet",
      async handler(req) {
        const hosts = await listHosts(sql, req.scope);
        const tags = [...new Set(hosts.flatMap((h) => h.tags ?? []))].sort();
        const groups = [...(req.scope.allHosts ? [{ value: "*", label: `every host (${hosts.length})` }] : []),
          ...tags.map((t) => ({ value: t, label: `${t} (${hosts.filter((h) => h.tags.includes(t)).length})` }))];
        const ops = SERVICE_OPS.filter((op) => can(req, OP_PERMISSION[op])).map((op) => ({ op, path: `/api/services/run/${op}` }));
        return pages.page(req, "pages/services", "Services", { groups, ops, hostCount: hosts.length, hosts: hosts.slice(0, 200).map((h) => ({ id: h.id, hostname: h.hostname, tags: h.tags })) });
      },
    },
  ];

  for (const op of SERVICE_OPS) {
    routes.push({
      method: "POST", path: `/api/hosts/:id/services/${op}`, access: OP_PERMISSION[op], hostData: "host",
      doc: {
        summary: `${op[0]!.toUpperCase()}${op.slice(1)} a unit on one host`,
        description: op === "stop" || op === "disable" ? "Stopping or disabling ssh/sshd or the agent's own unit is dangerous: typed confirmation and re-authentication in the console (an API token cannot)." : undefined,
        params: { id: "agent id" },
        body: { unit: "unit name, e.g. nginx.service", confirm: "the typed phrase, for dangerous operations", reauth: "password or authenticator code, for dangerous operations" },
        responses: { "200": "{operation, host, unit, op, ok, error, exitCode, timedOut, output, after: {active, sub, enabled}}; ok false when the operation failed on the host", "400": "bad unit name" },
      },
      dangerous: { phrase: hostPhrase(op) },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const g = gone(req);
        if (g) return g;
        try {
          const r = await serviceAction(d, who(req), req.host!, req.form.get("unit"), op);
          const m = actionModel(r);
          if (!wantsJson(req)) return pages.partial("partials/service-result", m);
          return json({ operation: r.operation, ...m });
        } catch (e) {
          if (e instanceof ServiceRequestError) return fail(req, 400, "bad_request", e.message);
          throw e;
        }
      },
    });
    routes.push({
      method: "POST", path: `/api/services/run/${op}`, access: OP_PERMISSION[op], hostData: "fleet",
      doc: {
        summary: `${op[0]!.toUpperCase()}${op.slice(1)} a unit on every host of a tag`,
        description: "Only hosts within the scope of the permission are reached. More than one host makes it dangerous: typed confirmation and re-authentication in the console.",
        body: { group: "a host tag, or * for every host", unit: "unit name", confirm: "the typed phrase", reauth: "password or authenticator code" },
        responses: { "200": "{run, group, unit, op, hosts, ok, failed, results: [one per host]}", "400": "bad unit name, or no host of the group in scope" },
      },
      dangerous: {
        async phrase(req) {
          const unit = normalizeUnit(req.form.get("unit"));
          const group = (req.form.get("group") ?? "").trim();
          if (!unit || !group) return null; // refused as a bad request by the handler
          const hosts = await groupHosts(sql, req.scope, group);
          return needsConfirmation(unit, op, hosts.length) ? `${op} ${unit} on ${group}` : null;
        },
      },
      handler: runHandler(op),
    });
  }
  return routes;
}

