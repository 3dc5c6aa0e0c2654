/**
 * Chooses the tier for each console range read. PostgreSQL keeps the recent data and answers
 * small reads; ClickHouse answers when the range is long, when it reaches back past what
 * PostgreSQL keeps, or when the fleet is large, as long as the shipper is caught up (lag under
 * `maxLagSeconds`) and ClickHouse answered its last read. If a ClickHouse read fails, the read
 * falls back to PostgreSQL when PostgreSQL still holds the range.
 *
 * Known gap: a ClickHouse answer lacks the last `lag` seconds of data (at most maxLagSeconds);
 * for ranges that long the newest bucket may be slightly short.
 */
import type { LogLine, LogSearch, RangeStore, SeriesPoints } from "./range.ts";

export type Tier = "postgres" | "clickhouse";

export interface QueryRouterOptions {
  postgres: RangeStore;
  clickhouse?: RangeStore;
  /** Seconds ClickHouse is behind PostgreSQL (the shipper's lag gauge). */
  lagSeconds?: () => number;
  /**
   * Ranges at least this long go to ClickHouse (`query.clickhouseMinRangeMs`, default 24 h: in
   * bench:ingest --clickhouse the tiers are even at a day, PostgreSQL is 4x faster on minutes
   * and ClickHouse 3x faster on a month).
   */
  minRangeMs?: number;
  /** Fleets at least this large send every range over an hour to ClickHouse (`query.clickhouseMinFleet`, default 5,000). */
  minFleet?: number;
  /** How many agents are enrolled (cached by the caller). */
  fleetSize?: () => number;
  /** Days PostgreSQL keeps metrics / logs; ranges reaching further back need ClickHouse. */
  pgMetricsDays?: number;
  pgLogsDays?: number;
  maxLagSeconds?: number;
  now?: () => number;
}

export interface Routed<T> {
  tier: Tier;
  reason: string;
  result: T;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export function createQueryRouter(o: QueryRouterOptions) {
  const now = o.now ?? Date.now;
  let chFailedAt = -Infinity;

  function choose(from: number, to: number, pgDays: number | undefined): { tier: Tier; reason: string } {
    if (!o.clickhouse) return { tier: "postgres", reason: "no ClickHouse tier" };
    const beyondPg = pgDays !== undefined && from < now() - pgDays * DAY;
    const lag = o.lagSeconds?.() ?? 0;
    if (!beyondPg && lag > (o.maxLagSeconds ?? 60)) return { tier: "postgres", reason: `ClickHouse is ${Math.round(lag)} s behind` };
    if (!beyondPg && now() - chFailedAt < 30_000) return { tier: "postgres", reason: "ClickHouse failed a read in the last 30 s" };
    if (beyondPg) return { tier: "clickhouse", reason: `range starts before PostgreSQL's ${pgDays} days` };
    if (to - from >= (o.minRangeMs ?? DAY)) return { tier: "clickhouse", reason: "long range" };
    if ((o.fleetSize?.() ?? 0) >= (o.minFleet ?? 5000) && to - from >= HOUR) return { tier: "clickhouse", reason: "large fleet" };
    return { tier: "postgres", reason: "short range" };
  }

  async function run<T>(c: { tier: Tier; reason: string }, read: (s: RangeStore) => Promise<T>, pgHolds: boolean): Promise<Routed<T>> {
    if (c.tier === "clickhouse") {
      try {
        return { ...c, result: await read(o.clickhouse!) };
      } catch (e) {
        chFailedAt = now();
        if (!pgHolds) throw e;
        return { tier: "postgres", reason: `ClickHouse read failed: ${e instanceof Error ? e.message.split("\n")[0] : e}`, result: await read(o.postgres) };
      }
    }
    return { ...c, result: await read(o.postgres) };
  }

  return {
    choose,
    async seriesRange(agentId: number, names: string[], from: Date, to: Date, maxPoints?: number): Promise<Routed<SeriesPoints[]>> {
      const c = choose(from.getTime(), to.getTime(), o.pgMetricsDays);
      const pgHolds = o.pgMetricsDays === undefined || from.getTime() >= now() - o.pgMetricsDays * DAY;
      return run(c, (s) => s.seriesRange(agentId, names, from, to, maxPoints), pgHolds);
    },
    async searchLogs(q: LogSearch): Promise<Routed<LogLine[]>> {
      const c = choose(q.from.getTime(), q.to.getTime(), o.pgLogsDays);
      const pgHolds = o.pgLogsDays === undefined || q.from.getTime() >= now() - o.pgLogsDays * DAY;
      return run(c, (s) => s.searchLogs(q), pgHolds);
    },
  };
}

/** The router seen as a RangeStore (the tier it chose is dropped), for callers that only read. */
export function routedRangeStore(router: ReturnType<typeof createQueryRouter>): RangeStore {
  return {
    seriesRange: async (agentId, names, from, to, maxPoints) => (await router.seriesRange(agentId, names, from, to, maxPoints)).result,
    searchLogs: async (q) => (await router.searchLogs(q)).result,
  };
}
