/**
 * The chain export an auditor verifies offline (`audit:verify --export FILE --public-key FILE`).
 * NDJSON, one object a line, in this order:
 *   {"type":"header","format":"servermind-audit-chain","version":1,"exported_at":..,"anchor":{"first_id":N,"prev_hash":hex}}
 *   {"type":"checkpoint",seq,from_seq,mac,digest,ts,keyed_from,signature}   (database + outside log, by seq)
 *   {"type":"record",id,ts,actor_type,...,details,alg,prev_hash,hash}        (every record, by id)
 */
import type { Sql } from "postgres";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { AuditRecord } from "./record.ts";
import { checkpointFromJson, checkpointJson, type Checkpoint } from "./checkpoint.ts";
import { createChainChecker, loadCheckpoints, readCheckpointLog, type ChainReport } from "./verify.ts";

export const CHAIN_FORMAT = "servermind-audit-chain";

function recordJson(r: AuditRecord): string {
  return JSON.stringify({
    type: "record", id: Number(r.id), ts: new Date(r.ts).toISOString(), actor_type: r.actor_type, actor_id: r.actor_id,
    actor_name: r.actor_name, on_behalf_of: r.on_behalf_of, ip: r.ip, user_agent: r.user_agent, category: r.category,
    action: r.action, target: r.target, success: r.success, details: r.details, alg: Number(r.alg),
    prev_hash: Buffer.from(r.prev_hash).toString("hex"), hash: Buffer.from(r.hash).toString("hex"),
  }) + "\n";
}

/** The whole chain as a byte stream, 1,000 records per read, so memory stays flat for any size. */
export function exportChain(sql: Sql): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let after: number | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (after === null) {
        const [a] = await sql`select first_id, prev_hash from audit_anchor where id = 1`;
        const seen = new Map<number, Checkpoint>();
        for (const c of [...(await loadCheckpoints(sql)), ...readCheckpointLog()]) if (!seen.has(c.seq)) seen.set(c.seq, c);
        const head = JSON.stringify({
          type: "header", format: CHAIN_FORMAT, version: 1, exported_at: new Date().toISOString(),
          anchor: { first_id: Number(a!.first_id), prev_hash: Buffer.from(a!.prev_hash).toString("hex") },
        });
        const cps = [...seen.values()].sort((x, y) => x.seq - y.seq).map((c) => JSON.stringify(checkpointJson(c)) + "\n");
        controller.enqueue(enc.encode(head + "\n" + cps.join("")));
        after = 0;
        return;
      }
      const rows = await sql<AuditRecord[]>`select * from audit_log where id > ${after} order by id limit 1000`;
      if (rows.length === 0) {
        controller.close();
        return;
      }
      after = Number(rows[rows.length - 1]!.id);
      controller.enqueue(enc.encode(rows.map(recordJson).join("")));
    },
  }, { highWaterMark: 1 });
}

function recordFromJson(o: Record<string, unknown>): AuditRecord {
  return {
    ...(o as unknown as AuditRecord), id: Number(o.id), ts: new Date(String(o.ts)), alg: Number(o.alg ?? 0),
    prev_hash: Buffer.from(String(o.prev_hash), "hex"), hash: Buffer.from(String(o.hash), "hex"),
  };
}

/** Verifies an export file with no database: the public key always, the HMAC key if given. */
export async function verifyChainExport(file: string, publicKeyPem: string, hmacKey?: Uint8Array): Promise<ChainReport> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let check: ReturnType<typeof createChainChecker> | undefined;
  let anchor: { first_id: number; prev_hash: Uint8Array } | undefined;
  const checkpoints: Checkpoint[] = [];
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line.trim()) continue;
    const o = JSON.parse(line) as Record<string, unknown>;
    if (n === 1) {
      if (o.type !== "header" || o.format !== CHAIN_FORMAT) throw new Error(`${file} is not a ${CHAIN_FORMAT} export (line 1 is not its header)`);
      const a = o.anchor as { first_id: number; prev_hash: string };
      anchor = { first_id: Number(a.first_id), prev_hash: Buffer.from(a.prev_hash, "hex") };
      continue;
    }
    if (o.type === "checkpoint") {
      if (check) throw new Error(`${file} line ${n}: checkpoints must come before the records`);
      checkpoints.push(checkpointFromJson(o));
    } else if (o.type === "record") {
      check ??= createChainChecker(anchor!, checkpoints, publicKeyPem, hmacKey);
      if (!check.add(recordFromJson(o))) break;
    }
  }
  lines.close();
  if (!anchor) throw new Error(`${file} is empty`);
  check ??= createChainChecker(anchor, checkpoints, publicKeyPem, hmacKey);
  return check.finish();
}
