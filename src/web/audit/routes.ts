/**
 * Audit log: filtered list (newest first, "load more" by keyset), streamed CSV/NDJSON export,
 * the full chain export for offline verification, chain verify, and the retention purge.
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { securityHeaders, type Pages } from "../respond.ts";
import { exportAudit, listAudit, type AuditFilter } from "../../audit/query.ts";
import { AUDIT_CATEGORIES, verifyAuditChain, type AuditCategory } from "../../audit/audit.ts";
import { exportChain } from "../../audit/chain-export.ts";
import { purgeAudit } from "../../audit/retention.ts";
import { auditRequest } from "../audit-request.ts";
import { isoSecond } from "../format.ts";
import { dangerForm } from "../danger-form.ts";

const PAGE = 100;
export const PURGE_PHRASE = "purge audit records";

/** Parses the filter form; returns problems for values that are not understood. */
export function parseAuditFilter(q: URLSearchParams): { filter: AuditFilter; problems: string[]; raw: Record<string, string> } {
  const problems: string[] = [];
  const raw = {
    category: q.get("category") ?? "",
    action: (q.get("action") ?? "").trim().slice(0, 100),
    user: (q.get("user") ?? "").trim().slice(0, 100),
    status: q.get("status") ?? "",
    from: q.get("from") ?? "",
    to: q.get("to") ?? "",
  };
  const date = (s: string, name: string): Date | undefined => {
    if (!s) return undefined;
    const d = new Date(/Z|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`);
    if (Number.isNaN(d.getTime())) {
      problems.push(`"${s}" is not a date and time for ${name} (use YYYY-MM-DDTHH:MM, UTC).`);
      return undefined;
    }
    return d;
  };
  if (raw.status && raw.status !== "success" && raw.status !== "failure") problems.push("Status is success or failure.");
  const category = (AUDIT_CATEGORIES as readonly string[]).includes(raw.category) ? (raw.category as AuditCategory) : undefined;
  if (raw.category && !category) problems.push(`Category is one of: ${AUDIT_CATEGORIES.join(", ")}.`);
  const filter: AuditFilter = {
    category,
    action: raw.action || undefined,
    user: raw.user || undefined,
    status: raw.status === "success" || raw.status === "failure" ? raw.status : undefined,
    from: date(raw.from, "From"),
    to: date(raw.to, "To"),
  };
  return { filter, problems, raw };
}

function rowsView(rows: Awaited<ReturnType<typeof listAudit>>) {
  return rows.map((r) => ({
    id: Number(r.id), ts: isoSecond(r.ts), actor: r.actor_name || r.actor_type, actorType: r.actor_type, onBehalfOf: r.on_behalf_of,
    ip: r.ip, ua: r.user_agent,
    category: r.category.replace("_", " "), action: r.action, target: r.target, success: r.success,
    details: Object.keys(r.details).length ? JSON.stringify(r.details) : "",
  }));
}

export function auditRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  async function list(req: ConsoleRequest) {
    const { filter, problems, raw } = parseAuditFilter(req.query);
    const before = Number(req.query.get("before") ?? 0) || undefined;
    const rows = problems.length ? [] : await listAudit(sql, filter, PAGE, before);
    const qs = new URLSearchParams(Object.entries(raw).filter(([, v]) => v)).toString();
    const last = rows[rows.length - 1];
    return {
      raw, problems, qs, canExport: can(req, "audit.export"),
      rows: rowsView(rows),
      more: rows.length === PAGE && last ? `/audit?${qs ? `${qs}&` : ""}before=${Number(last.id)}` : "",
    };
  }

  return [
    {
      method: "GET", path: "/audit", access: "audit.view",
      async handler(req) {
        const v = await list(req);
        if (req.htmx.request && req.htmx.target === "audit-more") return pages.partial("partials/audit-rows", v);
        if (req.htmx.request && req.htmx.target === "audit-table") return pages.partial("partials/audit-table", v);
        return pages.page(req, "pages/audit", "Audit log", {
          ...v, canVerify: can(req, "audit.verify"), canPurge: can(req, "audit.purge"),
          purgeForm: can(req, "audit.purge") ? dangerForm(pages, {
            id: "audit-purge", action: "/audit/purge", phrase: PURGE_PHRASE, button: "Purge expired records", csrf: req.csrf,
            description: "Deletes now only the records older than the audit retention setting (at least 30 days), as the hourly job does. The purge is itself recorded.",
          }) : "",
          categories: [{ v: "", l: "Any category", selected: !v.raw.category },
            ...AUDIT_CATEGORIES.map((c) => ({ v: c, l: c.replace("_", " "), selected: c === v.raw.category }))],
          statuses: [{ v: "", l: "Any status" }, { v: "success", l: "Success" }, { v: "failure", l: "Failure" }].map((o) => ({ ...o, selected: o.v === v.raw.status })),
        });
      },
    },
    ...(["csv", "ndjson"] as const).map((format): ConsoleRoute => ({
      method: "GET", path: `/audit/export.${format}`, access: "audit.export",
      async handler(req) {
        const { filter, problems } = parseAuditFilter(req.query);
        if (problems.length) return pages.formErrors(req, problems, 400);
        await auditRequest(sql, req, "security_event", "audit.export", `audit_log.${format}`, true, { filter: Object.fromEntries(req.query) });
        const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
        return new Response(exportAudit(sql, filter, format), {
          headers: securityHeaders(new Headers({
            "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson",
            "content-disposition": `attachment; filename="servermind-audit-${stamp}.${format}"`,
          })),
        });
      },
    })),
    {
      // every record and checkpoint, for `audit:verify --export FILE --public-key FILE` offline
      method: "GET", path: "/audit/export.chain.ndjson", access: "audit.export",
      async handler(req) {
        await auditRequest(sql, req, "security_event", "audit.export", "audit_log.chain", true);
        const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
        return new Response(exportChain(sql), {
          headers: securityHeaders(new Headers({
            "content-type": "application/x-ndjson",
            "content-disposition": `attachment; filename="servermind-audit-chain-${stamp}.ndjson"`,
          })),
        });
      },
    },
    {
      // only what is older than the retention setting (never under 30 days): the database's
      // audit_purge_by_retention() decides, this route only asks now instead of at the next hour
      method: "POST", path: "/audit/purge", access: "audit.purge", dangerous: { phrase: () => PURGE_PHRASE },
      async handler(req) {
        const user = req.user!;
        const deleted = await purgeAudit(sql, {
          actor: { type: "user", id: user.id, name: user.username }, ip: req.ip, userAgent: req.userAgent,
          details: { dangerous: true, confirmed: true, reauth: req.reauth },
        });
        return pages.partial("partials/audit-purged", { deleted });
      },
    },
    {
      method: "POST", path: "/audit/verify", access: "audit.verify",
      async handler(req) {
        const r = await verifyAuditChain(sql);
        await auditRequest(sql, req, "security_event", "audit.verify", "audit_log", r.ok, { checked: r.checked, broken_at: r.brokenAt?.id });
        return pages.partial("partials/audit-verify", { ...r, reason: r.brokenAt?.reason ?? "", at: r.brokenAt?.id ?? "" });
      },
    },
  ];
}
