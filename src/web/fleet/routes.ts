/**
 * Fleet overview: every host with status, last seen, CPU/memory/disk, transport and agent
 * version. Sortable and searchable; the table polls for itself every 10 s (one partial, as the
 * contact app's rows.html: the same URL returns only #fleet-table to htmx requests aimed at it).
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import type { Pages } from "../respond.ts";
import { FLEET_SORTS, fleetOverview, type FleetRow, type FleetSort } from "../../store/postgres/queries-console.ts";
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

export interface FleetView {
  rows: object[];
  columns: object[];
  q: string;
  sort: string;
  dir: string;
  selfUrl: string;
  total: number;
  online: number;
  offline: number;
  revoked: number;
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
    os: [r.os, r.arch].filter(Boolean).join(" / ") || "–",
  };
}

/** Builds the view model of the fleet table (exported for the bench). */
export function fleetView(rows: FleetRow[], q: string, sort: FleetSort, desc: boolean, now = Date.now()): FleetView {
  const dir = desc ? "desc" : "asc";
  let online = 0, revoked = 0;
  const out = rows.map((r) => {
    if (r.revoked_at) revoked++;
    else if (r.online) online++;
    return fleetRowView(r, now);
  });
  return {
    rows: out,
    columns: COLUMNS.map((c) => {
      const active = c.key === sort;
      const nextDir = active && !desc ? "desc" : "asc";
      return { label: c.label, key: c.key, active, arrow: active ? (desc ? "▼" : "▲") : "", href: `/hosts?${qs({ q, sort: c.key, dir: nextDir })}` };
    }),
    q, sort, dir,
    selfUrl: `/hosts?${qs({ q, sort, dir })}`,
    total: rows.length, online, offline: rows.length - online - revoked, revoked,
  };
}

export function parseFleetQuery(req: ConsoleRequest): { q: string; sort: FleetSort; desc: boolean } {
  const sortRaw = req.query.get("sort") ?? "hostname";
  const sort = (FLEET_SORTS as readonly string[]).includes(sortRaw) ? (sortRaw as FleetSort) : "hostname";
  return { q: (req.query.get("q") ?? "").trim().slice(0, 100), sort, desc: req.query.get("dir") === "desc" };
}

export function fleetRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  return [
    {
      method: "GET", path: "/hosts", access: "hosts.view",
      async handler(req) {
        const { q, sort, desc } = parseFleetQuery(req);
        const rows = await fleetOverview(s.sql, { search: q, sort, desc, scopeTags: req.grants!.scopeTags });
        const view = fleetView(rows, q, sort, desc);
        if (req.htmx.request && req.htmx.target === "fleet-table") return pages.partial("partials/fleet-table", view);
        return pages.page(req, "pages/fleet", "Fleet", { ...view, canEnroll: req.grants!.permissions.has("agents.enroll") });
      },
    },
  ];
}
