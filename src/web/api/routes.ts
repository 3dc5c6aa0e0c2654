/**
 * The JSON API over the fleet (/api/hosts...): the hosts in the caller's scope, one host, its
 * metric names, latest values and ranges, its logs and inventory; and /api/me (who is calling,
 * with what). Ordinary console routes through the one guard: a session cookie or an API token
 * (src/web/bearer.ts), the route's permission, the host scope (a host outside it is 404, as a
 * missing one). Models: src/store/postgres/queries-console.ts. The security posture API is
 * src/web/security/routes.ts (/api/security/*). Every route is described in /api/openapi.json.
 */
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { json } from "../respond.ts";
import {
  FLEET_SORTS, fleetOverview, fleetSummary, hostLogs, hostSeriesRange, inventory, latestMetrics, seriesNames,
  type FleetSort, type ScopedHost,
} from "../../store/postgres/queries-console.ts";
import { postgresRangeStore } from "../../store/range.ts";

const bad = (message: string) => json({ error: { code: "bad_request", message } }, 400);

/** A time from the query string: milliseconds since the epoch or an ISO 8601 date; `def` when absent. */
export function timeParam(q: URLSearchParams, name: string, def: number): number | null {
  const v = q.get(name);
  if (v === null || v === "") return def;
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) ? n : null;
}

/** An integer from the query string within [min, max]; `def` when absent; null when invalid. */
export function intParam(q: URLSearchParams, name: string, def: number, min: number, max: number): number | null {
  const v = q.get(name);
  if (v === null || v === "") return def;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : null;
}

/** `after` of the routes that follow a command's output: the `last` chunk already seen, -1 (default) for all; null when invalid. */
export const afterParam = (q: URLSearchParams) => intParam(q, "after", -1, -1, Number.MAX_SAFE_INTEGER);
export const AFTER_PROBLEM = "after must be a whole number, -1 or more (the last of the previous answer)";

const MAX_RANGE_MS = 31 * 86_400_000;

function hostJson(a: ScopedHost) {
  return {
    id: a.id, hostname: a.hostname, tags: a.tags, os: a.os, arch: a.arch, agent_version: a.agent_version,
    state: a.revoked_at ? "revoked" : a.online ? "online" : "offline", online: a.online,
    last_seen: a.last_seen, enrolled_at: a.enrolled_at, revoked_at: a.revoked_at, transport: a.transport,
  };
}

export function apiRoutes(s: ConsoleServices): ConsoleRoute[] {
  const { sql } = s;
  const hostParam = { id: "The host's (agent's) id" };
  return [
    {
      method: "GET", path: "/api/me", access: "signed-in",
      doc: { summary: "Who is calling: the user, the API token if one is used, and the permissions held now" },
      handler(req: ConsoleRequest) {
        return json({
          user: { id: req.user!.id, username: req.user!.username },
          token: req.token ? { id: req.token.id, name: req.token.name, ai_client: req.token.aiClient, client_name: req.token.clientName } : null,
          permissions: [...(req.grants?.permissions ?? [])].sort(),
        });
      },
    },
    {
      method: "GET", path: "/api/hosts", access: "hosts.view", hostData: "fleet",
      doc: {
        summary: "The hosts in the caller's scope, with status and latest CPU, memory and disk use",
        query: {
          q: "Search in hostname, tags (exact) and OS", sort: `Sort key: ${FLEET_SORTS.join(", ")} (default hostname)`,
          dir: "asc (default) or desc", limit: "Hosts per page, 1-1000 (default 250)", offset: "Hosts to skip (default 0)",
        },
      },
      async handler(req) {
        const sortRaw = req.query.get("sort") ?? "hostname";
        if (!(FLEET_SORTS as readonly string[]).includes(sortRaw)) return bad(`sort is one of ${FLEET_SORTS.join(", ")}`);
        const limit = intParam(req.query, "limit", 250, 1, 1000);
        const offset = intParam(req.query, "offset", 0, 0, 10_000_000);
        if (limit === null || offset === null) return bad("limit is 1-1000 and offset a non-negative integer");
        const search = (req.query.get("q") ?? "").trim().slice(0, 100);
        const [rows, summary] = await Promise.all([
          fleetOverview(sql, req.scope, { search, sort: sortRaw as FleetSort, desc: req.query.get("dir") === "desc", limit, offset }),
          fleetSummary(sql, req.scope, { search }),
        ]);
        return json({
          total: summary.total, online: summary.online, revoked: summary.revoked, limit, offset,
          hosts: rows.map((r) => ({
            id: r.id, hostname: r.hostname, tags: r.tags, state: r.revoked_at ? "revoked" : r.online ? "online" : "offline",
            last_seen: r.last_seen, cpu_pct: r.cpu, mem_pct: r.mem, disk_root_pct: r.disk,
            os: r.os, arch: r.arch, agent_version: r.agent_version, transport: r.transport,
          })),
        });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id", access: "hosts.view", hostData: "host",
      doc: { summary: "One host", params: hostParam },
      handler: (req) => json({ host: hostJson(req.host!) }),
    },
    {
      method: "GET", path: "/api/hosts/:id/metrics", access: "metrics.view", hostData: "host",
      doc: { summary: "The names of the metric series a host reports", params: hostParam },
      async handler(req) {
        return json({ host: req.host!.id, names: await seriesNames(sql, req.host!) });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/metrics/latest", access: "metrics.view", hostData: "host",
      doc: { summary: "A host's latest value of every metric", params: hostParam },
      async handler(req) {
        const latest = await latestMetrics(sql, req.host!);
        return json({ host: req.host!.id, ts: latest?.ts ?? null, values: latest?.values ?? {} });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/metrics/range", access: "metrics.view", hostData: "host",
      doc: {
        summary: "Metric series over a time range, averaged (with min and max) into at most `points` buckets",
        params: hostParam,
        query: {
          name: "A series name (repeat for several; see /api/hosts/{id}/metrics); at most 20",
          from: "Start: milliseconds since the epoch or ISO 8601 (default one hour ago)",
          to: "End (default now); at most 31 days after from",
          points: "At most this many buckets, 1-2000 (default 240)",
        },
      },
      async handler(req) {
        const names = [...new Set(req.query.getAll("name").map((n) => n.trim()).filter(Boolean))];
        if (!names.length || names.length > 20) return bad("name: one to 20 series names");
        const to = timeParam(req.query, "to", Date.now());
        const from = to === null ? null : timeParam(req.query, "from", to - 3600_000);
        const points = intParam(req.query, "points", 240, 1, 2000);
        if (to === null || from === null || points === null) return bad("from and to are milliseconds or ISO 8601 dates; points is 1-2000");
        if (from >= to || to - from > MAX_RANGE_MS) return bad("from must be before to, at most 31 days apart");
        const series = await hostSeriesRange(s.ranges ?? postgresRangeStore(sql), req.host!, names, new Date(from), new Date(to), points);
        return json({ host: req.host!.id, from, to, series });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/logs", access: "logs.view", hostData: "host",
      doc: {
        summary: "A host's log lines, newest first",
        params: hostParam,
        query: {
          q: "Text the message contains (case-insensitive)",
          severity: "Only lines at this syslog severity or more severe (0 emerg - 7 debug)",
          since: "Start: milliseconds since the epoch or ISO 8601 (default 24 hours ago)",
          limit: "At most this many lines, 1-1000 (default 200)",
        },
      },
      async handler(req) {
        const sevRaw = req.query.get("severity") ?? "";
        if (sevRaw && !/^[0-7]$/.test(sevRaw)) return bad("severity is 0-7");
        const since = timeParam(req.query, "since", Date.now() - 86_400_000);
        const limit = intParam(req.query, "limit", 200, 1, 1000);
        if (since === null || limit === null) return bad("since is milliseconds or ISO 8601; limit is 1-1000");
        const rows = await hostLogs(sql, req.host!, {
          search: (req.query.get("q") ?? "").trim().slice(0, 200), minSeverity: sevRaw ? Number(sevRaw) : undefined, since: new Date(since), limit,
        });
        return json({ host: req.host!.id, logs: rows });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/inventory", access: "inventory.view", hostData: "host",
      doc: { summary: "A host's hardware and software inventory (latest)", params: hostParam },
      async handler(req) {
        const inv = await inventory(sql, req.host!);
        return json({ host: req.host!.id, collected_at: inv?.collected_at ?? null, inventory: inv?.data ?? null });
      },
    },
  ];
}
