/**
 * Fleet log search over the ClickHouse tier (src/store/clickhouse/) for the part of a range
 * PostgreSQL no longer keeps. With the tier on, the shipper copies every committed log line to
 * ClickHouse, which keeps them `clickhouse.retentionDays`, longer than PostgreSQL's
 * `retentionLogsDays`; search.ts asks this module for the lines older than PostgreSQL's cutoff.
 *
 * The query language is the same (./log-query.ts), translated to ClickHouse SQL with every value
 * bound by the client's typed placeholders. ClickHouse has no host names or tags (only agent
 * ids), so the caller's host scope and the host:/tag: filters are resolved against PostgreSQL's
 * `agents` first and become agent-id lists: a host outside the scope is never read. Words match
 * as `position(lowerUTF8(message), lowerUTF8(word)) > 0` (PostgreSQL: ILIKE '%word%'), unit:
 * as a lower-cased equality or, with `*`, an anchored regular expression.
 *
 * Lines have no PostgreSQL id there: they are ordered and paged by (ts, agent_id, batch_id, n),
 * ClickHouse's own key, and their cursor id is "c<agent>-<batch>-<n>".
 */
import type { Sql } from "postgres";
import type { HostScope } from "../auth/host-scope.ts";
import type { Clickhouse, Params } from "../store/clickhouse/client.ts";
import { LOGS_TABLE } from "../store/clickhouse/schema.ts";
import { inScope } from "../store/postgres/queries-console.ts";
import type { LogQuery } from "./log-query.ts";
import type { FleetLogLine } from "./line.ts";

/** A line of the archive as search.ts returns lines (id "c<agent>-<batch>-<n>"). */
export type ArchivedLine = FleetLogLine & { id: string };

/** Where the previous archive page ended. */
export interface ArchiveCursor {
  ms: number;
  agent: bigint;
  batch: bigint;
  n: number;
}

export interface LogArchive {
  /** Lines older than this are searched here (PostgreSQL keeps the rest). */
  cutoff(): Date;
  search(sql: Sql, scope: HostScope, o: { query: LogQuery; from: Date; to: Date; limit: number; before?: ArchiveCursor }): Promise<ArchivedLine[]>;
}

const DAY = 86_400_000;

/** Parses an archive line's cursor id ("c<agent>-<batch>-<n>"); undefined when it is not one. */
export function parseArchiveId(id: string): { agent: bigint; batch: bigint; n: number } | undefined {
  const m = /^c(\d{1,19})-(\d{1,20})-(\d{1,10})$/.exec(id);
  return m ? { agent: BigInt(m[1]!), batch: BigInt(m[2]!), n: Number(m[3]!) } : undefined;
}

interface Host {
  id: number;
  hostname: string;
  tags: string[];
}

/** `*` is any run of characters; everything else literal; case-insensitive, whole value (as ILIKE without %). */
function globMatcher(value: string): (s: string) => boolean {
  const re = new RegExp(`^${value.split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`, "is");
  return (s) => re.test(s);
}

/** Translates a parsed query to a ClickHouse condition; host: and tag: become agent-id lists. */
export function archiveCondition(q: LogQuery, hosts: Host[], params: Params): string {
  const bindValue = (type: string, v: Params[string]) => {
    const name = `p${Object.keys(params).length}`;
    params[name] = v;
    return `{${name}:${type}}`;
  };
  const ids = (keep: (h: Host) => boolean) => {
    const list = hosts.filter(keep).map((h) => h.id);
    return list.length ? `agent_id in ${bindValue("Tuple(UInt64)", list)}` : "0";
  };
  switch (q.kind) {
    case "term":
      return `position(lowerUTF8(message), lowerUTF8(${bindValue("String", q.text)})) > 0`;
    case "level":
      return `severity <= ${bindValue("Int16", q.severity)}`;
    case "field": {
      if (q.field === "host") {
        const m = globMatcher(q.value);
        return ids((h) => m(h.hostname));
      }
      if (q.field === "tag") return ids((h) => h.tags.includes(q.value));
      if (!q.value.includes("*")) return `lowerUTF8(source) = lowerUTF8(${bindValue("String", q.value)})`;
      const re = `(?s)^${q.value.toLowerCase().split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`;
      return `match(lowerUTF8(source), ${bindValue("String", re)})`;
    }
    case "not":
      return `not (${archiveCondition(q.expr, hosts, params)})`;
    case "and":
    case "or":
      return `(${q.items.map((i) => archiveCondition(i, hosts, params)).join(q.kind === "and" ? " and " : " or ")})`;
  }
}

/**
 * The archive over a ClickHouse connection. PostgreSQL keeps logs from the start of the day
 * `pgLogsDays` days ago (partition upkeep drops older days); older lines are read here.
 */
export function clickhouseLogArchive(ch: Clickhouse, pgLogsDays: number, now: () => number = Date.now): LogArchive {
  return {
    cutoff: () => new Date(Math.floor(now() / DAY) * DAY - pgLogsDays * DAY),
    async search(sql, scope, o) {
      const hosts = (await sql<Array<{ id: string | number; hostname: string; tags: string[] }>>`
        select a.id, a.hostname, a.tags from agents a where true ${inScope(sql, scope)}`).map((r) => ({ id: Number(r.id), hostname: r.hostname, tags: r.tags }));
      if (scope.tags !== null && hosts.length === 0) return [];
      const names = new Map(hosts.map((h) => [h.id, h.hostname]));
      const params: Params = { from: o.from.getTime(), to: o.to.getTime(), limit: Math.min(Math.max(1, Math.trunc(o.limit)), 500) };
      const where = [`ts >= {from:Int64}`, `ts < {to:Int64}`, archiveCondition(o.query, hosts, params)];
      if (scope.tags !== null) where.push(`agent_id in {scope:Tuple(UInt64)}`), (params.scope = hosts.map((h) => h.id));
      if (o.before) {
        Object.assign(params, { cts: o.before.ms, cagent: o.before.agent, cbatch: o.before.batch, cn: o.before.n });
        where.push(`(ts < {cts:Int64} or (ts = {cts:Int64} and (agent_id < {cagent:UInt64} or (agent_id = {cagent:UInt64}
          and (batch_id < {cbatch:UInt64} or (batch_id = {cbatch:UInt64} and n < {cn:UInt32}))))))`);
      }
      // A chunk shipped twice has the same key and must show once. The newest `2 x limit` rows
      // are a top-N sort (cheap however many lines match); copies are dropped here by key. Only
      // when that leaves fewer than `limit` lines while more may match does the grouped query
      // run (as store/clickhouse/queries.ts), which sorts every matching line: measured at 2 M
      // lines, 540 ms against 70 ms for a phrase matching 150,000 (bench/log-archive.bench.ts).
      type Row = { agent_id: string; ts: string; batch_id: string; n: number; sev: number; src: string; msg: string };
      const order = `order by ts desc, agent_id desc, batch_id desc, n desc`;
      const top = await ch.rows<Row>(
        `select agent_id, ts, batch_id, n, severity as sev, source as src, message as msg
         from ${ch.database}.${LOGS_TABLE} where ${where.join(" and ")} ${order} limit {top:UInt32}`,
        { ...params, top: params.limit as number * 2 },
      );
      const seen = new Set<string>();
      let rows = top.filter((r) => {
        const k = `${r.agent_id}-${r.ts}-${r.batch_id}-${r.n}`;
        return seen.has(k) ? false : (seen.add(k), true);
      });
      if (rows.length < (params.limit as number) && top.length === (params.limit as number) * 2) {
        rows = await ch.rows<Row>(
          `select agent_id, ts, batch_id, n, any(severity) as sev, any(source) as src, any(message) as msg
           from ${ch.database}.${LOGS_TABLE} where ${where.join(" and ")}
           group by agent_id, ts, batch_id, n ${order} limit {limit:UInt32}`,
          params,
        );
      }
      rows = rows.slice(0, params.limit as number);
      return rows.map((r) => {
        const ms = Number(r.ts);
        return {
          id: `c${r.agent_id}-${r.batch_id}-${r.n}`, ts: new Date(ms), ts_us: String(BigInt(r.ts) * 1000n), severity: Number(r.sev),
          source: r.src, message: r.msg, agent_id: Number(r.agent_id), hostname: names.get(Number(r.agent_id)) ?? `agent ${r.agent_id}`,
        };
      });
    },
  };
}
