/**
 * File integrity events as the console reads them: the recent changes of one host (with the
 * before/after facts and the package-manager label the agent attached) and the latest
 * `fim.status` report (watches, cap, ignore globs, rate limit, last rescan). A change made by
 * ServerMind's own operations (an applied remediation or rollback, a file operation) carries
 * `ownChange`, "<what> by <who>" (the SQL function servermind_change, migration 470); like a
 * package manager's, it does not count against the integrity score.
 */
import type { Sql } from "postgres";
import type { ScopedHost } from "../store/postgres/queries-console.ts";

export interface FimEventRow {
  ts: Date;
  type: string;
  severity: number;
  path: string | null;
  data: Record<string, any> | null;
  /** "remediation by user:3 rita" when ServerMind's own operation made this change, else null. */
  own_change?: string | null;
}

export async function recentFimEvents(sql: Sql, host: ScopedHost, since: Date, o: { limit?: number; withStatus?: boolean } = {}): Promise<FimEventRow[]> {
  return sql<FimEventRow[]>`
    select ts, type, severity, path, data, servermind_change(agent_id, path, data->>'from', ts) as own_change from security_events
    where agent_id = ${host.id} and type like 'fim.%' and ts >= ${since} ${o.withStatus ? sql`` : sql`and type <> 'fim.status'`}
    order by ts desc limit ${Math.min(o.limit ?? 1000, 1000)}`;
}

/** The newest `fim.status` event of a host, or null when its agent has not sent one. */
export async function latestFimStatus(sql: Sql, host: ScopedHost): Promise<{ ts: Date; data: Record<string, any> } | null> {
  const [row] = await sql`select ts, data from security_events where agent_id = ${host.id} and type = 'fim.status' order by ts desc limit 1`;
  return row ? { ts: row.ts, data: (row.data ?? {}) as Record<string, any> } : null;
}
