/**
 * The audit trail: `audit(sql, event)` appends one hash-chained record. Any feature may call it.
 * Each record's hash is SHA-256 over the previous hash and a canonical encoding of its fields,
 * so changing, removing or reordering a row breaks the chain (`verifyAuditChain`).
 * Appends are serialized by an advisory lock held for the inserting transaction only.
 */
import type { Sql } from "postgres";
import { createHash } from "node:crypto";

export const AUDIT_CATEGORIES = [
  "authentication",
  "user_management",
  "config_change",
  "service_operation",
  "file_operation",
  "security_event",
  "ai_operation",
] as const;
export type AuditCategory = (typeof AUDIT_CATEGORIES)[number];
export type ActorType = "user" | "agent" | "ai" | "system" | "anonymous";

export interface AuditEvent {
  actor: { type: ActorType; id?: string | number; name?: string; onBehalfOf?: string };
  ip?: string;
  userAgent?: string;
  category: AuditCategory;
  action: string;
  target?: string;
  success: boolean;
  details?: Record<string, unknown>;
}

export interface AuditRecord {
  id: number;
  ts: Date;
  actor_type: ActorType;
  actor_id: string;
  actor_name: string;
  on_behalf_of: string;
  ip: string;
  user_agent: string;
  category: AuditCategory;
  action: string;
  target: string;
  success: boolean;
  details: Record<string, unknown>;
  prev_hash: Uint8Array;
  hash: Uint8Array;
}

const LOCK_ID = 0x5e7a0d17;
export const GENESIS = new Uint8Array(32);

/** Keys sorted at every level, so the same details always encode the same. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
}

type Hashable = Omit<AuditRecord, "id" | "prev_hash" | "hash">;

export function recordHash(prev: Uint8Array, id: number, r: Hashable): Uint8Array {
  const body = canonicalJson([
    id, r.ts.toISOString(), r.actor_type, r.actor_id, r.actor_name, r.on_behalf_of, r.ip, r.user_agent,
    r.category, r.action, r.target, r.success, r.details,
  ]);
  return createHash("sha256").update(prev).update(body).digest();
}

/** Optional listener (syslog forwarding); errors there never fail the audited action. */
export type AuditListener = (rec: AuditRecord) => void;
const listeners = new Set<AuditListener>();
export function onAudit(l: AuditListener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/**
 * Appends one record and returns it. Never pass secrets in `details`. `sql` may be a pool or a
 * transaction (then the record commits or rolls back with it, and the chain lock is held until
 * that transaction ends).
 */
export async function audit(sql: Sql, e: AuditEvent): Promise<AuditRecord> {
  const inTx = typeof (sql as { begin?: unknown }).begin !== "function";
  const scope = inTx
    ? (fn: (tx: Sql) => Promise<AuditRecord>) => (sql as unknown as { savepoint(f: (tx: Sql) => Promise<AuditRecord>): Promise<AuditRecord> }).savepoint(fn)
    : (fn: (tx: Sql) => Promise<AuditRecord>) => sql.begin(fn as never) as unknown as Promise<AuditRecord>;
  const rec = await scope(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_ID})`;
    const [last] = await tx`select id, hash from audit_log order by id desc limit 1`;
    const [{ id }] = await tx`select nextval(pg_get_serial_sequence('audit_log', 'id'))::bigint as id`;
    const prev: Uint8Array = last ? last.hash : (await tx`select prev_hash from audit_anchor where id = 1`)[0]!.prev_hash;
    // Millisecond precision, so the JavaScript Date and the stored value hash the same.
    const ts = new Date();
    const r: Hashable = {
      ts,
      actor_type: e.actor.type,
      actor_id: e.actor.id === undefined ? "" : String(e.actor.id),
      actor_name: e.actor.name ?? "",
      on_behalf_of: e.actor.onBehalfOf ?? "",
      ip: e.ip ?? "",
      user_agent: (e.userAgent ?? "").slice(0, 512),
      category: e.category,
      action: e.action,
      target: e.target ?? "",
      success: e.success,
      details: (JSON.parse(canonicalJson(e.details ?? {})) as Record<string, unknown>),
    };
    const hash = recordHash(prev, Number(id), r);
    await tx`insert into audit_log (id, ts, actor_type, actor_id, actor_name, on_behalf_of, ip, user_agent,
        category, action, target, success, details, prev_hash, hash)
      overriding system value
      values (${id}, ${r.ts}, ${r.actor_type}, ${r.actor_id}, ${r.actor_name}, ${r.on_behalf_of}, ${r.ip},
        ${r.user_agent}, ${r.category}, ${r.action}, ${r.target}, ${r.success}, ${tx.json(r.details as never)},
        ${prev}, ${hash})`;
    return { ...r, id: Number(id), prev_hash: prev, hash } as AuditRecord;
  });
  // inside a caller's transaction the record may still roll back: listeners hear only committed ones
  if (inTx) return rec;
  for (const l of listeners) {
    try {
      l(rec);
    } catch {
      // a broken forwarder must not fail the action being audited
    }
  }
  return rec;
}

export interface ChainReport {
  ok: boolean;
  checked: number;
  firstId: number | null;
  lastId: number | null;
  /** The first record whose hash or link does not match, with what is wrong. */
  brokenAt?: { id: number; reason: string };
}

/** Re-computes every hash from the anchor forward, streaming in pages. */
export async function verifyAuditChain(sql: Sql, pageSize = 5000): Promise<ChainReport> {
  const [anchor] = await sql`select first_id, prev_hash from audit_anchor where id = 1`;
  let prev: Uint8Array = anchor!.prev_hash;
  let after = 0;
  let checked = 0;
  let firstId: number | null = null;
  let lastId: number | null = null;
  for (;;) {
    const rows = await sql<AuditRecord[]>`select * from audit_log where id > ${after} order by id limit ${pageSize}`;
    if (rows.length === 0) break;
    for (const row of rows) {
      const id = Number(row.id);
      if (firstId === null) {
        firstId = id;
        if (id < Number(anchor!.first_id)) return { ok: false, checked, firstId, lastId, brokenAt: { id, reason: "row older than the retention anchor" } };
      }
      if (Buffer.compare(Buffer.from(row.prev_hash), Buffer.from(prev)) !== 0) {
        return { ok: false, checked, firstId, lastId, brokenAt: { id, reason: "link to the previous record does not match" } };
      }
      const h = recordHash(prev, id, { ...row, ts: new Date(row.ts) });
      if (Buffer.compare(Buffer.from(row.hash), Buffer.from(h)) !== 0) {
        return { ok: false, checked, firstId, lastId, brokenAt: { id, reason: "record content does not match its hash" } };
      }
      prev = row.hash;
      lastId = id;
      checked++;
    }
    after = lastId!;
  }
  return { ok: true, checked, firstId, lastId };
}
