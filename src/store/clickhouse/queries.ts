/**
 * Console reads from ClickHouse (contract and semantics: ../range.ts). Each read first collapses
 * rows by their full ReplacingMergeTree key (GROUP BY ... any()), so a chunk the shipper sent
 * twice is never counted twice even before background merges remove the copy; FINAL would do
 * the same but reads on one thread in 18.16. Series ids come from PostgreSQL's series
 * dictionary (store/postgres/queries.ts resolveSeries), the control plane.
 */
import type { Clickhouse } from "./client.ts";
import { LOGS_TABLE, METRICS_TABLE } from "./schema.ts";
import { assemble, bucketStep, logLimit, type LogLine, type LogsQuery, type RangeQuery, type RangeResult, type RangeStore, type SeriesRef } from "../range.ts";

export function createClickhouseQueries(ch: Clickhouse): RangeStore {
  const db = ch.database;
  return {
    async range(q: RangeQuery, series: SeriesRef[]): Promise<RangeResult> {
      const step = bucketStep(q);
      if (series.length === 0) return { step, series: [] };
      // aliases differ from column names: 18.16 substitutes aliases into WHERE
      const rows = await ch.rows<{ sid: number; b: string; avg: number; min: number; max: number; n: string }>(
        `select series_id as sid, intDiv(ts - {from:Int64}, {step:Int64}) as b, avg(v) as avg, min(v) as min, max(v) as max, count() as n
         from (
           select series_id, ts, batch_id, any(value) as v
           from ${db}.${METRICS_TABLE}
           where agent_id = {agent:UInt64} and series_id in {sids:Tuple(UInt32)} and ts >= {from:Int64} and ts < {to:Int64}
           group by series_id, ts, batch_id)
         group by sid, b order by sid, b`,
        { agent: q.agentId, sids: series.map((s) => s.id), from: q.from, to: q.to, step },
      );
      return assemble(series, step, q.from, rows.map((r) => ({ sid: Number(r.sid), b: Number(r.b), avg: r.avg, min: r.min, max: r.max, n: Number(r.n) })));
    },

    async logs(q: LogsQuery): Promise<LogLine[]> {
      const text = q.text ?? "";
      const rows = await ch.rows<{ ts: string; severity: number; source: string; message: string }>(
        `select ts, sev as severity, src as source, msg as message from (
           select ts, batch_id, n, any(severity) as sev, any(source) as src, any(message) as msg
           from ${db}.${LOGS_TABLE}
           where agent_id = {agent:UInt64} and ts >= {from:Int64} and ts < {to:Int64}
             ${text ? "and position(lowerUTF8(message), lowerUTF8({text:String})) > 0" : ""}
           group by ts, batch_id, n)
         order by ts desc, sev, src, msg
         limit {limit:UInt32}`,
        { agent: q.agentId, from: q.from, to: q.to, text, limit: logLimit(q) },
      );
      return rows.map((r) => ({ ts: Number(r.ts), severity: Number(r.severity), source: r.source, message: r.message }));
    },
  };
}
