/**
 * The series dictionary: (agent, metric name) -> integer id, cached in memory. An agent sends
 * the same names frame after frame, so besides the per-name map the cache keeps, per agent,
 * the id vector of its last name set, keyed by the names joined as they travel: a frame then
 * costs one string comparison. Misses are registered in one statement per batch; registration
 * is idempotent, so it runs outside the data transaction and nodes may race on it harmlessly.
 */
import type { Sql } from "postgres";

interface AgentSeries {
  byName: Map<string, number>;
  lastKey: string;
  lastIds: Int32Array;
}

export interface SeriesRequest {
  agentId: number;
  names: string[];
  namesKey?: string;
}

export class SeriesCache {
  private agents = new Map<number, AgentSeries>();
  private size = 0;

  constructor(private readonly maxEntries = 5_000_000) {}

  /** Ids for a frame's names, in order; undefined until resolve() has seen them. */
  ids(agentId: number, names: string[], namesKey = names.join("\n")): Int32Array | undefined {
    const a = this.agents.get(agentId);
    if (!a) return undefined;
    if (a.lastKey === namesKey) return a.lastIds;
    const ids = new Int32Array(names.length);
    for (let i = 0; i < names.length; i++) {
      const id = a.byName.get(names[i]!);
      if (id === undefined) return undefined;
      ids[i] = id;
    }
    a.lastKey = namesKey;
    a.lastIds = ids;
    return ids;
  }

  /** Makes ids() answer for every request, registering the names not seen before. */
  async resolve(sql: Sql, wanted: SeriesRequest[]): Promise<void> {
    const missAgents: number[] = [];
    const missNames: string[] = [];
    const queued = new Set<string>();
    for (const w of wanted) {
      if (this.ids(w.agentId, w.names, w.namesKey)) continue;
      const m = this.agents.get(w.agentId)?.byName;
      for (const n of w.names) {
        if (m?.has(n)) continue;
        const k = `${w.agentId}\u0000${n}`;
        if (queued.has(k)) continue;
        queued.add(k);
        missAgents.push(w.agentId);
        missNames.push(n);
      }
    }
    if (missAgents.length === 0) return;
    // Joined strings instead of array parameters: names hold no newline (the decoder checks),
    // and escaping 100,000 array elements would cost more than the statement itself.
    const agents = missAgents.join(",");
    const names = missNames.join("\n");
    // one statement (migration 550): names into metric_names, new series appended to their
    // agent's row in the frame's order (an agent's ids then count up, which the block codec
    // stores in ~3 bytes), and the id of every pair back
    const rows = await sql<{ id: number; agent_id: string; name: string }[]>`
      select id, agent_id, name from metric_series_register(string_to_array(${agents}, ',')::int8[], string_to_array(${names}, E'\n'))`;
    if (this.size + rows.length > this.maxEntries) {
      this.agents.clear();
      this.size = 0;
    }
    for (const r of rows) {
      const id = Number(r.agent_id);
      let a = this.agents.get(id);
      if (!a) this.agents.set(id, (a = { byName: new Map(), lastKey: "\u0000", lastIds: new Int32Array(0) }));
      if (!a.byName.has(r.name)) this.size++;
      a.byName.set(r.name, r.id);
    }
    if (rows.length !== missAgents.length) {
      throw new Error(`series registration returned ${rows.length} of ${missAgents.length} series (agent deleted?)`);
    }
  }
}
