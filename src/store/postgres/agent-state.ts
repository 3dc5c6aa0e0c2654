/**
 * Derived per-agent state that need not be written with every batch: last seen, highest
 * sequence number, transport, the last heartbeat and the latest value of every series.
 * Kept in memory and written every `intervalMs` in three statements, so that concurrent
 * batch transactions never contend for the agents row.
 */
import type { Sql } from "postgres";
import type { MetricsBody } from "../../ingest/frame/frame.ts";
import { copyInto, type LatestSink } from "./writer.ts";
import { CopyWriter } from "./copy-binary.ts";
import { jsonForPg } from "./pg-text.ts";
import { FLEET_METRICS } from "./queries-console.ts";

/** A name set as metric_name_sets holds it (migration 560), and where the fleet's columns are in it. */
interface NameSet {
  id: number;
  cpu: number;
  mem: number;
  disk: number;
}

/** Name sets remembered at most (each ~2 kB of key); past it the memory starts over. */
const MAX_NAME_SETS = 10_000;

interface Activity {
  seen: number;
  seq: number;
  transport: string;
}

export class AgentState implements LatestSink {
  private activity = new Map<number, Activity>();
  private heartbeats = new Map<number, Record<string, unknown>>();
  private latest = new Map<number, { ts: number; key: string; names: string[]; values: Float64Array }>();
  /** metric_name_sets ids by names key: a set is looked up once, and rows carry its id. */
  private nameSets = new Map<string, NameSet>();
  private dirtyLatest = new Set<number>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private flushing: Promise<void> | undefined;
  private readonly copy = new CopyWriter(1 << 16);

  constructor(private readonly sql: Sql, private readonly intervalMs = 2000) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush().catch((e) => console.error(`agent state flush failed: ${e.message}`)), this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  touch(agentId: number, seq: number, transport: string): void {
    const a = this.activity.get(agentId);
    if (a) {
      a.seen = Date.now();
      if (seq > a.seq) a.seq = seq;
      a.transport = transport;
    } else this.activity.set(agentId, { seen: Date.now(), seq, transport });
  }

  /** The in-memory latest values of an agent whose frames this node took (read by src/alerts/). */
  latestOf(agentId: number): { ts: number; key: string; names: readonly string[]; values: ArrayLike<number> } | undefined {
    return this.latest.get(agentId);
  }

  /** When this node last heard from the agent, if not yet written to agents.last_seen. */
  lastSeenOf(agentId: number): number | undefined {
    return this.activity.get(agentId)?.seen;
  }

  agentIds(): Iterable<number> {
    return this.latest.keys();
  }

  heartbeat(agentId: number, body: Record<string, unknown>): void {
    this.heartbeats.set(agentId, body);
  }

  metrics(agentId: number, b: MetricsBody): void {
    const nts = b.ts.length;
    let last = 0;
    for (let i = 1; i < nts; i++) if (b.ts[i]! > b.ts[last]!) last = i;
    const ts = b.ts[last]!;
    const key = b.namesKey ?? b.names.join("\n");
    let l = this.latest.get(agentId);
    if (l && ts < l.ts) return; // an older batch replayed from a spool
    if (!l || l.key !== key) {
      // A new name set: carry over the values of series that are still there.
      const prev = l;
      l = { ts, key, names: b.names, values: new Float64Array(b.names.length).fill(NaN) };
      if (prev) {
        const old = new Map(prev.names.map((n, i) => [n, prev.values[i]!]));
        b.names.forEach((n, i) => (l!.values[i] = old.get(n) ?? NaN));
      }
      this.latest.set(agentId, l);
    }
    l.ts = ts;
    for (let s = 0; s < b.names.length; s++) {
      // the newest non-missing value of this series in the frame
      for (let t = nts - 1; t >= 0; t--) {
        const v = b.values[s * nts + t]!;
        if (v === v) {
          l.values[s] = v;
          break;
        }
      }
    }
    this.dirtyLatest.add(agentId);
  }

  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.write().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private async write(): Promise<void> {
    if (this.activity.size) {
      const rows = [...this.activity.entries()].sort((a, b) => a[0] - b[0]);
      this.activity.clear();
      await this.sql`
        update agents a set last_seen = to_timestamp(v.seen / 1000.0),
          last_seq = greatest(a.last_seq, v.seq), transport = v.transport
        from unnest(${rows.map((r) => r[0])}::int8[], ${rows.map((r) => r[1].seen)}::float8[],
                    ${rows.map((r) => r[1].seq)}::int8[], ${rows.map((r) => r[1].transport)}::text[])
          as v(id, seen, seq, transport)
        where a.id = v.id`;
    }
    if (this.heartbeats.size) {
      const rows = [...this.heartbeats.entries()].sort((a, b) => a[0] - b[0]);
      this.heartbeats.clear();
      await this.sql`
        update agents a set status = v.status::jsonb
        from unnest(${rows.map((r) => r[0])}::int8[], ${rows.map((r) => jsonForPg(r[1]).text)}::text[]) as v(id, status)
        where a.id = v.id`;
    }
    if (this.dirtyLatest.size) {
      // Binary COPY into a temporary staging table, then one upsert: for 2,000 agents x 100
      // series that costs PostgreSQL about a quarter of the CPU of the same rows sent as one
      // JSON document (docs/architecture.md). NaN (no value) is written as a NULL element.
      // A row refers to its set of names (migration 560), and carries the fleet page's three
      // values as columns.
      const ids = [...this.dirtyLatest].sort((a, b) => a - b);
      this.dirtyLatest.clear();
      try {
        await this.resolveNameSets(ids);
        const w = this.copy.begin();
        for (const id of ids) {
          const l = this.latest.get(id)!;
          const set = this.nameSets.get(l.key)!;
          w.row(7);
          w.int8(id);
          w.timestamptz(l.ts);
          w.int4(set.id);
          w.float8ArrayNanAsNull(l.values);
          for (const i of [set.cpu, set.mem, set.disk]) {
            const v = i < 0 ? NaN : l.values[i]!;
            if (v === v) w.float8(v);
            else w.null();
          }
        }
        await this.sql.begin(async (tx) => {
          await tx`create temporary table if not exists metric_latest_stage (agent_id int8, ts timestamptz, names_set int4, vals float8[], cpu float8, mem float8, disk float8) on commit delete rows`;
          await copyInto(tx, "metric_latest_stage", w.end());
          await tx`
            insert into metric_latest_rows (agent_id, ts, names_set, vals, cpu, mem, disk)
            select x.agent_id, x.ts, x.names_set, x.vals, x.cpu, x.mem, x.disk
            from metric_latest_stage x join agents a on a.id = x.agent_id
            on conflict (agent_id) do update set ts = excluded.ts, names_set = excluded.names_set, vals = excluded.vals,
              cpu = excluded.cpu, mem = excluded.mem, disk = excluded.disk`;
        });
      } catch (e) {
        this.nameSets.clear(); // a set this node remembers may be gone (a restored database)
        throw e;
      }
    }
  }

  /**
   * Looks up (or registers) the name set of every agent in `ids` not yet known, in one statement.
   * A set travels as its key, the names joined by newlines (names hold none: the decoder checks).
   */
  private async resolveNameSets(ids: number[]): Promise<void> {
    const missing = (): Map<string, string[]> => {
      const m = new Map<string, string[]>();
      for (const id of ids) {
        const l = this.latest.get(id)!;
        if (!this.nameSets.has(l.key)) m.set(l.key, l.names);
      }
      return m;
    };
    let wanted = missing();
    if (wanted.size === 0) return;
    if (this.nameSets.size + wanted.size > MAX_NAME_SETS) {
      this.nameSets.clear();
      wanted = missing();
    }
    const keys = [...wanted.keys()];
    const rows = await this.sql<{ ord: string; id: number }[]>`
      select k.ord, metric_name_set(string_to_array(k.key, E'\n')) as id
      from unnest(${keys}::text[]) with ordinality as k(key, ord)`;
    for (const r of rows) {
      const key = keys[Number(r.ord) - 1]!;
      const names = wanted.get(key)!;
      this.nameSets.set(key, { id: r.id, cpu: names.indexOf(FLEET_METRICS.cpu), mem: names.indexOf(FLEET_METRICS.mem), disk: names.indexOf(FLEET_METRICS.disk) });
    }
  }
}
