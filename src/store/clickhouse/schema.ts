/**
 * The ClickHouse tables. Kept to what ClickHouse 18.16 accepts (Debian 12's package):
 * - no column CODECs (19.1+) and no TTL clause (19.6+): columns use the server's default
 *   compression (LZ4, or ZSTD via <compression> in config.xml), and retention drops whole daily
 *   partitions (`dropExpiredPartitions`). docs/operations.md shows the newer syntax.
 * - ReplacingMergeTree keyed so that a row shipped twice (the shipper crashed between the insert
 *   and its cursor update) has the same sorting key as its first copy. Background merges collapse
 *   such copies eventually; until then the queries read through a GROUP BY over the whole key
 *   (queries.ts), so no duplicate is ever visible. Distinct samples never share a key: the key
 *   holds the batch id, and within a batch a series has one value per timestamp.
 * - Timestamps are Int64 milliseconds (DateTime64 is 20.1+); `day` is derived for partitioning.
 */
import { checkIdentifier, type Clickhouse } from "./client.ts";

export const METRICS_TABLE = "metric_samples";
export const LOGS_TABLE = "logs";

export function schemaStatements(database: string, engine = "ReplacingMergeTree"): string[] {
  const db = checkIdentifier(database, "database");
  return [
    `create database if not exists ${db}`,
    `create table if not exists ${db}.${METRICS_TABLE} (
      agent_id  UInt64,
      series_id UInt32,
      ts        Int64,
      value     Float64,
      batch_id  UInt64,
      day       Date materialized toDate(toDateTime(intDiv(ts, 1000)))
    ) engine = ${engine}
    partition by toYYYYMMDD(day)
    order by (agent_id, series_id, ts, batch_id)`,
    `create table if not exists ${db}.${LOGS_TABLE} (
      agent_id  UInt64,
      ts        Int64,
      batch_id  UInt64,
      n         UInt32,
      severity  Int16,
      source    String,
      message   String,
      day       Date materialized toDate(toDateTime(intDiv(ts, 1000)))
    ) engine = ${engine}
    partition by toYYYYMMDD(day)
    order by (agent_id, ts, batch_id, n)`,
  ];
}

export async function ensureSchema(ch: Clickhouse): Promise<void> {
  for (const s of schemaStatements(ch.database)) await ch.exec(s);
}

/** Retention for 18.16: drops the daily partitions older than `days` days. Returns their ids. */
export async function dropExpiredPartitions(ch: Clickhouse, table: string, days: number, now = Date.now()): Promise<string[]> {
  checkIdentifier(table, "table");
  const cutoff = new Date(now - days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, "");
  const parts = await ch.rows<{ partition_id: string }>(
    `select distinct partition_id from system.parts
     where database = {db:String} and table = {table:String} and active and partition_id < {cutoff:String}`,
    { db: ch.database, table, cutoff },
  );
  for (const p of parts) {
    if (!/^\d{8}$/.test(p.partition_id)) continue;
    await ch.exec(`alter table ${ch.database}.${table} drop partition ${p.partition_id}`);
  }
  return parts.map((p) => p.partition_id);
}
