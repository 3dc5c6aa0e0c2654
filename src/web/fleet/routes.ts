/**
 * Fleet overview: every host with status, last seen, CPU/memory/disk, transport and agent
 * version. Sortable, searchable and paged (250 rows, or every host with per=all); the table
 * polls for itself every 10 s (one partial, as the contact app's rows.html: the same URL
 * returns only #fleet-table to htmx requests aimed at it).
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import type { Pages } from "../respond.ts";
import { FLEET_SORTS, fleetOverview, fleetSummary, type FleetRow, type FleetSort, type FleetSummary } from "../../store/postgres/queries-console.ts";
import { ago, level, pct } from "../format.ts";

const COLUMNS: Array<{ key: FleetSort; label: string }> = [
  { key: "status", label: "Status" },
  { key: "hostname", label: "Host" },
  { key: "last_seen", label: "Last seen" },
  { key: "cpu", label: "CPU" },
  { key: "mem", label: "Memory" },
  { key: "disk", label: "Disk /" },
  { key: "transport", label: "Transport" },
  { key: "version", label: "Agent" },
  { key: "os", label: "OS" },
];

const DESC_FIRST = new Set(["cpu", "mem", "disk", "last_seen"]);

/** Rows per page unless the user asks for every host (`per=all`). */
export const PAGE_SIZE = 250;

export interface FleetParams {
  q: string;
  sort: FleetSort;
  desc: boolean;
  page: number;
  /** rows per page; null = every host on one page */
  per: number | null;
}

function qs(p: Record<string, string>): string {
  return new URLSearchParams(Object.entries(p).filter(([, v]) => v !== "")).toString();
}

export function fleetRowView(r: FleetRow, now: number) {
  const status = r.revoked_at ? "revoked" : r.online ? "online" : "offline";
  return {
    id: r.id,
    hostname: r.hostname,
    tags: r.tags,
    status,
    lastSeen: ago(r.last_seen, now),
    lastSeenIso: r.last_seen ? new Date(r.last_seen).toISOString() : "",
    cpu: pct(r.cpu), cpuVal: r.cpu ?? 0, cpuLevel: level(r.cpu),
    mem: pct(r.mem), memVal: r.mem ?? 0, memLevel: level(r.mem),
    disk: pct(r.disk), diskVal: r.disk ?? 0, diskLevel: level(r.disk),
    transport: r.transport ?? "–",
    version: r.agent_version || "–",
    os: [r.os_name || r.os, r.arch].filter(Boolean).join(" / ") || "–",
  };
}

/** The view model of the fleet table: one page of rows, counts over the whole filtered fleet. */
export function fleetView(rows: FleetRow[], summary: FleetSummary, p: FleetParams, now = Date.now()) {
  const dir = p.desc ? "desc" : "asc";
  const per = p.per === null ? "all" : "";
  const link = (o: Partial<Record<"sort" | "dir" | "page" | "per", string>>) =>
    `/hosts?${qs({ q: p.q, sort: p.sort, dir, per, page: "", ...o })}`;
  const pages = p.per === null ? 1 : Math.max(1, Math.ceil(summary.total / p.per));
  const first = p.per === null ? 1 : (p.page - 1) * p.per + 1;
  return {
    rows: rows.map((r) => fleetRowView(r, now)),
    columns: COLUMNS.map((c) => {
      const active = c.key === p.sort;
      // measurements and times start with the largest and newest; names start at A
      const nextDir = active ? (p.desc ? "asc" : "desc") : DESC_FIRST.has(c.key) ? "desc" : "asc";
      return { label: c.label, key: c.key, active, arrow: active ? (p.desc ? "▼" : "▲") : "", href: link({ sort: c.key, dir: nextDir }) };
    }),
    q: p.q, sort: p.sort, dir, per,
    selfUrl: link({ page: p.page > 1 ? String(p.page) : "" }),
    total: summary.total, hostsLabel: summary.total === 1 ? "host" : "hosts", online: summary.online, revoked: summary.revoked,
    offline: summary.total - summary.online - summary.revoked,
    paged: pages > 1,
    range: rows.length ? `${first}–${first + rows.length - 1}` : "0",
    prev: p.page > 1 ? link({ page: p.page - 1 > 1 ? String(p.page - 1) : "" }) : "",
    next: p.page < pages ? link({ page: String(p.page + 1) }) : "",
    allUrl: pages > 1 ? link({ per: "all" }) : "",
  };
}

export function parseFleetQuery(req: ConsoleRequest): FleetParams {
  const sortRaw = req.query.get("sort") ?? "hostname";
  const sort = (FLEET_SORTS as readonly string[]).includes(sortRaw) ? (sortRaw as FleetSort) : "hostname";
  const page = Number(req.query.get("page") ?? "1");
  return {
    q: (req.query.get("q") ?? "").trim().slice(0, 100),
    sort,
    desc: req.query.get("dir") === "desc",
    page: Number.isSafeInteger(page) && page >= 1 && page <= 100_000 ? page : 1,
    per: req.query.get("per") === "all" ? null : PAGE_SIZE,
  };
}

export function fleetRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  return [
    {
      method: "GET", path: "/hosts", access: "hosts.view", hostData: "fleet",
      async handler(req) {
        const p = parseFleetQuery(req);
        const [rows, summary] = await Promise.all([
          fleetOverview(s.sql, req.scope, {
            search: p.q, sort: p.sort, desc: p.desc,
            ...(p.per === null ? {} : { limit: p.per, offset: (p.page - 1) * p.per }),
          }),
          fleetSummary(s.sql, req.scope, { search: p.q }),
        ]);
        const view = { ...fleetView(rows, summary, p), canEnroll: req.grants!.permissions.has("agents.enroll") };
        if (req.htmx.request && req.htmx.target === "fleet-table") return pages.partial("partials/fleet-table", view);
        return pages.page(req, "pages/fleet", "Fleet", view);
      },
    },
  ];
}
