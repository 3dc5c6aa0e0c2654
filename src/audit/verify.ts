/**
 * Verifying the audit chain, online (from the database, with the HMAC key) or offline (from a
 * chain export, with only the checkpoint public key). One streaming checker serves both: records
 * go through it in id order after the checkpoints are loaded.
 *
 * What is checked, and by whom:
 *   - every record links to the one before it (prev_hash), the first to the retention anchor;
 *   - legacy (alg 0) records: their plain SHA-256 is recomputed;
 *   - keyed (alg 1) records: their HMAC is recomputed, when the HMAC key is at hand (online, or
 *     offline with --hmac-key); no alg 0 record may follow the start of the keyed chain;
 *   - every checkpoint's Ed25519 signature; that checkpoints follow each other (from_seq);
 *   - the record a checkpoint names exists and carries the signed mac, and the records of its
 *     segment still hash to the signed digest (this needs no HMAC key);
 *   - no checkpoint names a record past the end of the chain (a deleted tail);
 *   - a checkpointed record missing before the first kept one was older than the shortest
 *     retention (30 days) when verified, as a retention purge requires (a deleted head).
 * Not detectable: removal of records newer than the last checkpoint (at most
 * SERVERMIND_AUDIT_CHECKPOINT_EVERY records / SERVERMIND_AUDIT_CHECKPOINT_SECONDS), and, offline
 * without the HMAC key, a change to such unpinned records.
 */
import type { Sql } from "postgres";
import { existsSync, readFileSync } from "node:fs";
import type { KeyObject } from "node:crypto";
import { ALG_HMAC_SHA256, ALG_SHA256, recordHash, recordMac, sameBytes, segmentDigest, type AuditRecord } from "./record.ts";
import { checkpointFromJson, verifyCheckpointSignature, type Checkpoint } from "./checkpoint.ts";
import { auditKeys, checkpointLogFile } from "./keys.ts";

export interface ChainReport {
  ok: boolean;
  checked: number;
  firstId: number | null;
  lastId: number | null;
  /** The first record whose hash or link does not match, with what is wrong. */
  brokenAt?: { id: number; reason: string };
  /** Checkpoints whose signature and pinned record were verified. */
  checkpoints: number;
  /** Records newer than the last checkpoint (not pinned by a signature). */
  unpinned: number;
  /** Whether keyed records were recomputed with the HMAC key (false offline without it). */
  keyed: boolean;
}

export interface Anchor {
  first_id: number;
  prev_hash: Uint8Array;
}

type Broken = { id: number; reason: string };

/** The shortest audit retention audit_purge_by_retention() keeps (migration 410). */
export const MIN_RETENTION_MS = 30 * 86400_000;

/** Sorts, de-duplicates and checks checkpoints; returns them or the first problem. */
function prepareCheckpoints(list: Checkpoint[], publicKey: KeyObject | string): Checkpoint[] | Broken {
  const bySeq = new Map<number, Checkpoint>();
  for (const c of list) {
    if (!verifyCheckpointSignature(c, publicKey)) return { id: c.seq, reason: `checkpoint for record ${c.seq} has a signature that does not verify with the checkpoint public key` };
    const seen = bySeq.get(c.seq);
    if (seen && !sameBytes(seen.signature, c.signature)) return { id: c.seq, reason: `two different signed checkpoints name record ${c.seq}` };
    bySeq.set(c.seq, c);
  }
  const sorted = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.from_seq !== sorted[i - 1]!.seq) {
      return { id: sorted[i]!.seq, reason: `checkpoint for record ${sorted[i]!.seq} follows record ${sorted[i]!.from_seq}, but the previous checkpoint is for ${sorted[i - 1]!.seq}: a checkpoint was removed` };
    }
  }
  return sorted;
}

/** The streaming checker: feed records in id order, then call finish(). */
export function createChainChecker(anchor: Anchor, checkpoints: Checkpoint[], publicKey: KeyObject | string, hmacKey?: Uint8Array, now = new Date()) {
  const prepared = prepareCheckpoints(checkpoints, publicKey);
  let broken: Broken | undefined = Array.isArray(prepared) ? undefined : prepared;
  const cps = Array.isArray(prepared) ? prepared : [];
  const keyedFrom = cps.length ? cps.reduce((m, c) => Math.max(m, c.keyed_from), 0) : Number.POSITIVE_INFINITY;
  let prev: Uint8Array = anchor.prev_hash;
  let firstId: number | null = null;
  let lastId: number | null = null;
  let checked = 0;
  let pinned = 0;
  let seenKeyed = false;
  let ci = 0; // next checkpoint to meet
  let digest: ReturnType<typeof segmentDigest> | null = null;

  function fail(id: number, reason: string) {
    broken ??= { id, reason };
    return false;
  }

  function add(row: AuditRecord): boolean {
    if (broken) return false;
    const id = Number(row.id);
    if (firstId === null) {
      firstId = id;
      if (id < Number(anchor.first_id)) return fail(id, "row older than the retention anchor");
      // checkpoints entirely before the first kept record were purged with their records, which
      // the purge does only to records older than the shortest retention
      for (; ci < cps.length && cps[ci]!.seq < id; ci++) {
        const cp = cps[ci]!;
        if (now.getTime() - cp.head_ts.getTime() < MIN_RETENTION_MS) {
          return fail(cp.seq, `record ${cp.seq} (written ${cp.head_ts.toISOString()}, pinned by a signed checkpoint) is gone from the start of the chain, but no retention purge deletes records younger than 30 days`);
        }
      }
    } else if (id <= lastId!) {
      return fail(id, "records are out of order");
    }
    if (ci < cps.length && cps[ci]!.seq < id) return fail(cps[ci]!.seq, `record ${cps[ci]!.seq}, named by a signed checkpoint, is missing`);
    if (!sameBytes(row.prev_hash, prev)) return fail(id, "link to the previous record does not match");
    const alg = Number(row.alg ?? ALG_SHA256);
    if (alg === ALG_SHA256) {
      if (seenKeyed || id >= keyedFrom) return fail(id, "a record with an unkeyed hash after the keyed chain started");
      if (!sameBytes(row.hash, recordHash(prev, id, row))) return fail(id, "record content does not match its hash");
    } else if (alg === ALG_HMAC_SHA256) {
      seenKeyed = true;
      if (hmacKey && !sameBytes(row.hash, recordMac(hmacKey, prev, id, row))) return fail(id, "record content does not match its keyed hash");
    } else {
      return fail(id, `unknown hash algorithm ${alg}`);
    }
    // a segment is digested only when its first record is here (not cut by a purge)
    if (!digest && ci < cps.length && id === cps[ci]!.from_seq + 1) digest = segmentDigest();
    digest?.add(id, row.prev_hash, row);
    const cp = cps[ci];
    if (cp && cp.seq === id) {
      if (!sameBytes(row.hash, cp.mac)) return fail(id, `record ${id} does not carry the hash its signed checkpoint (${cp.ts.toISOString()}) pins`);
      if (digest && !sameBytes(digest.digest(), cp.digest)) {
        return fail(id, `the records ${cp.from_seq + 1}..${id} no longer match the digest signed in their checkpoint (${cp.ts.toISOString()})`);
      }
      pinned++;
      ci++;
      digest = segmentDigest();
    }
    prev = row.hash;
    lastId = id;
    checked++;
    return true;
  }

  function finish(): ChainReport {
    if (!broken && ci < cps.length) {
      const last = cps[cps.length - 1]!;
      fail(last.seq, `a checkpoint signed at ${last.ts.toISOString()} names record ${last.seq}, but the chain ends at ${lastId ?? "(no records)"}: records were removed from the end`);
    }
    const lastPinned = pinned ? cps[ci - 1]!.seq : null;
    const unpinned = lastId === null ? 0 : lastPinned === null ? checked : lastId - lastPinned;
    return { ok: !broken, checked, firstId, lastId, brokenAt: broken, checkpoints: pinned, unpinned, keyed: !!hmacKey };
  }

  return { add, finish, failed: () => !!broken };
}

/** Checkpoints from the log outside PostgreSQL (<data>/audit/checkpoints.ndjson), if there is one. */
export function readCheckpointLog(file = checkpointLogFile()): Checkpoint[] {
  if (!file || !existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => checkpointFromJson(JSON.parse(l)));
}

export async function loadCheckpoints(sql: Sql): Promise<Checkpoint[]> {
  const rows = await sql<Checkpoint[]>`select * from audit_checkpoints order by seq`;
  return rows.map((r) => ({ ...r, seq: Number(r.seq), from_seq: Number(r.from_seq), keyed_from: Number(r.keyed_from), head_ts: new Date(r.head_ts), ts: new Date(r.ts) }));
}

/** Verifies the live chain with this process's keys, streaming records in pages. */
export async function verifyAuditChain(sql: Sql, pageSize = 5000): Promise<ChainReport> {
  const keys = auditKeys();
  const [anchor] = await sql`select first_id, prev_hash from audit_anchor where id = 1`;
  const checkpoints = [...(await loadCheckpoints(sql)), ...readCheckpointLog()];
  const check = createChainChecker({ first_id: Number(anchor!.first_id), prev_hash: anchor!.prev_hash }, checkpoints, keys.publicKey, keys.hmacKey);
  let after = 0;
  for (;;) {
    const rows = await sql<AuditRecord[]>`select * from audit_log where id > ${after} order by id limit ${pageSize}`;
    if (rows.length === 0) break;
    for (const row of rows) if (!check.add({ ...row, ts: new Date(row.ts) })) return check.finish();
    after = Number(rows[rows.length - 1]!.id);
  }
  return check.finish();
}
