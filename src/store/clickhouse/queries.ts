/**
 * Console reads from ClickHouse with the semantics of store/postgres/queries.ts (see
 * ../range.ts). Each read first collapses rows by their full ReplacingMergeTree key
 * (GROUP BY ... any()), so a chunk the shipper sent twice is never counted twice, even before
 * background merges remove the copy; FINAL would do the same but reads on one thread in 18.16.
 * Series ids come from PostgreSQL's series dictionary, the control plane.
 */
import type { Sql } from "postgres";
import type { Clickhouse } from "./client.ts";
import { LOGS_TABLE, METRICS_TABLE } from "./schema.ts";
import { logLimit, rangeBucketMs, resolveSeries, type LogLine, type LogSearch, type RangeStore, type SeriesPoints } from "../range.ts";

export function createClickhouseQueries(ch: Clickhouse, sql: Sql): RangeStore {
  const db = ch.database;
  return {
    async seriesRange(agentId: number, names: string[], from: Date, to: Date, maxPoints = 1000): Promise<SeriesPoints[]> {
      const bucket = rangeBucketMs(from, to, maxPoints);
      const ids = await resolveSeries(sql, agentId, names);
      const byId = new Map(ids.map((r) => [r.id, { name: r.name, t: [] as number[], avg: [] as number[], min: [] as number[], max: [] as number[] }]));
      if (ids.length) {
        const f = from.getTime();
        // aliases differ from column names: 18.16 substitutes aliases into WHERE
        const rows = await ch.rows<{ sid: number; b: string; avg: number; min: number; max: number }>(
          `select series_id as sid, intDiv(ts - {from:Int64}, {bucket:Int64}) as b, avg(v) as avg, min(v) as min, max(v) as max
           from (
             select series_id, ts, batch_id, any(value) as v
             from ${db}.${METRICS_TABLE}
             where agent_id = {agent:UInt64} and series_id in {sids:Tuple(UInt32)} and ts >= {from:Int64} and ts < {to:Int64}
             group by series_id, ts, batch_id)
           group by sid, b order by sid, b`,
          { agent: agentId, sids: ids.map((r) => r.id), from: f, to: to.getTime(), bucket },
        );
        for (const r of rows) {
          const p = byId.get(Number(r.sid))!;
          p.t.push(f + Number(r.b) * bucket);
          p.avg.push(r.avg);
          p.min.push(r.min);
          p.max.push(r.max);
        }
      }
      const byName = new Map([...byId.values()].map((p) => [p.name, p]));
      return names.map((name) => byName.get(name) ?? { name, t: [], avg: [], min: [], max: [] });
    },

    async searchLogs(o: LogSearch): Promise<LogLine[]> {
      const text = o.text?.trim() ?? "";
      const rows = await ch.rows<{ ts: string; severity: number; source: string; message: string }>(
        `select ts, sev as severity, src as source, msg as message from (
           select ts, batch_id, n, any(severity) as sev, any(source) as src, any(message) as msg
           from ${db}.${LOGS_TABLE}
           where agent_id = {agent:UInt64} and ts >= {from:Int64} and ts < {to:Int64}
             ${text ? "and position(lowerUTF8(message), lowerUTF8({text:String})) > 0" : ""}
           group by ts, batch_id, n)
         order by ts desc, sev, src, msg
         limit {limit:UInt32}`,
        { agent: o.agentId, from: o.from.getTime(), to: o.to.getTime(), text, limit: logLimit(o.limit) },
      );
      return rows.map((r) => ({ ts: new Date(Number(r.ts)), severity: Number(r.severity), source: r.source, message: r.message }));
    },
  };
}
