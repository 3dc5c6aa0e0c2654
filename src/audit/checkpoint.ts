/**
 * Signed checkpoints of the audit chain. A checkpoint pins {seq: the last record it covers,
 * mac and head_ts: that record's hash and time, from_seq: the previous checkpoint's seq, digest: the plain digest of
 * the records in (from_seq, seq], keyed_from: the first keyed record, ts} with an Ed25519
 * signature made by a key kept outside PostgreSQL. It is stored in audit_checkpoints and also
 * appended to <data>/audit/checkpoints.ndjson, so deleting checkpoint rows does not hide them.
 *
 * A checkpoint is written in the append transaction once `every` records accumulated since the
 * last one (SERVERMIND_AUDIT_CHECKPOINT_EVERY, default 100), and by a timer when the head moved
 * (SERVERMIND_AUDIT_CHECKPOINT_SECONDS, default 300).
 */
import type { Sql } from "postgres";
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { canonicalJson, segmentDigest, type AuditRecord } from "./record.ts";
import { auditKeys, checkpointLogFile } from "./keys.ts";

export interface Checkpoint {
  seq: number;
  from_seq: number;
  mac: Uint8Array;
  digest: Uint8Array;
  /** The time of the record at `seq` (so a verifier can tell a retention purge from a deletion). */
  head_ts: Date;
  ts: Date;
  keyed_from: number;
  signature: Uint8Array;
}

export const APPEND_LOCK_ID = 0x5e7a0d17;

export function checkpointEvery(env: Record<string, string | undefined> = process.env): number {
  const n = Number(env.SERVERMIND_AUDIT_CHECKPOINT_EVERY || 100);
  if (!Number.isInteger(n) || n < 1) throw new Error(`SERVERMIND_AUDIT_CHECKPOINT_EVERY must be a whole number of records >= 1, got "${env.SERVERMIND_AUDIT_CHECKPOINT_EVERY}"`);
  return n;
}

/** The exact bytes that are signed. */
export function checkpointPayload(c: Omit<Checkpoint, "signature">): Buffer {
  return Buffer.from(canonicalJson({
    format: "servermind-audit-checkpoint", v: 1, seq: Number(c.seq), from_seq: Number(c.from_seq),
    mac: Buffer.from(c.mac).toString("hex"), digest: Buffer.from(c.digest).toString("hex"),
    head_ts: new Date(c.head_ts).toISOString(), ts: new Date(c.ts).toISOString(), keyed_from: Number(c.keyed_from),
  }));
}

export function verifyCheckpointSignature(c: Checkpoint, publicKey: KeyObject | string): boolean {
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  return verify(null, checkpointPayload(c), key, Buffer.from(c.signature));
}

export function checkpointJson(c: Checkpoint): Record<string, unknown> {
  return {
    type: "checkpoint", seq: Number(c.seq), from_seq: Number(c.from_seq), mac: Buffer.from(c.mac).toString("hex"),
    digest: Buffer.from(c.digest).toString("hex"), head_ts: new Date(c.head_ts).toISOString(), ts: new Date(c.ts).toISOString(),
    keyed_from: Number(c.keyed_from), signature: Buffer.from(c.signature).toString("base64"),
  };
}

export function checkpointFromJson(o: Record<string, unknown>): Checkpoint {
  return {
    seq: Number(o.seq), from_seq: Number(o.from_seq), mac: Buffer.from(String(o.mac), "hex"), digest: Buffer.from(String(o.digest), "hex"),
    head_ts: new Date(String(o.head_ts)), ts: new Date(String(o.ts)), keyed_from: Number(o.keyed_from),
    signature: Buffer.from(String(o.signature), "base64"),
  };
}

/**
 * Inside the append transaction (the append lock held): writes a checkpoint for the chain up to
 * `seq` when `force` or when `every` records have passed since the last one. Returns it, or null.
 */
export async function checkpointInTx(tx: Sql, seq: number, opts: { every?: number; force?: boolean } = {}): Promise<Checkpoint | null> {
  const [last] = await tx`select seq, keyed_from from audit_checkpoints order by seq desc limit 1`;
  const lastSeq = last ? Number(last.seq) : 0;
  if (seq <= lastSeq) return null;
  let keyedFrom = last ? Number(last.keyed_from) : 0;
  if (!last) {
    const [k] = await tx`select min(id) as id from audit_log where alg = 1`;
    if (k?.id === null || k?.id === undefined) return null; // no keyed record yet: nothing to pin
    keyedFrom = Number(k.id);
  }
  // the first checkpoint covers the keyed part: legacy rows are pinned by the first keyed row's link
  const fromSeq = last ? lastSeq : keyedFrom - 1;
  if (!opts.force && seq - fromSeq < (opts.every ?? checkpointEvery())) return null;
  const d = segmentDigest();
  let after = fromSeq;
  let mac: Uint8Array | undefined;
  let headTs: Date | undefined;
  for (;;) {
    const rows = await tx<AuditRecord[]>`select * from audit_log where id > ${after} and id <= ${seq} order by id limit 2000`;
    if (rows.length === 0) break;
    for (const r of rows) {
      d.add(Number(r.id), r.prev_hash, r);
      mac = r.hash;
      headTs = new Date(r.ts);
    }
    after = Number(rows[rows.length - 1]!.id);
  }
  if (!mac || !headTs || after !== seq) return null;
  const body = { seq, from_seq: fromSeq, mac, digest: d.digest(), head_ts: headTs, ts: new Date(), keyed_from: keyedFrom };
  const signature = sign(null, checkpointPayload(body), auditKeys().signingKey);
  const c: Checkpoint = { ...body, signature };
  await tx`insert into audit_checkpoints (seq, from_seq, mac, digest, head_ts, ts, keyed_from, signature)
    values (${c.seq}, ${c.from_seq}, ${c.mac}, ${c.digest}, ${c.head_ts}, ${c.ts}, ${c.keyed_from}, ${c.signature})`;
  return c;
}

/** After commit: appends the checkpoint to the log outside PostgreSQL. Never throws. */
export function logCheckpoint(c: Checkpoint): void {
  const file = checkpointLogFile();
  if (!file) return;
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    appendFileSync(file, JSON.stringify(checkpointJson(c)) + "\n", { mode: 0o600 });
  } catch (e) {
    console.error(`audit checkpoint ${c.seq}: could not append to ${file}: ${e instanceof Error ? e.message : e}`);
  }
}

/** Checkpoints the current head if it moved since the last checkpoint. */
export async function checkpointNow(sql: Sql): Promise<Checkpoint | null> {
  const c = await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${APPEND_LOCK_ID})`;
    const [head] = await tx`select max(id) as id from audit_log`;
    if (head?.id === null || head?.id === undefined) return null;
    return checkpointInTx(tx as unknown as Sql, Number(head.id), { force: true });
  });
  if (c) logCheckpoint(c as Checkpoint);
  return c as Checkpoint | null;
}

/** The time-based half of the policy; returns stop(). */
export function scheduleCheckpoints(sql: Sql, everyMs = Number(process.env.SERVERMIND_AUDIT_CHECKPOINT_SECONDS || 300) * 1000): () => void {
  const timer = setInterval(() => {
    checkpointNow(sql).catch((e) => console.error(`audit checkpoint failed: ${e instanceof Error ? e.message : e}`));
  }, Math.max(1000, everyMs));
  return () => clearInterval(timer);
}
