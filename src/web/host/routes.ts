/**
 * Host detail: status header, metric charts over a selectable range (interactive, src/web/chart/),
 * live logs with search (a partial polling for itself), inventory and the agent's processes.
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import { can, scopeFor } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import type { Pages } from "../respond.ts";
import { hostLogs, inventory, seriesNames, setAgentTags } from "../../store/postgres/queries-console.ts";
import { TAG_RE } from "../../auth/roles.ts";
import { auditRequest } from "../audit-request.ts";
import { done } from "../respond.ts";
import { CHART_RANGES, DEFAULT_RANGE, HOST_CHARTS } from "../chart/data.ts";
import { ago, isoMinute, isoSecond } from "../format.ts";
import { toSections } from "./structured-view.ts";
import { dangerForm } from "../danger-form.ts";
import { packagesView } from "../inventory/routes.ts";

export const RANGES: Record<string, number> = {
  "15m": 15 * 60_000, "1h": 3600_000, "6h": 6 * 3600_000, "24h": 86400_000, "7d": 7 * 86400_000, "30d": 30 * 86400_000,
};

const SEVERITY = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

/** The distribution the inventory names ("Debian GNU/Linux 12 (bookworm)"), or "". */
function osNameOf(data: unknown): string {
  const os = (data as { os?: Record<string, unknown> } | null | undefined)?.os;
  if (!os || typeof os !== "object") return "";
  return String(os.prettyName || [os.name, os.version].filter(Boolean).join(" ") || "");
}

/** The document without its package list: the page shows packages searchable on the server (partials/host-packages). */
function withoutPackages(data: unknown): unknown {
  if (!data || typeof data !== "object" || Array.isArray(data)) return data;
  const { packages: _, ...rest } = data as Record<string, unknown>;
  return rest;
}

export function hostRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  return [
    {
      method: "GET", path: "/hosts/:id", access: "hosts.view", hostData: "host",
      async handler(req) {
        const a = req.host!;
        const range = CHART_RANGES[req.query.get("range") ?? ""] ? req.query.get("range")! : DEFAULT_RANGE;
        const inv = can(req, "inventory.view", a) ? await inventory(sql, a) : undefined;
        const status = a.status as Record<string, unknown>;
        return pages.page(req, "pages/host", a.hostname, {
          canAlerts: can(req, "alerts.view"),
          a,
          state: a.revoked_at ? "revoked" : a.online ? "online" : "offline",
          lastSeen: ago(a.last_seen),
          lastSeenIso: a.last_seen ? new Date(a.last_seen).toISOString() : "",
          enrolled: isoMinute(a.enrolled_at),
          range,
          canMetrics: can(req, "metrics.view", a),
          canLogs: can(req, "logs.view", a),
          canSecurity: can(req, "compliance.view", a),
          canFiles: can(req, "files.view", a),
          canInventory: can(req, "inventory.view", a),
          canProcesses: can(req, "processes.view", a),
          canServices: can(req, "services.view", a) && !a.revoked_at,
          canRevoke: can(req, "agents.revoke", a) && !a.revoked_at,
          canTag: can(req, "hosts.edit", a),
          tagText: a.tags.join(", "),
          tagsSaved: req.query.get("saved") === "tags",
          osName: osNameOf(inv?.data),
          revokeForm: dangerForm(pages, {
            id: "revoke-agent", action: `/agents/${a.id}/revoke`, phrase: a.hostname, button: "Revoke agent", csrf: req.csrf,
            description: "The agent is refused from now on: its frames are rejected and it must be enrolled again.",
          }),
          inventoryAt: inv ? isoMinute(inv.collected_at) : "",
          inventory: inv ? toSections(withoutPackages(inv.data), "System") : [],
          packages: inv ? await packagesView(sql, a, "") : null,
          processes: toSections(status?.processes ?? status, "Processes"),
        });
      },
    },
    {
      method: "POST", path: "/hosts/:id/tags", access: "hosts.edit", hostData: "host",
      async handler(req) {
        const a = req.host!;
        const tags = [...new Set((req.form.get("tags") ?? "").split(/[\s,]+/).map((t) => t.trim()).filter(Boolean))];
        const bad = tags.filter((t) => !TAG_RE.test(t));
        if (bad.length) return pages.formErrors(req, [`Bad tags: ${bad.join(", ")}. Tags are 1-64 letters, digits and : . _ = - (e.g. env=prod, group:web).`]);
        if (tags.length > 32) return pages.formErrors(req, [`${tags.length} tags; at most 32.`]);
        // tags decide which roles reach a host: a scoped editor changes only tags within its
        // hosts.edit scope, and never brings the host into its own scope of another permission
        const changed = [...tags.filter((t) => !a.tags.includes(t)), ...a.tags.filter((t) => !tags.includes(t))];
        const outside = changed.filter((t) => !req.scope.coversGroup(t));
        const gained = [...req.grants!.permissions].filter((p) => !scopeFor(req, p).covers(a.tags) && scopeFor(req, p).covers(tags)).sort();
        if (outside.length || gained.length) {
          const message = outside.length
            ? `You cannot add or remove the tags ${outside.join(", ")}: they lie outside your host scope for hosts.edit.`
            : `You cannot give ${a.hostname} these tags: they would bring it into your host scope for ${gained.join(", ")}, which you do not hold on it.`;
          await auditRequest(sql, req, "security_event", "access.denied", `${req.method} ${req.url.pathname}`, false, { action: "hosts.tags", before: a.tags, after: tags, outside, gained });
          return pages.formErrors(req, [message], 403);
        }
        await setAgentTags(sql, a, tags);
        await auditRequest(sql, req, "config_change", "hosts.tags", `${a.hostname} (agent ${a.id})`, true, { before: a.tags, after: tags });
        return done(req, `/hosts/${a.id}?saved=tags`);
      },
    },
    {
      // the charts panel; assets/charts.js draws it from /api/hosts/:id/charts (src/web/chart/)
      method: "GET", path: "/hosts/:id/charts", access: "metrics.view", hostData: "host",
      async handler(req) {
        const a = req.host!;
        const key = CHART_RANGES[req.query.get("range") ?? ""] ? req.query.get("range")! : DEFAULT_RANGE;
        const names = await seriesNames(sql, a);
        return pages.partial("partials/host-charts", {
          range: key, id: a.id, empty: !HOST_CHARTS.some((c) => c.pick(names).length > 0), offline: !a.online,
          ranges: Object.keys(CHART_RANGES).map((r) => ({ r, active: r === key })),
        });
      },
    },
    {
      method: "GET", path: "/hosts/:id/logs", access: "logs.view", hostData: "host",
      async handler(req) {
        const a = req.host!;
        const q = (req.query.get("q") ?? "").trim().slice(0, 200);
        const sevRaw = req.query.get("severity") ?? "";
        const sev = /^[0-7]$/.test(sevRaw) ? Number(sevRaw) : undefined;
        const range = RANGES[req.query.get("range") ?? ""] ?? RANGES["24h"]!;
        const rows = await hostLogs(sql, a, { search: q, minSeverity: sev, since: new Date(Date.now() - range), limit: 200 });
        return pages.partial(req.htmx.target === "logs-table" ? "partials/host-logs-table" : "partials/host-logs", {
          id: a.id, q, severity: sevRaw,
          severities: SEVERITY.map((name, i) => ({ i: String(i), name: i === 0 ? `${name} only` : `${name} or more severe`, selected: String(i) === sevRaw })),
          rows: rows.map((r) => ({ ts: isoSecond(r.ts), sev: SEVERITY[r.severity] ?? String(r.severity), sevClass: r.severity <= 3 ? "crit" : r.severity === 4 ? "warn" : "info", source: r.source, message: r.message })),
          pollUrl: `/hosts/${a.id}/logs?${new URLSearchParams({ q, severity: sevRaw }).toString()}`,
        });
      },
    },
  ];
}
