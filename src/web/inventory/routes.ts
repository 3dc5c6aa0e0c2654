/**
 * Fleet inventory: which hosts have package X (with a version constraint), port Y listening,
 * user Z, pending security updates; as a page, an htmx partial (#inventory-results) or CSV. And
 * one host's package list filtered by name on the server. Both read through the caller's host
 * scope for inventory.view (src/inventory/queries.ts), so an out-of-scope host is never named.
 * The same search as JSON: GET /api/inventory (API tokens with inventory.view).
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { json, securityHeaders, type Pages } from "../respond.ts";
import { hostPackages, MAX_HOSTS, searchInventory, type InventoryResult } from "../../inventory/queries.ts";
import { KINDS, MAX_QUERY, parseInventoryQuery, type Kind } from "../../inventory/query-parse.ts";
import type { ScopedHost } from "../../store/postgres/queries-console.ts";
import type { Sql } from "postgres";

/** Matches listed per host on the inventory page; the rest are counted ("and N more") and in the CSV. */
export const ITEMS_SHOWN = 20;

/** Packages shown at once on a host page; the line above the table says how many matched. */
export const PACKAGE_PAGE = 500;

const PLACEHOLDER: Record<Kind, string> = {
  package: "nginx >= 1.22, openssl < 3.0.11, linux-image-*",
  port: "443, 53/udp, 127.0.0.1:5432",
  user: "postgres",
  updates: "optional: a package among the security updates",
};

function csvCell(v: string): string {
  const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v; // never a formula in a spreadsheet
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function inventoryCsv(r: InventoryResult): string {
  const lines = ["host_id,hostname,os,match"];
  for (const h of r.hosts) for (const item of h.items) lines.push([String(h.id), h.hostname, h.os, item].map(csvCell).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

function qs(p: Record<string, string>): string {
  return new URLSearchParams(Object.entries(p).filter(([, v]) => v !== "")).toString();
}

/** The view model of one host's package list (the partial partials/host-packages-table). */
export async function packagesView(sql: Sql, host: ScopedHost, search: string) {
  const page = await hostPackages(sql, host, { search, limit: PACKAGE_PAGE });
  return {
    id: host.id, q: search, rows: page.rows, shown: page.rows.length, matched: page.matched, total: page.total,
    cut: page.rows.length < page.matched,
  };
}

export function inventoryRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  return [
    {
      method: "GET", path: "/api/inventory", access: "inventory.view", hostData: "fleet",
      doc: {
        summary: "Which hosts in scope have a package (with a version constraint), a listening port, a user, pending security updates",
        query: {
          kind: "package (default), port, user or updates",
          q: `package: nginx, nginx >= 1.22, linux-image-*; port: 443, 53/udp, 127.0.0.1:5432; user: postgres; updates: optional package name (at most ${MAX_QUERY} characters)`,
        },
      },
      async handler(req) {
        const kind = req.query.get("kind") ?? "package";
        const q = req.query.get("q") ?? "";
        const parsed = parseInventoryQuery(kind, q);
        if (!parsed.ok) return json({ error: { code: "bad_request", message: parsed.problem } }, 400);
        const r = await searchInventory(sql, req.scope, parsed.query);
        return json({
          kind: parsed.query.kind, query: parsed.query, hosts_with_inventory: r.hostsWithInventory, items: r.items,
          truncated: r.hosts.length >= MAX_HOSTS,
          hosts: r.hosts.map((h) => ({ id: h.id, hostname: h.hostname, os: h.os, package_format: h.format, matches: h.items })),
        });
      },
    },
    {
      method: "GET", path: "/inventory", access: "inventory.view", hostData: "fleet",
      async handler(req) {
        const kindRaw = req.query.get("kind") ?? "package";
        const q = req.query.get("q") ?? "";
        const csv = req.query.get("format") === "csv";
        const kind = (KINDS as readonly string[]).includes(kindRaw) ? (kindRaw as Kind) : "package";
        const form = {
          kind, q: q.slice(0, MAX_QUERY), maxQuery: MAX_QUERY, placeholder: PLACEHOLDER[kind],
          kinds: KINDS.map((k) => ({ k, label: { package: "Package", port: "Listening port", user: "User", updates: "Pending security updates" }[k], selected: k === kind })),
        };
        const asked = req.query.has("q") || kindRaw === "updates";
        let view: Record<string, unknown> = { asked: false };
        let status = 200;
        if (asked) {
          const parsed = parseInventoryQuery(kindRaw, q);
          if (!parsed.ok) {
            status = 400;
            if (csv) return new Response(`${parsed.problem}\n`, { status, headers: securityHeaders(new Headers({ "content-type": "text/plain; charset=utf-8" })) });
            view = { asked: true, problem: parsed.problem };
          } else {
            const t0 = performance.now();
            // the page lists the first ITEMS_SHOWN matches a host (with the count); the CSV all of them
            const r = await searchInventory(sql, req.scope, parsed.query, csv ? {} : { itemsPerHost: ITEMS_SHOWN });
            if (csv) {
              return new Response(inventoryCsv(r), {
                headers: securityHeaders(new Headers({ "content-type": "text/csv; charset=utf-8", "content-disposition": `attachment; filename="inventory-${kind}.csv"` })),
              });
            }
            view = {
              asked: true, problem: "",
              // a broad glob can match dozens of packages per host: the page lists the first ones (the CSV has all)
              hosts: r.hosts.map((h) => ({ ...h, os: h.os || "–", items: h.items.slice(0, ITEMS_SHOWN), more: Math.max(0, h.count - ITEMS_SHOWN) })),
              count: r.hosts.length, of: r.hostsWithInventory, items: r.items,
              itemLabel: { package: "matching packages", port: "listening sockets", user: "accounts", updates: "pending security updates" }[kind],
              constraint: parsed.query.kind === "package" && parsed.query.op ? `${parsed.query.op} ${parsed.query.version}` : "",
              ms: (performance.now() - t0).toFixed(0),
              csvUrl: `/inventory?${qs({ kind, q, format: "csv" })}`,
            };
          }
        }
        const data = { ...form, ...view };
        if (req.htmx.request && req.htmx.target === "inventory-results") return pages.partial("partials/inventory-results", data, status);
        return pages.page(req, "pages/inventory", "Inventory", data, status);
      },
    },
    {
      method: "GET", path: "/hosts/:id/packages", access: "inventory.view", hostData: "host",
      async handler(req) {
        const raw = req.query.get("q") ?? "";
        const problem = raw.length > 128 ? `The search is ${raw.length} characters long; at most 128.` : "";
        if (problem) return pages.partial("partials/host-packages-table", { id: req.host!.id, problem }, 400);
        return pages.partial("partials/host-packages-table", await packagesView(sql, req.host!, raw.trim()));
      },
    },
  ];
}
