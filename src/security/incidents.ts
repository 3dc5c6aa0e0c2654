/**
 * Incident timelines: signals of one host (FIM changes, new CIS failures, authentication
 * failures and service crashes from logs, agent disconnects, metric threshold breaches, and the
 * transitions of its alerts: firing, resolved, acknowledged) are
 * sorted in time and grouped while each follows the previous one within `windowMs`. A group
 * becomes an incident when it mixes at least two kinds of signal or holds one of severity >= 8.
 * Computed on read from the stored data, so it never lags behind ingest.
 */
import type { Sql } from "postgres";
import { AUTH_FAILURE_PATTERN } from "./score.ts";
import type { ScopedHost } from "../store/postgres/queries-console.ts";
import { readRawSamples } from "../store/postgres/metric-blocks.ts";
import type { MetricThreshold } from "../config.ts";

export type SignalKind = "fim" | "cis" | "auth" | "crash" | "disconnect" | "metric" | "alert";

export interface Signal {
  ts: number;
  kind: SignalKind;
  severity: number;
  summary: string;
  ref?: Record<string, unknown>;
}

export interface Incident {
  id: string;
  agentId: number;
  startMs: number;
  endMs: number;
  severity: number;
  kinds: SignalKind[];
  title: string;
  timeline: Signal[];
}

/** A metric breach that makes a signal (config.ts MetricThreshold; SERVERMIND_INCIDENT_THRESHOLDS). */
export type Threshold = MetricThreshold;

export interface IncidentOptions {
  fromMs: number;
  toMs: number;
  windowMs?: number;
  disconnectGapMs?: number;
  thresholds?: Threshold[];
  /** Signals gathered per kind at most (the newest are kept). */
  maxPerKind?: number;
}

export const CRASH_PATTERN = "(segfault|core dumped|Main process exited, code=(killed|dumped)|Failed with result '(signal|core-dump|exit-code|watchdog)'|Out of memory: Killed process)";

const KIND_NAMES: Record<SignalKind, string> = { fim: "file changes", cis: "failed CIS controls", auth: "authentication failures", crash: "service crashes", disconnect: "agent disconnects", metric: "threshold breaches", alert: "alerts" };

export function correlate(agentId: number, signals: Signal[], windowMs: number): Incident[] {
  const sorted = [...signals].sort((a, b) => a.ts - b.ts);
  const groups: Signal[][] = [];
  for (const s of sorted) {
    const g = groups[groups.length - 1];
    if (g && s.ts - g[g.length - 1].ts <= windowMs) g.push(s);
    else groups.push([s]);
  }
  const out: Incident[] = [];
  for (const g of groups) {
    const kinds = [...new Set(g.map((s) => s.kind))];
    const severity = Math.max(...g.map((s) => s.severity));
    if (kinds.length < 2 && severity < 8) continue;
    const top = [...g].sort((a, b) => b.severity - a.severity)[0];
    out.push({
      id: `${agentId}-${g[0].ts}`,
      agentId,
      startMs: g[0].ts,
      endMs: g[g.length - 1].ts,
      severity: Math.min(10, severity + (kinds.length >= 3 ? 1 : 0)),
      kinds,
      title: `${kinds.map((k) => KIND_NAMES[k]).join(" + ")}: ${top.summary}`,
      timeline: g,
    });
  }
  return out.reverse(); // newest first
}

/** Alert rule severities on the incident scale (0-10; 8 and above make an incident alone). */
const ALERT_SEVERITY: Record<string, number> = { info: 3, warning: 5, critical: 8 };

export async function gatherSignals(sql: Sql, host: ScopedHost, o: IncidentOptions): Promise<Signal[]> {
  const agentId = host.id;
  const from = new Date(o.fromMs);
  const to = new Date(o.toMs);
  const max = o.maxPerKind ?? 500;
  const gap = o.disconnectGapMs ?? 5 * 60_000;
  const [fim, cis, auth, crash, batches, agent, alerts] = await Promise.all([
    sql`select ts, type, severity, path, data, servermind_change(agent_id, path, data->>'from', ts) as own_change from security_events
        where agent_id = ${agentId} and ts >= ${from} and ts < ${to} and type like 'fim.%' and type <> 'fim.status' order by ts desc limit ${max}`,
    sql`select id, control_id, severity, observed, first_seen from cis_violations where agent_id = ${agentId} and first_seen >= ${from} and first_seen < ${to}
        order by first_seen desc limit ${max}`,
    sql`select date_trunc('minute', ts) as minute, count(*)::int as n, min(message) as sample from logs
        where agent_id = ${agentId} and ts >= ${from} and ts < ${to} and message ~* ${AUTH_FAILURE_PATTERN}
        group by 1 order by 1 desc limit ${max}`,
    sql`select ts, source, message from logs where agent_id = ${agentId} and ts >= ${from} and ts < ${to} and message ~* ${CRASH_PATTERN}
        order by ts desc limit ${max}`,
    sql`select committed_at from ingest_batches where agent_id = ${agentId} and committed_at >= ${new Date(o.fromMs - gap)} and committed_at < ${to}
        order by committed_at limit 100000`,
    sql`select last_seen from agents where id = ${agentId}`,
    // the host's alerts (src/alerts): each stored transition but pending, which is not yet news
    sql`select t.at, t.to_state, t.actor, t.value, i.id as instance_id, i.summary, r.name as rule, r.severity from alert_transitions t
        join alert_instances i on i.id = t.instance_id join alert_rules r on r.id = i.rule_id
        where i.agent_id = ${agentId} and t.at >= ${from} and t.at < ${to} and t.to_state <> 'pending'
        order by t.at desc limit ${max}`,
  ]);
  const signals: Signal[] = [];
  for (const r of fim) {
    const pm = (r.data as any)?.packageManager;
    signals.push({ ts: new Date(r.ts).getTime(), kind: "fim", severity: Number(r.severity), summary: `${String(r.type).slice(4)} ${r.path ?? ""}${r.own_change ? ` (ServerMind: ${r.own_change})` : pm ? ` (package manager${pm.package ? `: ${pm.package}` : ""})` : ""}`.trim(), ref: { type: r.type, path: r.path } });
  }
  for (const r of cis) signals.push({ ts: new Date(r.first_seen).getTime(), kind: "cis", severity: Number(r.severity), summary: `control ${r.control_id} started failing`, ref: { violation: Number(r.id), control: r.control_id } });
  for (const r of auth) signals.push({ ts: new Date(r.minute).getTime(), kind: "auth", severity: r.n >= 20 ? 6 : 4, summary: `${r.n} authentication failures in a minute`, ref: { count: r.n, sample: String(r.sample).slice(0, 200) } });
  for (const r of crash) signals.push({ ts: new Date(r.ts).getTime(), kind: "crash", severity: 5, summary: `${r.source}: ${String(r.message).slice(0, 160)}`, ref: { source: r.source } });
  // Disconnects: a silence longer than the gap between two committed batches, or up to now.
  const times = batches.map((r) => new Date(r.committed_at).getTime());
  const lastSeen = agent[0]?.last_seen ? new Date(agent[0].last_seen).getTime() : null;
  for (let k = 1; k < times.length; k++) {
    if (times[k] - times[k - 1] > gap) signals.push({ ts: times[k - 1], kind: "disconnect", severity: 5, summary: `agent silent for ${Math.round((times[k] - times[k - 1]) / 1000)} s`, ref: { until: times[k] } });
  }
  if (lastSeen !== null && o.toMs - lastSeen > gap && lastSeen >= o.fromMs) signals.push({ ts: lastSeen, kind: "disconnect", severity: 6, summary: `agent silent since ${new Date(lastSeen).toISOString()}`, ref: { ongoing: true } });
  for (const r of alerts) {
    const firing = r.to_state === "firing";
    signals.push({
      ts: new Date(r.at).getTime(), kind: "alert",
      // a critical alert firing is an incident by itself; resolutions and acknowledgements only annotate one
      severity: firing ? ALERT_SEVERITY[String(r.severity)] ?? 5 : 1,
      summary: `alert "${r.rule}" ${r.to_state === "acknowledged" ? `acknowledged by ${r.actor}` : r.to_state}${firing && r.summary ? `: ${String(r.summary).slice(0, 160)}` : ""}`,
      ref: { alert: Number(r.instance_id), state: r.to_state },
    });
  }
  for (const th of o.thresholds ?? []) signals.push(...(await thresholdBreaches(sql, agentId, th, from, to, max)));
  return signals;
}

async function thresholdBreaches(sql: Sql, agentId: number, th: Threshold, from: Date, to: Date, max: number): Promise<Signal[]> {
  // the metric itself and its labelled series (disk.used_pct{mount="/"}, one per file system)
  const series = await sql`select id, name from metric_series where agent_id = ${agentId} and (name = ${th.metric} or starts_with(name, ${th.metric + "{"})) order by name limit 50`;
  if (series.length === 0) return [];
  // One signal per series and minute in breach, with the worst value of that minute; the raw
  // blocks are read once for all the series and decoded in the server (store/postgres/metric-blocks.ts).
  const minutes = new Map<number, Map<number, { hi: number; lo: number }>>(series.map((sr) => [Number(sr.id), new Map()]));
  await readRawSamples(sql, agentId, [...minutes.keys()], from.getTime(), to.getTime(), (sid, t, v) => {
    if (!((th.above !== undefined && th.above !== null && v > th.above) || (th.below !== undefined && th.below !== null && v < th.below))) return;
    const byMinute = minutes.get(sid)!;
    const minute = Math.floor(t / 60_000) * 60_000;
    const m = byMinute.get(minute);
    if (!m) byMinute.set(minute, { hi: v, lo: v });
    else {
      if (v > m.hi) m.hi = v;
      if (v < m.lo) m.lo = v;
    }
  });
  const out: Signal[] = [];
  for (const sr of series) {
    const name = String(sr.name);
    const rows = [...minutes.get(Number(sr.id))!].sort((x, y) => y[0] - x[0]).slice(0, max);
    for (const [minute, r] of rows) {
      out.push({
        ts: minute,
        kind: "metric" as const,
        severity: th.severity ?? 4,
        summary: `${name} ${th.above !== undefined ? `above ${th.above} (max ${r.hi})` : `below ${th.below} (min ${r.lo})`}`,
        ref: { metric: name, max: r.hi, min: r.lo },
      });
    }
  }
  return out;
}

export async function hostIncidents(sql: Sql, host: ScopedHost, o: IncidentOptions): Promise<Incident[]> {
  return correlate(host.id, await gatherSignals(sql, host, o), o.windowMs ?? 15 * 60_000);
}
