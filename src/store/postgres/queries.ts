/**
 * Console reads from PostgreSQL (contract and semantics: ../range.ts).
 * metric_blocks rows hold up to 10 series x a frame's timestamps; a range read unnests only the
 * requested series of the host's blocks that overlap the range. The (agent_id, t0) index bounds
 * the scan from below by `from - MAX_FRAME_SPAN_MS`: a frame's samples are assumed to span less
 * than that (agents send every few seconds).
 */
import type { Sql } from "postgres";
import { assemble, bucketStep, logLimit, type LogLine, type LogsQuery, type RangeQuery, type RangeResult, type RangeStore, type SeriesRef } from "../range.ts";

export const MAX_FRAME_SPAN_MS = 3_600_000;

/** The series ids of one host's metric names, in the order asked; unknown names are left out. */
export async function resolveSeries(sql: Sql, agentId: number, names: string[]): Promise<SeriesRef[]> {
  if (names.length === 0) return [];
  const rows = await sql<{ id: number; name: string }[]>`
    select id, name from metric_series where agent_id = ${agentId} and name = any(${names}::text[])`;
  const byName = new Map(rows.map((r) => [r.name, r.id]));
  return names.filter((n) => byName.has(n)).map((n) => ({ id: byName.get(n)!, name: n }));
}

export function createPgQueries(sql: Sql): RangeStore {
  return {
    async range(q: RangeQuery, series: SeriesRef[]): Promise<RangeResult> {
      const step = bucketStep(q);
      if (series.length === 0) return { step, series: [] };
      const from = new Date(q.from);
      const to = new Date(q.to);
      const lower = new Date(q.from - MAX_FRAME_SPAN_MS);
      const rows = await sql<Array<{ sid: number; b: string; avg: number; min: number; max: number; n: string }>>`
        with samples as (
          select s.sid, floor(extract(epoch from m.t0) * 1000)::int8 + o.off as ts,
                 m.vals[(s.si - 1) * cardinality(m.ts_off) + o.ti] as v
          from metric_blocks m
          cross join lateral unnest(m.series) with ordinality as s(sid, si)
          cross join lateral unnest(m.ts_off) with ordinality as o(off, ti)
          where m.agent_id = ${q.agentId} and m.t0 >= ${lower} and m.t0 < ${to} and m.t1 >= ${from}
            and s.sid = any(${series.map((s) => s.id)}::int4[]))
        select sid, (ts - ${q.from}::int8) / ${step}::int8 as b, avg(v) as avg, min(v) as min, max(v) as max, count(*) as n
        from samples
        where ts >= ${q.from}::int8 and ts < ${q.to}::int8 and v <> 'NaN'::float8
        group by 1, 2 order by 1, 2`;
      return assemble(series, step, q.from, rows.map((r) => ({ sid: r.sid, b: Number(r.b), avg: r.avg, min: r.min, max: r.max, n: Number(r.n) })));
    },

    async logs(q: LogsQuery): Promise<LogLine[]> {
      const text = q.text ?? "";
      const rows = await sql<Array<{ ts: string; severity: number; source: string; message: string }>>`
        select floor(extract(epoch from ts) * 1000)::int8 as ts, severity, source, message
        from logs
        where agent_id = ${q.agentId} and ts >= ${new Date(q.from)} and ts < ${new Date(q.to)}
          and (${text} = '' or strpos(lower(message), lower(${text})) > 0)
        order by ts desc, severity, source collate "C", message collate "C"
        limit ${logLimit(q)}`;
      return rows.map((r) => ({ ts: Number(r.ts), severity: r.severity, source: r.source, message: r.message }));
    },
  };
}
