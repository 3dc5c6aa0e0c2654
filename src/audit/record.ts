/**
 * The audit record and how it is hashed. One canonical body per record (its id and every field,
 * keys sorted) is linked to the record before it in two ways:
 *   alg 0 (legacy, rows written before migration 410): hash = SHA-256(prev || body)
 *   alg 1 (keyed):                                     hash = HMAC-SHA256(key, prev || body)
 * Checkpoints carry a plain digest of their segment, sha256 of the concatenated
 * sha256(prev_hash || body) of each record, so that without the HMAC key an offline verifier can
 * still tell whether any checkpointed record was changed.
 */
import { createHash, createHmac } from "node:crypto";

export const AUDIT_CATEGORIES = [
  "authentication",
  "user_management",
  "config_change",
  "service_operation",
  "file_operation",
  "security_event",
  "ai_operation",
  "backup",
] as const;
export type AuditCategory = (typeof AUDIT_CATEGORIES)[number];
export type ActorType = "user" | "agent" | "ai" | "system" | "anonymous";

export const ALG_SHA256 = 0;
export const ALG_HMAC_SHA256 = 1;

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
  alg: number;
  prev_hash: Uint8Array;
  hash: Uint8Array;
}

export type Hashable = Omit<AuditRecord, "id" | "prev_hash" | "hash" | "alg">;

/** Keys sorted at every level, so the same details always encode the same. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
}

export function recordBody(id: number, r: Hashable): string {
  return canonicalJson([
    id, new Date(r.ts).toISOString(), r.actor_type, r.actor_id, r.actor_name, r.on_behalf_of, r.ip, r.user_agent,
    r.category, r.action, r.target, r.success, r.details,
  ]);
}

/** The legacy, unkeyed link (alg 0). */
export function recordHash(prev: Uint8Array, id: number, r: Hashable): Uint8Array {
  return createHash("sha256").update(prev).update(recordBody(id, r)).digest();
}

/** The keyed link (alg 1). */
export function recordMac(key: Uint8Array, prev: Uint8Array, id: number, r: Hashable): Uint8Array {
  return createHmac("sha256", key).update(prev).update(recordBody(id, r)).digest();
}

/** Accumulates the plain digest of a checkpoint segment, one record at a time, in id order. */
export function segmentDigest() {
  const h = createHash("sha256");
  return {
    add(id: number, prev: Uint8Array, r: Hashable) {
      h.update(createHash("sha256").update(prev).update(recordBody(id, r)).digest());
    },
    digest: () => h.digest(),
  };
}

export const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
