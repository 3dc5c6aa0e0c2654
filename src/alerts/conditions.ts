/**
 * The conditions of the host and metric rules, evaluated over an in-memory snapshot of the
 * fleet (hosts and the latest value of every series). Pure: snapshot in, observations out.
 * The query-based kinds (security, logs) are observed in sources.ts.
 */
import { compare, inTagScope, stillActive, type Rule } from "./rules.ts";

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

/** base metric name -> indices of its series, per name set (hosts share a few name sets). */
export class SeriesIndex {
  private byKey = new Map<string, Map<string, number[]>>();

  lookup(l: LatestView, metric: string): number[] | undefined {
    let m = this.byKey.get(l.key);
    if (!m) {
      m = new Map();
      l.names.forEach((n, i) => {
        const b = n.indexOf("{");
        const base = b < 0 ? n : n.slice(0, b);
        const list = m!.get(base);
        if (list) list.push(i);
        else m!.set(base, [i]);
      });
      if (this.byKey.size > 10_000) this.byKey.clear();
      this.byKey.set(l.key, m);
    }
    return m.get(metric);
  }
}

/** The recent samples of the series that rate rules read, to compute changes per minute. */
export class RateHistory {
  private samples = new Map<string, { ts: number[]; v: number[] }>();
  constructor(private readonly keepMs = 3_600_000) {}

  add(key: string, ts: number, v: number): void {
    let s = this.samples.get(key);
    if (!s) this.samples.set(key, (s = { ts: [], v: [] }));
    if (s.ts.length && s.ts[s.ts.length - 1]! >= ts) return;
    s.ts.push(ts);
    s.v.push(v);
    while (s.ts.length > 2 && s.ts[0]! < ts - this.keepMs) {
      s.ts.shift();
      s.v.shift();
    }
  }

  /** Change per minute between the oldest sample within the window and the newest. */
  perMinute(key: string, windowMs: number): number | undefined {
    const s = this.samples.get(key);
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

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2).replace(/\.?0+$/, ""));

/**
 * Observes one host or metric rule over the snapshot. `isOpen(fp)` tells whether an alert is
 * open for a fingerprint (hysteresis keeps an open alert active until the clear value).
 */
export function observe(rule: Rule, snap: HostSnapshot, now: number, index: SeriesIndex, rates: RateHistory, isOpen: (fp: string) => boolean): RuleResult {
  const active: Observation[] = [];
  const held = new Set<string>();
  const cleared = new Map<string, number>();
  const p = rule.params;
  for (const h of snap.hosts) {
    if (!inTagScope(rule.scopeTags, h.tags)) continue;
    const base = `${rule.id}:${h.id}`;
    if (rule.kind === "host_offline") {
      if (h.lastSeen === null) continue; // never connected: nothing went offline
      const gone = now - h.lastSeen;
      if (gone >= p.offline_seconds! * 1000) active.push({ fingerprint: base, agentId: h.id, subject: h.hostname, value: Math.round(gone / 1000), summary: `${h.hostname} not seen for ${Math.round(gone / 1000)} s` });
      continue;
    }
    const l = snap.latest.get(h.id);
    if (rule.kind === "metric_absent") {
      const idx = l && index.lookup(l, p.metric!);
      const has = !!idx && idx.some((i) => l!.values[i] === l!.values[i]) && now - l!.ts < p.absent_seconds! * 1000;
      if (!has && h.lastSeen !== null) active.push({ fingerprint: base, agentId: h.id, subject: h.hostname, value: null, summary: `${h.hostname}: no ${p.metric} for ${p.absent_seconds} s` });
      continue;
    }
    if (!l) continue;
    const idx = index.lookup(l, p.metric!);
    if (!idx) continue;
    const stale = now - l.ts > STALE_MS;
    for (const i of idx) {
      const series = l.names[i]!;
      const fp = idx.length === 1 && series === p.metric ? base : `${base}:${series}`;
      const v = l.values[i]!;
      if (v !== v || stale) {
        held.add(fp);
        continue;
      }
      if (rule.kind === "metric_threshold") {
        const on = isOpen(fp) ? stillActive(v, p.op!, p.threshold!, p.clear) : compare(v, p.op!, p.threshold!);
        if (on) active.push({ fingerprint: fp, agentId: h.id, subject: `${h.hostname} ${series}`, value: v, summary: `${h.hostname}: ${series} = ${fmt(v)} (${p.op} ${p.threshold})` });
        else if (isOpen(fp)) cleared.set(fp, v);
      } else if (rule.kind === "metric_rate") {
        const key = `${h.id}\n${series}`;
        rates.add(key, l.ts, v);
        const r = rates.perMinute(key, p.window_seconds! * 1000);
        if (r === undefined) held.add(fp);
        else if (compare(r, p.op!, p.threshold!)) active.push({ fingerprint: fp, agentId: h.id, subject: `${h.hostname} ${series}`, value: r, summary: `${h.hostname}: ${series} changes ${fmt(r)}/min (${p.op} ${p.threshold})` });
      }
    }
  }
  return { active, held, cleared };
}
