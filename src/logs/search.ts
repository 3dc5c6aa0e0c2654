/**
 * Fleet-wide log search over PostgreSQL's `logs` (the hot tier): a parsed query
 * (./log-query.ts), a time range and the caller's HostScope, newest first, keyset-paged on
 * (ts, id). Free of the web framework; the console route is src/web/logs/routes.ts.
 */
import type { Sql } from "postgres";
import type { HostScope } from "../auth/host-scope.ts";
import { inScope } from "../store/postgres/queries-console.ts";
import { logQuerySql, type LogQuery } from "./log-query.ts";
import { parseArchiveId, type LogArchive } from "./archive.ts";
import type { FleetLogLine } from "./line.ts";

export type { FleetLogLine } from "./line.ts";

/** Where the previous page ended: the last line's time in µs since the epoch, and its id. */
export interface LogCursor {
  us: bigint;
  /** null for a line stored before migration 500; "c<agent>-<batch>-<n>" for a line of the ClickHouse archive. */
  id: string | null;
}

export interface FleetLogSearch {
  query: LogQuery;
  from: Date;
  to: Date;
  /** Lines per page, 1 to 500. */
  limit: number;
  /** Older than this line (the next page). */
  before?: LogCursor;
}

/** Cursor text for URLs: "<µs since the epoch>~<id>" (id empty for lines before migration 500, "c…" for archived ones). */
export function encodeCursor(line: { ts_us: string; id: string | null }): string {
  return `${line.ts_us}~${line.id ?? ""}`;
}

/** Parses encodeCursor's text; undefined when it is not one. */
export function decodeCursor(text: string | null | undefined): LogCursor | undefined {
  const m = /^(\d{1,17})~(\d{0,18}|c\d{1,19}-\d{1,20}-\d{1,10})$/.exec(text ?? "");
  return m ? { us: BigInt(m[1]!), id: m[2] ? m[2] : null } : undefined;
}

/** An exact timestamptz literal for µs since the epoch (a Date has only milliseconds). */
function isoMicros(us: bigint): string {
  const ms = us / 1000n;
  const frac = String(us % 1000000n).padStart(6, "0");
  return new Date(Number(ms)).toISOString().slice(0, 19) + "." + frac + "Z";
}

/**
 * One page of matching lines, newest first, only from hosts in `scope` (a host: or tag: filter
 * narrows within the scope, never past it).
 */
export async function searchFleetLogs(db: Sql, scope: HostScope, o: FleetLogSearch): Promise<FleetLogLine[]> {
  return await customPlan(db, (sql) => searchPage(sql, scope, o));
}

export interface TieredLogSearch {
  lines: FleetLogLine[];
  /** Whether the ClickHouse archive was asked (the range reaches past PostgreSQL's retention), and how it went. */
  archive: "not-needed" | "searched" | "unavailable";
  /** Why the archive could not be read (its lines are then missing from `lines`). */
  archiveError?: string;
}

/**
 * searchFleetLogs over both tiers: PostgreSQL for the part of the range it keeps, and, when the
 * ClickHouse tier is on (`archive`), the archive for the part older than PostgreSQL's cutoff,
 * newest first across both (every archived line is older than every PostgreSQL line, so a page
 * is PostgreSQL's lines then the archive's). A cursor from an archived line pages on in the
 * archive. If the archive fails, PostgreSQL's lines are returned with the reason.
 */
export async function searchFleetLogsTiered(db: Sql, scope: HostScope, o: FleetLogSearch, archive?: LogArchive): Promise<TieredLogSearch> {
  if (!archive) return { lines: await searchFleetLogs(db, scope, o), archive: "not-needed" };
  const cutoff = archive.cutoff();
  const limit = Math.min(Math.max(1, Math.trunc(o.limit)), 500);
  const inArchive = o.before?.id ? parseArchiveId(o.before.id) : undefined;
  const lines: FleetLogLine[] = [];
  if (!inArchive && o.to > cutoff) {
    const from = o.from > cutoff ? o.from : cutoff;
    lines.push(...(await searchFleetLogs(db, scope, { ...o, from })));
  }
  if (lines.length >= limit || o.from >= cutoff) return { lines, archive: "not-needed" };
  try {
    const older = await archive.search(db, scope, {
      query: o.query, from: o.from, to: o.to < cutoff ? o.to : cutoff, limit: limit - lines.length,
      before: inArchive && o.before ? { ms: Number(o.before.us / 1000n), ...inArchive } : undefined,
    });
    return { lines: [...lines, ...older], archive: "searched" };
  } catch (e) {
    return { lines, archive: "unavailable", archiveError: e instanceof Error ? e.message.split("\n")[0]! : String(e) };
  }
}

/**
 * Runs `fn` in a transaction that plans every statement for its parameters. postgres.js
 * prepares statements, and after five runs PostgreSQL may switch to a generic plan, which
 * cannot know whether a word is rare (the trigram index) or common (walk the (ts, id) index
 * and stop at the page size): bench:logs measured 0.5 ms as a custom plan and 2.5 s generic.
 */
async function customPlan<T>(db: Sql, fn: (sql: Sql) => Promise<T>): Promise<T> {
  return (await db.begin(async (tx) => {
    await tx`set local plan_cache_mode = force_custom_plan`;
    return await fn(tx as unknown as Sql);
  })) as T;
}

async function searchPage(sql: Sql, scope: HostScope, o: FleetLogSearch): Promise<FleetLogLine[]> {
  const limit = Math.min(Math.max(1, Math.trunc(o.limit)), 500);
  const cur = o.before;
  // Order: ts desc, then id desc with NULL (pre-500 lines) first, which is what a backward scan
  // of logs_ts_id gives; the cursor condition follows that order exactly.
  const older = !cur ? sql`` : cur.id === null
    ? sql`and (l.ts < ${isoMicros(cur.us)}::timestamptz or (l.ts = ${isoMicros(cur.us)}::timestamptz and l.id is not null))`
    : sql`and (l.ts < ${isoMicros(cur.us)}::timestamptz or (l.ts = ${isoMicros(cur.us)}::timestamptz and l.id < ${cur.id}::bigint))`;
  const rows = await sql<FleetLogLine[]>`
    select ${columns(sql)}
    from logs l join agents a on a.id = l.agent_id
    where l.ts >= ${o.from} and l.ts < ${o.to}
      ${inScope(sql, scope)}
      and ${logQuerySql(sql, o.query)}
      ${older}
    order by l.ts desc, l.id desc nulls first
    limit ${limit}`;
  return rows.map((r) => ({ ...r, agent_id: Number(r.agent_id) }));
}

const columns = (sql: Sql) => sql`l.id::text as id, l.ts, (extract(epoch from l.ts) * 1000000)::bigint::text as ts_us,
  l.severity, l.source, l.message, l.agent_id, a.hostname`;

/**
 * Live tail: matching lines stored after line `afterId` (ids follow the order lines were
 * written, so a line that arrives late, with an older time, is still caught), with a time in
 * [since, until); newest written first, at most `limit`. The BRIN index on id finds them.
 */
export async function tailFleetLogs(db: Sql, scope: HostScope, o: { query: LogQuery; afterId: string; since: Date; until: Date; limit: number }): Promise<FleetLogLine[]> {
  return await customPlan(db, (sql) => tailPage(sql, scope, o));
}

async function tailPage(sql: Sql, scope: HostScope, o: { query: LogQuery; afterId: string; since: Date; until: Date; limit: number }): Promise<FleetLogLine[]> {
  const limit = Math.min(Math.max(1, Math.trunc(o.limit)), 500);
  const rows = await sql<FleetLogLine[]>`
    select ${columns(sql)}
    from logs l join agents a on a.id = l.agent_id
    where l.id > ${o.afterId}::bigint and l.ts >= ${o.since} and l.ts < ${o.until}
      ${inScope(sql, scope)}
      and ${logQuerySql(sql, o.query)}
    order by l.id desc
    limit ${limit}`;
  return rows.map((r) => ({ ...r, agent_id: Number(r.agent_id) }));
}

/** The id of the last line written so far ("0" before the first): where a live tail starts. */
export async function latestLogId(sql: Sql): Promise<string> {
  const [r] = await sql<{ id: string }[]>`select (case when is_called then last_value else 0 end)::text as id from logs_id_seq`;
  return r?.id ?? "0";
}

/** The tags of the hosts in `scope`, for the search form's tag picker (at most 500). */
export async function tagsInScope(sql: Sql, scope: HostScope): Promise<string[]> {
  const rows = await sql<{ tag: string }[]>`
    select distinct t.tag from agents a cross join lateral unnest(a.tags) as t(tag)
    where a.revoked_at is null ${inScope(sql, scope)} order by 1 limit 500`;
  return rows.map((r) => r.tag);
}
