/**
 * The conditions of the host and metric rules, evaluated over an in-memory snapshot of the
 * fleet (hosts and the latest value of every series). Pure: snapshot in, observations out.
 * The query-based kinds (security, logs) are observed in sources.ts.
 */
import { inTagScope, stillActive, type Rule } from "./rules.ts";

export interface HostView {
  id: number;
  hostname: string;
  tags: string[];
  /** ms since the epoch; null before the first frame */
  lastSeen: number | null;
}

export interface LatestView {
  /** ms since the epoch of the newest sample */
  ts: number;
  /** identifies the name set (equal keys, equal names) */
  key: string;
  names: readonly string[];
  values: ArrayLike<number>;
}

/** One subject whose condition holds this cycle. */
export interface Observation {
  fingerprint: string;
  agentId: number | null;
  subject: string;
  value: number | null;
  summary: string;
}

export interface RuleResult {
  active: Observation[];
  /** Open alerts whose subject has no data this cycle: left as they are. */
  held: Set<string>;
  /** Open alerts whose condition no longer holds, with the value that cleared them. */
  cleared?: Map<string, number>;
}

/** Data older than this is stale: a metric alert neither fires nor clears on it. */
export const STALE_MS = 5 * 60_000;

/**
 * base metric name -> indices of its series, per name set. Keyed by the names array itself
 * (LatestCache hands hosts with equal name sets one shared array), so the hot loop's lookup is
 * an identity lookup, never a hash of a long string.
 */
export class SeriesIndex {
  private byNames = new Map<readonly string[], Map<string, number[]>>();

  lookup(l: LatestView, metric: string): number[] | undefined {
    let m = this.byNames.get(l.names);
    if (!m) {
      m = new Map();
      l.names.forEach((n, i) => {
        const b = n.indexOf("{");
        const base = b < 0 ? n : n.slice(0, b);
        const list = m!.get(base);
        if (list) list.push(i);
        else m!.set(base, [i]);
      });
      if (this.byNames.size > 10_000) this.byNames.clear();
      this.byNames.set(l.names, m);
    }
    return m.get(metric);
  }
}

/** The recent samples of the series that rate rules read, to compute changes per minute. */
export class RateHistory {
  private samples = new Map<number, Map<string, { ts: number[]; v: number[] }>>();
  constructor(private readonly keepMs = 3_600_000) {}

  add(agentId: number, series: string, ts: number, v: number): void {
    let m = this.samples.get(agentId);
    if (!m) this.samples.set(agentId, (m = new Map()));
    let s = m.get(series);
    if (!s) m.set(series, (s = { ts: [], v: [] }));
    if (s.ts.length && s.ts[s.ts.length - 1]! >= ts) return;
    s.ts.push(ts);
    s.v.push(v);
    while (s.ts.length > 2 && s.ts[0]! < ts - this.keepMs) {
      s.ts.shift();
      s.v.shift();
    }
  }

  /** Change per minute between the oldest sample within the window and the newest. */
  perMinute(agentId: number, series: string, windowMs: number): number | undefined {
    const s = this.samples.get(agentId)?.get(series);
    if (!s || s.ts.length < 2) return undefined;
    const tn = s.ts[s.ts.length - 1]!;
    let i = 0;
    while (i < s.ts.length - 2 && s.ts[i]! < tn - windowMs) i++;
    const dt = tn - s.ts[i]!;
    return dt > 0 ? ((s.v[s.v.length - 1]! - s.v[i]!) / dt) * 60_000 : undefined;
  }
}

export interface HostSnapshot {
  hosts: HostView[];
  latest: Map<number, LatestView>;
}

/** Hosts by tag, built once per cycle, so a rule's scope costs its hosts, not the fleet. */
export class ScopeIndex {
  private readonly byTag = new Map<string, HostView[]>();
  private readonly cache = new Map<string, HostView[]>();

  constructor(private readonly hosts: HostView[]) {
    for (const h of hosts) {
      for (const t of h.tags) {
        const l = this.byTag.get(t);
        if (l) l.push(h);
        else this.byTag.set(t, [h]);
      }
    }
  }

  hostsOf(scopeTags: readonly string[]): HostView[] {
    if (scopeTags.length === 0) return this.hosts;
    if (scopeTags.length === 1) return this.byTag.get(scopeTags[0]!) ?? [];
    const key = [...scopeTags].sort().join("\n");
    let l = this.cache.get(key);
    if (!l) {
      const seen = new Set<HostView>();
      for (const t of scopeTags) for (const h of this.byTag.get(t) ?? []) seen.add(h);
      l = [...seen];
      this.cache.set(key, l);
    }
    return l;
  }
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2).replace(/\.?0+$/, ""));

const comparators: Record<string, (v: number, t: number) => boolean> = {
  ">": (v, t) => v > t, ">=": (v, t) => v >= t, "<": (v, t) => v < t, "<=": (v, t) => v <= t,
};

/** The open alerts of one rule: their fingerprints and the hosts they are about. */
export interface OpenOfRule {
  fps: ReadonlySet<string>;
  agents: ReadonlySet<number | null>;
}

/**
 * Observes one host or metric rule over the snapshot's hosts in the rule's scope. `open` holds
 * the rule's open alerts (hysteresis keeps an open alert active until the clear value). The
 * loop is the evaluator's hot path (2 M rule-host pairs a cycle in bench/alerts.bench.ts): a
 * quiet pair costs two map lookups and a comparison, and allocates nothing.
 */
export function observe(rule: Rule, snap: HostSnapshot, now: number, index: SeriesIndex, rates: RateHistory, open: OpenOfRule | undefined, scopes?: ScopeIndex): RuleResult {
  const active: Observation[] = [];
  const held = new Set<string>();
  const cleared = new Map<string, number>();
  const p = rule.params;
  const hosts = scopes ? scopes.hostsOf(rule.scopeTags) : snap.hosts.filter((h) => inTagScope(rule.scopeTags, h.tags));
  const cmp = comparators[p.op ?? ">"]!;
  const threshold = p.threshold!;
  const fpOf = (h: HostView, series: string, single: boolean) => (single && series === p.metric ? `${rule.id}:${h.id}` : `${rule.id}:${h.id}:${series}`);
  for (const h of hosts) {
    if (rule.kind === "host_offline") {
      if (h.lastSeen === null) continue; // never connected: nothing went offline
      const gone = now - h.lastSeen;
      if (gone >= p.offline_seconds! * 1000) active.push({ fingerprint: `${rule.id}:${h.id}`, agentId: h.id, subject: h.hostname, value: Math.round(gone / 1000), summary: `${h.hostname} not seen for ${Math.round(gone / 1000)} s` });
      continue;
    }
    const l = snap.latest.get(h.id);
    if (rule.kind === "metric_absent") {
      const idx = l && index.lookup(l, p.metric!);
      const has = !!idx && idx.some((i) => l!.values[i] === l!.values[i]) && now - l!.ts < p.absent_seconds! * 1000;
      if (!has && h.lastSeen !== null) active.push({ fingerprint: `${rule.id}:${h.id}`, agentId: h.id, subject: h.hostname, value: null, summary: `${h.hostname}: no ${p.metric} for ${p.absent_seconds} s` });
      continue;
    }
    if (!l) continue;
    const idx = index.lookup(l, p.metric!);
    if (!idx) continue;
    const stale = now - l.ts > STALE_MS;
    const hostOpen = open !== undefined && open.agents.has(h.id);
    const single = idx.length === 1;
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k]!;
      const v = l.values[i]!;
      if (v !== v || stale) {
        if (hostOpen) held.add(fpOf(h, l.names[i]!, single));
        continue;
      }
      if (rule.kind === "metric_threshold") {
        if (!hostOpen) {
          if (!cmp(v, threshold)) continue;
          const series = l.names[i]!;
          active.push({ fingerprint: fpOf(h, series, single), agentId: h.id, subject: `${h.hostname} ${series}`, value: v, summary: `${h.hostname}: ${series} = ${fmt(v)} (${p.op} ${threshold})` });
          continue;
        }
        const series = l.names[i]!;
        const fp = fpOf(h, series, single);
        const wasOpen = open!.fps.has(fp);
        const on = wasOpen ? stillActive(v, p.op!, threshold, p.clear) : cmp(v, threshold);
        if (on) active.push({ fingerprint: fp, agentId: h.id, subject: `${h.hostname} ${series}`, value: v, summary: `${h.hostname}: ${series} = ${fmt(v)} (${p.op} ${threshold})` });
        else if (wasOpen) cleared.set(fp, v);
      } else if (rule.kind === "metric_rate") {
        const series = l.names[i]!;
        rates.add(h.id, series, l.ts, v);
        const r = rates.perMinute(h.id, series, p.window_seconds! * 1000);
        if (r === undefined) {
          if (hostOpen) held.add(fpOf(h, series, single));
        } else if (cmp(r, threshold)) active.push({ fingerprint: fpOf(h, series, single), agentId: h.id, subject: `${h.hostname} ${series}`, value: r, summary: `${h.hostname}: ${series} changes ${fmt(r)}/min (${p.op} ${threshold})` });
      }
    }
  }
  return { active, held, cleared };
}
