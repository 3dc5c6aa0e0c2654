/**
 * The series dictionary: (agent, metric name) -> integer id, cached in memory. Misses are
 * registered in one statement per batch; registration is idempotent, so it runs outside the
 * data transaction and two nodes may race on it harmlessly.
 */
import type { Sql } from "postgres";

export class SeriesCache {
  private byAgent = new Map<number, Map<string, number>>();
  private size = 0;

  constructor(private readonly maxEntries = 5_000_000) {}

  get(agentId: number, name: string): number | undefined {
    return this.byAgent.get(agentId)?.get(name);
  }

  /** Resolves the ids of every name of every (agent, names) pair, registering the missing ones. */
  async resolve(sql: Sql, wanted: Array<{ agentId: number; names: string[] }>): Promise<void> {
    const missAgents: number[] = [];
    const missNames: string[] = [];
    const seen = new Set<string>();
    for (const { agentId, names } of wanted) {
      const m = this.byAgent.get(agentId);
      for (const n of names) {
        if (m?.has(n)) continue;
        const k = `${agentId}\u0000${n}`;
        if (seen.has(k)) continue;
        seen.add(k);
        missAgents.push(agentId);
        missNames.push(n);
      }
    }
    if (missAgents.length === 0) return;
    await sql`insert into metric_series (agent_id, name)
      select * from unnest(${missAgents}::int8[], ${missNames}::text[])
      on conflict (agent_id, name) do nothing`;
    const rows = await sql<{ id: number; agent_id: string; name: string }[]>`
      select s.id, s.agent_id, s.name from metric_series s
      join unnest(${missAgents}::int8[], ${missNames}::text[]) as w(agent_id, name)
        on s.agent_id = w.agent_id and s.name = w.name`;
    if (this.size + rows.length > this.maxEntries) {
      this.byAgent.clear();
      this.size = 0;
    }
    for (const r of rows) {
      const a = Number(r.agent_id);
      let m = this.byAgent.get(a);
      if (!m) this.byAgent.set(a, (m = new Map()));
      if (!m.has(r.name)) this.size++;
      m.set(r.name, r.id);
    }
    if (rows.length !== missAgents.length) {
      throw new Error(`series registration returned ${rows.length} of ${missAgents.length} series (agent deleted?)`);
    }
  }
}
