/**
 * The audit trail: `audit(sql, event)` appends one chained record. Any feature may call it.
 * Each record's hash is HMAC-SHA256, under a key kept outside PostgreSQL (./keys.ts), over the
 * previous hash and a canonical encoding of its fields (./record.ts), so changing, removing or
 * reordering a row breaks the chain, and re-computing it takes the key. Every
 * SERVERMIND_AUDIT_CHECKPOINT_EVERY records a signed checkpoint pins the head (./checkpoint.ts).
 * Appends are serialized by an advisory lock held for the inserting transaction only.
 */
import type { Sql } from "postgres";
import { ALG_HMAC_SHA256, canonicalJson, recordMac, type ActorType, type AuditCategory, type AuditRecord, type Hashable } from "./record.ts";
import { auditKeys } from "./keys.ts";
import { APPEND_LOCK_ID, checkpointInTx, logCheckpoint, type Checkpoint } from "./checkpoint.ts";

export { AUDIT_CATEGORIES, canonicalJson, recordHash, recordMac, type ActorType, type AuditCategory, type AuditRecord } from "./record.ts";
export { verifyAuditChain, type ChainReport } from "./verify.ts";

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

export const GENESIS = new Uint8Array(32);

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
  let checkpoint: Checkpoint | null = null;
  const rec = await scope(async (tx) => {
    await tx`select pg_advisory_xact_lock(${APPEND_LOCK_ID})`;
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
    const hash = recordMac(auditKeys().hmacKey, prev, Number(id), r);
    await tx`insert into audit_log (id, ts, actor_type, actor_id, actor_name, on_behalf_of, ip, user_agent,
        category, action, target, success, details, alg, prev_hash, hash)
      overriding system value
      values (${id}, ${r.ts}, ${r.actor_type}, ${r.actor_id}, ${r.actor_name}, ${r.on_behalf_of}, ${r.ip},
        ${r.user_agent}, ${r.category}, ${r.action}, ${r.target}, ${r.success}, ${tx.json(r.details as never)},
        ${ALG_HMAC_SHA256}, ${prev}, ${hash})`;
    // inside a caller's transaction the checkpoint waits for a later append or the timer
    checkpoint = inTx ? null : await checkpointInTx(tx, Number(id));
    return { ...r, id: Number(id), alg: ALG_HMAC_SHA256, prev_hash: prev, hash } as AuditRecord;
  });
  if (checkpoint) logCheckpoint(checkpoint);
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
