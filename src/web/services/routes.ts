/**
 * Service operations in the console: a host's units (/hosts/:id/services), one unit's status
 * with its journal, the six operations on one host (/api/hosts/:id/services/<op>) and on every
 * host of a tag (/api/services/run/<op>, with a per-host result table). Each op has its own
 * route so that the op's own permission gates it (services.start / .stop / .restart (reload
 * too) / .enable (disable too)). The /api/ routes answer JSON, or an HTML fragment to htmx.
 *
 * Output streams back: an htmx request (or `wait=false` on the JSON API) is answered as soon as
 * the command is sent, and the operation's output and result are read back while it runs from
 * /api/services/operations/:op (the agent's `command-output` chunks, docs/protocol.md 8.2), a
 * group run's per-host table from /api/services/runs/:run, filling in host by host.
 *
 * Dangerous, so typed confirmation + fresh re-authentication (the guard checks them): stopping
 * or disabling ssh/sshd or the agent's own unit, and any op on more than one host. No SQL here:
 * src/operations/services.ts owns the table and issues the signed commands.
 */
import type { ConsoleServices } from "../deps.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import { json, type Pages } from "../respond.ts";
import { AFTER_PROBLEM, afterParam } from "../api/routes.ts";
import { auditRequest } from "../audit-request.ts";
import {
  groupHosts, isDangerousOp, listServices, needsConfirmation, normalizeUnit, operationProgress, recentOperations, runOnHosts, runProgress, serviceAction, serviceStatus,
  startOnHosts, startServiceAction, ServiceRequestError, SERVICE_OPS, type OperationProgress, type ServiceOp, type ServiceOpsDeps, type ServiceOutcome,
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

  const clock = (ts: number) => new Date(ts).toISOString().slice(11, 23);
  /** An operation as it stands (running or finished), its output so far (the last 1000 lines). */
  const liveModel = (p: OperationProgress) => {
    const r = p.result ?? {};
    return {
      id: p.id, op: p.op, unit: p.unit, host: p.host, status: p.status, finished: p.finished, ok: p.status === "ok", error: p.error,
      timedOut: r.timedOut === true, output: p.finished ? String(r.output ?? "") : "", after: (r.after ?? null) as { active: string; sub: string; enabled: string } | null,
      lineCount: p.lines.length, lines: p.lines.slice(-1000).map((l) => ({ ...l, time: clock(l.ts) })),
    };
  };
  const progressJson = (p: OperationProgress) => ({
    operation: p.id, run: p.run, host: p.host, unit: p.unit, op: p.op, status: p.status, finished: p.finished, ok: p.finished ? p.status === "ok" : null, error: p.error,
    result: p.result, requestedAt: p.requestedAt.toISOString(), finishedAt: p.finishedAt?.toISOString() ?? null, lines: p.lines, last: p.last,
  });
  const runModel = (rows: Omit<OperationProgress, "lines" | "last">[], group: string) => {
    const finished = rows.every((r) => r.finished);
    return {
      run: rows[0]?.run ?? "", group, groupQ: encodeURIComponent(group), unit: rows[0]?.unit ?? "", op: rows[0]?.op ?? "", hosts: rows.length, finished,
      ok: rows.filter((r) => r.status === "ok").length, failed: rows.filter((r) => r.status === "failed").length, pending: rows.filter((r) => !r.finished).length,
      rows: rows.map((r) => ({
        host: r.host, unitQ: encodeURIComponent(r.unit), status: r.status, finished: r.finished, ok: r.status === "ok", error: r.error,
        after: (r.result?.after ?? null) as { active: string; sub: string; enabled: string } | null, output: String(r.result?.output ?? ""),
      })),
    };
  };

  function runHandler(op: ServiceOp) {
    return async (req: ConsoleRequest) => {
      const d = deps(req);
      if (!d) return noChannel(req);
      const group = (req.form.get("group") ?? "").trim();
      const hosts = await groupHosts(sql, req.scope, group);
      try {
        if (!wantsJson(req) || req.form.get("wait") === "false") {
          const { run } = await startOnHosts(d, who(req), hosts, req.form.get("unit"), op);
          if (wantsJson(req)) return json({ run, group, op, hosts: hosts.length, follow: `/api/services/runs/${run}` }, 202);
          return pages.partial("partials/service-run", runModel(await runProgress(sql, req.scope, run), group));
        }
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
      method: "GET", path: "/api/services/operations/:op", access: "services.view", hostData: "fleet",
      doc: {
        summary: "One service operation as it runs: its output so far and, once finished, its result",
        params: { op: "operation id (from a POST with wait=false, or a group run's rows)" },
        query: { after: "only output chunks after this one (the `last` of the previous answer; default -1: all)" },
        responses: { "200": "{operation, run, host, unit, op, status: queued|sent|ok|failed, finished, ok, error, result, requestedAt, finishedAt, lines: [{ts, src: systemctl|journal|state, text}], last}", "404": "no such operation on a host within your scope" },
      },
      async handler(req) {
        const after = afterParam(req.query);
        if (after === null) return fail(req, 400, "bad_request", AFTER_PROBLEM);
        const p = await operationProgress(sql, req.scope, Number(req.params.op), after);
        if (!p) return fail(req, 404, "not_found", "no such operation");
        if (!wantsJson(req)) return pages.partial("partials/service-live", liveModel(p));
        return json(progressJson(p));
      },
    },
    {
      method: "GET", path: "/api/services/runs/:run", access: "services.view", hostData: "fleet",
      doc: {
        summary: "A group run's per-host table as it fills in",
        params: { run: "run id (from POST /api/services/run/<op>)" },
        responses: { "200": "{run, unit, op, hosts, finished, ok, failed, pending, results: [{operation, host, status, finished, ok, error, result}]} (hosts within your scope only)", "404": "no such run within your scope" },
      },
      async handler(req) {
        const rows = await runProgress(sql, req.scope, req.params.run ?? "");
        if (!rows.length) return fail(req, 404, "not_found", "no such run");
        const m = runModel(rows, (req.query.get("group") ?? "").slice(0, 100) || "the group");
        if (!wantsJson(req)) return pages.partial("partials/service-run", m);
        return json({ run: m.run, unit: m.unit, op: m.op, hosts: m.hosts, finished: m.finished, ok: m.ok, failed: m.failed, pending: m.pending,
          results: rows.map((r) => ({ operation: r.id, host: r.host, status: r.status, finished: r.finished, ok: r.finished ? r.status === "ok" : null, error: r.error, result: r.result })) });
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
        body: { unit: "unit name, e.g. nginx.service", wait: "false: answer 202 as soon as the command is sent, then follow /api/services/operations/<operation> for its output and result", confirm: "the typed phrase, for dangerous operations", reauth: "password or authenticator code, for dangerous operations" },
        responses: { "200": "{operation, host, unit, op, ok, error, exitCode, timedOut, output, after: {active, sub, enabled}}; ok false when the operation failed on the host", "202": "with wait=false: {operation, status: sent, follow}", "400": "bad unit name" },
      },
      dangerous: { phrase: hostPhrase(op) },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const g = gone(req);
        if (g) return g;
        try {
          if (!wantsJson(req) || req.form.get("wait") === "false") {
            // answered once sent; the output and the result are read back while it runs
            const { operation } = await startServiceAction(d, who(req), req.host!, req.form.get("unit"), op);
            if (wantsJson(req)) return json({ operation, status: "sent", follow: `/api/services/operations/${operation}` }, 202);
            return pages.partial("partials/service-live", liveModel((await operationProgress(sql, req.scope, operation))!));
          }
          const r = await serviceAction(d, who(req), req.host!, req.form.get("unit"), op);
          return json({ operation: r.operation, ...actionModel(r) });
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
        body: { group: "a host tag, or * for every host", unit: "unit name", wait: "false: answer 202 once every host's row is recorded, then follow /api/services/runs/<run>", confirm: "the typed phrase", reauth: "password or authenticator code" },
        responses: { "200": "{run, group, unit, op, hosts, ok, failed, results: [one per host]}", "202": "with wait=false: {run, group, op, hosts, follow}", "400": "bad unit name, or no host of the group in scope" },
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

