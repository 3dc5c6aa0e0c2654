/**
 * The optional ClickHouse tier as one component: the client, the schema, the shipper and the
 * retention upkeep, started together when CLICKHOUSE_URL is set and stopped in reverse.
 * ClickHouse being down at start does not stop the server: the shipper retries the schema
 * and then catches up.
 */
import { envInt } from "../../config.ts";
import type { Sql } from "postgres";
import type { Counter, Gauge } from "../../metrics/registry.ts";
import { createClickhouse, parseClickhouseUrl, type Clickhouse } from "./client.ts";
import { dropExpiredPartitions, ensureSchema, LOGS_TABLE, METRICS_TABLE } from "./schema.ts";
import { ensureShipIndexes, Shipper } from "./shipper.ts";

/** This module's config slice (docs/operations.md, "ClickHouse tier"). */
export interface ClickhouseConfig {
  /** `clickhouse.url` (CLICKHOUSE_URL): empty means no ClickHouse tier. */
  url: string;
  /** `clickhouse.shipBatches` (SERVERMIND_CLICKHOUSE_SHIP_BATCHES): batches per shipping step. */
  shipBatches: number;
  /** `clickhouse.retentionDays` (SERVERMIND_CLICKHOUSE_RETENTION_DAYS): days ClickHouse keeps metrics and logs. */
  retentionDays: number;
}

export function loadClickhouseConfig(env: Record<string, string | undefined> = process.env): ClickhouseConfig {
  const int = (name: string, def: number, min: number, max: number) => envInt(env, name, def, min, max);
  const url = env.CLICKHOUSE_URL ?? "";
  if (url) parseClickhouseUrl(url); // fails at start with a message naming CLICKHOUSE_URL
  return {
    url,
    shipBatches: int("SERVERMIND_CLICKHOUSE_SHIP_BATCHES", 256, 1, 100_000),
    retentionDays: int("SERVERMIND_CLICKHOUSE_RETENTION_DAYS", 400, 1, 36500),
  };
}

export interface ClickhouseTierOptions {
  sql: Sql;
  /** CLICKHOUSE_URL */
  url: string;
  retentionMetricsDays: number;
  retentionLogsDays: number;
  writeErrors?: Counter;
  maxBatches?: number;
  idleMs?: number;
  log?: (s: string) => void;
}

export interface ClickhouseTier {
  ch: Clickhouse;
  shipper: Shipper;
  /** Everything to render at /metrics. */
  metrics: Array<{ render(): string }>;
  gauges: Gauge[];
  stop(): Promise<void>;
}

export async function startClickhouseTier(o: ClickhouseTierOptions): Promise<ClickhouseTier> {
  const log = o.log ?? ((s: string) => console.error(s));
  const ch = createClickhouse({ url: o.url });
  await ensureShipIndexes(o.sql);
  const shipper = new Shipper({ sql: o.sql, ch, writeErrors: o.writeErrors, maxBatches: o.maxBatches, idleMs: o.idleMs, log, prepare: () => ensureSchema(ch) });
  shipper.start();
  const retention = async () => {
    try {
      await dropExpiredPartitions(ch, METRICS_TABLE, o.retentionMetricsDays);
      await dropExpiredPartitions(ch, LOGS_TABLE, o.retentionLogsDays);
    } catch (e) {
      log(`clickhouse retention: ${e instanceof Error ? e.message.split("\n")[0] : e} (retried in an hour)`);
    }
  };
  const timer = setInterval(() => void retention(), 3_600_000);
  const { writeErrors: _shared, ...own } = shipper.metrics;
  return {
    ch,
    shipper,
    metrics: o.writeErrors ? Object.values(own) : Object.values(shipper.metrics),
    gauges: shipper.gauges(),
    async stop() {
      clearInterval(timer);
      // A step stuck on an unresponsive ClickHouse is abandoned after 5 s: its transaction
      // ends with the pool (main closes the database next), so the chunk is shipped again later.
      await Promise.race([shipper.stop(), Bun.sleep(5000)]);
      await ch.close();
    },
  };
}
