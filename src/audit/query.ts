/** Reading the audit trail: filtered pages for the console and streamed exports of any size. */
import type { Sql } from "postgres";
import type { AuditCategory, AuditRecord } from "./audit.ts";

export interface AuditFilter {
  category?: AuditCategory;
  action?: string;
  user?: string;
  status?: "success" | "failure";
  from?: Date;
  to?: Date;
}

/** Rows newest first, keyset-paged by id (`beforeId`), filtered with parameters only. */
/** The filter's conditions, each `and ...`, for after a `where`. */
function filterSql(sql: Sql, f: AuditFilter) {
  return sql`
    ${f.category ? sql`and category = ${f.category}` : sql``}
    ${f.action ? sql`and action ilike ${likePattern(f.action)}` : sql``}
    ${f.user ? sql`and (actor_name ilike ${likePattern(f.user)} or on_behalf_of ilike ${likePattern(f.user)})` : sql``}
    ${f.status ? sql`and success = ${f.status === "success"}` : sql``}
    ${f.from ? sql`and ts >= ${f.from}` : sql``}
    ${f.to ? sql`and ts < ${f.to}` : sql``}`;
}

export async function listAudit(sql: Sql, f: AuditFilter, limit: number, beforeId?: number): Promise<AuditRecord[]> {
  return sql<AuditRecord[]>`
    select * from audit_log
    where true ${filterSql(sql, f)}
      ${beforeId ? sql`and id < ${beforeId}` : sql``}
    order by id desc
    limit ${limit}`;
}

function likePattern(s: string): string {
  return `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

const CSV_COLUMNS = ["id", "ts", "actor_type", "actor_id", "actor_name", "on_behalf_of", "ip", "user_agent",
  "category", "action", "target", "success", "details", "hash"] as const;

function csvCell(v: string): string {
  // Leading = + - @ would be formulas in a spreadsheet: prefix a quote (OWASP CSV injection).
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function flat(r: AuditRecord): Record<(typeof CSV_COLUMNS)[number], string> {
  return {
    id: String(r.id),
    ts: new Date(r.ts).toISOString(),
    actor_type: r.actor_type,
    actor_id: r.actor_id,
    actor_name: r.actor_name,
    on_behalf_of: r.on_behalf_of,
    ip: r.ip,
    user_agent: r.user_agent,
    category: r.category,
    action: r.action,
    target: r.target,
    success: String(r.success),
    details: JSON.stringify(r.details),
    hash: Buffer.from(r.hash).toString("hex"),
  };
}

export function csvLine(r: AuditRecord): string {
  const f = flat(r);
  return CSV_COLUMNS.map((c) => csvCell(f[c])).join(",") + "\r\n";
}

export function ndjsonLine(r: AuditRecord): string {
  const f = flat(r);
  return JSON.stringify({ ...f, id: Number(r.id), success: r.success, details: r.details }) + "\n";
}

/**
 * A byte stream of the whole filtered trail, oldest first, fetched 1,000 rows at a time as the
 * client reads (backpressure through `pull`), so memory stays flat for any size.
 */
export function exportAudit(sql: Sql, f: AuditFilter, format: "csv" | "ndjson"): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let after = 0;
  let started = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        if (format === "csv") controller.enqueue(enc.encode(CSV_COLUMNS.join(",") + "\r\n"));
      }
      const rows = await sql<AuditRecord[]>`
        select * from audit_log
        where id > ${after} ${filterSql(sql, f)}
        order by id limit 1000`;
      if (rows.length === 0) {
        controller.close();
        return;
      }
      after = Number(rows[rows.length - 1]!.id);
      controller.enqueue(enc.encode(rows.map(format === "csv" ? csvLine : ndjsonLine).join("")));
    },
  }, { highWaterMark: 1 });
}
