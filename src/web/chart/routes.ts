/**
 * The interactive charts' routes: the columnar data of one host's charts and of several hosts
 * compared (JSON, /api/..., sized to the chart's width), and the compare page with its host
 * picker. Every route goes through the one guard with metrics.view: the host route resolves
 * `:id` within the caller's scope (404 otherwise); the compare routes resolve every asked host
 * within `req.scope` and answer 404 for one outside it, exactly as for a host that does not exist.
 */
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { json, type Pages } from "../respond.ts";
import { findHost, listHosts, seriesNames, type ScopedHost } from "../../store/postgres/queries-console.ts";
import { postgresRangeStore } from "../../store/range.ts";
import {
  CHART_RANGES, ChartQueryError, compareCharts, DEFAULT_RANGE, hostCharts, MAX_COMPARE_HOSTS, MAX_WIDTH, MIN_WIDTH,
  parseChartWindow, parseHostIds, type HostForChart,
} from "./data.ts";

const problem = (status: number, code: string, message: string) => json({ error: { code, message } }, status);

function stateOf(a: ScopedHost): HostForChart["state"] {
  return a.revoked_at ? "revoked" : a.online ? "online" : "offline";
}

const windowDoc = {
  range: `A range ending now: ${Object.keys(CHART_RANGES).join(", ")} (default ${DEFAULT_RANGE}); or from and to`,
  from: "Start of a fixed window, ms since the epoch (with to; at most 92 days before it, at least 10 s)",
  to: "End of a fixed window, ms since the epoch",
  width: `The chart's width in pixels, ${MIN_WIDTH}-${MAX_WIDTH} (default 800): at most about this many points per series`,
};

/** The hosts a compare request names, each within the scope; a message for the first one that is not. */
async function scopedHosts(s: ConsoleServices, req: ConsoleRequest, ids: number[]): Promise<ScopedHost[] | string> {
  const found = await Promise.all(ids.map((id) => findHost(s.sql, req.scope, id)));
  const missing = ids.find((_, i) => !found[i]);
  if (missing !== undefined) return `no such host: ${missing}`;
  return found.filter((a): a is NonNullable<typeof a> => a !== undefined);
}

async function forChart(s: ConsoleServices, a: ScopedHost): Promise<HostForChart> {
  return { id: a.id, hostname: a.hostname, state: stateOf(a), names: await seriesNames(s.sql, a) };
}

export function chartRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const store = () => s.ranges ?? postgresRangeStore(s.sql);
  return [
    {
      method: "GET", path: "/api/hosts/:id/charts", access: "metrics.view", hostData: "host",
      doc: {
        summary: "A host's charts as columnar data: a shared time axis and one value array per series, at most about `width` points",
        params: { id: "The host's (agent's) id" },
        query: windowDoc,
        responses: { "400": "A bad range, from/to or width (the message says which)" },
      },
      async handler(req) {
        let w;
        try {
          w = parseChartWindow(req.query);
        } catch (e) {
          if (e instanceof ChartQueryError) return problem(400, "bad_request", e.message);
          throw e;
        }
        return json(await hostCharts(store(), await forChart(s, req.host!), w));
      },
    },
    {
      method: "GET", path: "/api/charts", access: "metrics.view", hostData: "fleet",
      doc: {
        summary: "Several hosts compared: one chart per metric (CPU, memory, load, network, disk I/O), one series per host, columnar",
        query: { host: `A host id (repeat for several, 1-${MAX_COMPARE_HOSTS}); hosts=1,2,3 works too`, ...windowDoc },
        responses: { "400": "A bad host list, range, from/to or width", "404": "A host that does not exist or lies outside the caller's scope" },
      },
      async handler(req) {
        let w, ids;
        try {
          ids = parseHostIds(req.query);
          w = parseChartWindow(req.query);
        } catch (e) {
          if (e instanceof ChartQueryError) return problem(400, "bad_request", e.message);
          throw e;
        }
        const hosts = await scopedHosts(s, req, ids);
        if (typeof hosts === "string") return problem(404, "not_found", hosts);
        return json(await compareCharts(store(), await Promise.all(hosts.map((a) => forChart(s, a))), w));
      },
    },
    {
      method: "GET", path: "/charts", access: "metrics.view", hostData: "fleet",
      async handler(req) {
        const all = await listHosts(s.sql, req.scope);
        const asked = req.query.getAll("host").length + req.query.getAll("hosts").length > 0;
        let picked: number[] = [];
        const problems: string[] = [];
        if (asked) {
          try {
            picked = parseHostIds(req.query);
            const found = await scopedHosts(s, req, picked);
            if (typeof found === "string") problems.push(found[0]!.toUpperCase() + found.slice(1) + ".");
          } catch (e) {
            if (!(e instanceof ChartQueryError)) throw e;
            problems.push(e.message[0]!.toUpperCase() + e.message.slice(1) + ".");
          }
        }
        const range = CHART_RANGES[req.query.get("range") ?? ""] ? req.query.get("range")! : DEFAULT_RANGE;
        const ok = asked && problems.length === 0;
        const src = ok ? `/api/charts?${picked.map((id) => `host=${id}`).join("&")}` : "";
        const base = ok ? `/charts?${picked.map((id) => `host=${id}`).join("&")}&` : "/charts?";
        const chosen = new Set(picked);
        return pages.page(req, "pages/charts", "Compare hosts", {
          hosts: all.slice(0, 2000).map((a) => ({ id: a.id, hostname: a.hostname, state: stateOf(a), checked: chosen.has(a.id), tags: a.tags.join(" ") })),
          more: all.length > 2000 ? all.length - 2000 : 0,
          max: MAX_COMPARE_HOSTS,
          problems,
          src,
          pickerOpen: !ok || picked.length < 2,
          range,
          ranges: Object.keys(CHART_RANGES).map((r) => ({ r, href: `${base}range=${r}`, active: r === range })),
        }, problems.length ? 400 : 200);
      },
    },
  ];
}
