/**
 * One evaluation cycle over every enabled rule: observe (conditions.ts from memory, sources.ts
 * from the database), step each alert's state (state.ts), store the transitions, then group
 * the firing alerts (grouping.ts) and queue the notifications that are due. Only the elected
 * node (leader.ts) runs it; a new leader loads the open alerts and groups where the last one
 * left them.
 */
import type { Sql } from "postgres";
import { inTagScope, type Rule } from "./rules.ts";
import { observe, RateHistory, ScopeIndex, SeriesIndex, type HostSnapshot, type HostView, type Observation } from "./conditions.ts";
import { step, type OpenAlert } from "./state.ts";
import { Grouper, type GroupAlert, type GroupNotification } from "./grouping.ts";
import { buildPayload } from "./payload.ts";
import { DATABASE_KINDS, observeFromDatabase } from "./sources.ts";
import {
  enabledChannelIds, LatestCache, loadAcknowledged, loadActiveSilences, loadGroups, loadHosts, loadOpenAlerts, loadResolvedAmong, loadRules,
  queueNotifications, rulesVersion, saveGroups, writeCycle, type ActiveSilence, type CycleWrites, type LocalLatest,
} from "./store.ts";

export interface CycleStats {
  rules: number;
  hosts: number;
  opened: number;
  fired: number;
  resolved: number;
  notifications: number;
  evaluateMs: number;
  totalMs: number;
}

export interface EvaluationResult {
  writes: CycleWrites;
  firing: GroupAlert[];
  resolved: GroupAlert[];
}

export function alertLabels(rule: Rule, host: HostView | undefined): Record<string, string> {
  return { ...rule.labels, alertname: rule.name, severity: rule.severity, host: host?.hostname ?? "" };
}

function silenced(silences: ActiveSilence[], kind: ActiveSilence["kind"], rule: Rule, host: HostView | undefined): boolean {
  for (const s of silences) {
    if (s.kind !== kind && !(kind === "silence" && s.kind === "maintenance")) continue;
    if (s.ruleId !== null && s.ruleId !== rule.id) continue;
    if (s.tags.length === 0 ? true : !!host && inTagScope(s.tags, host.tags)) return true;
  }
  return false;
}

export class Evaluator {
  private readonly open = new Map<string, OpenAlert>();
  private readonly index = new SeriesIndex();
  private readonly rates = new RateHistory();
  private readonly cache: LatestCache;
  private grouper = new Grouper();
  private rules: { version: string; list: Rule[] } | undefined;
  private needsLoad = false;

  constructor(private readonly sql: Sql, local?: LocalLatest, private readonly log: (m: string) => void = (m) => console.error(m)) {
    this.cache = new LatestCache(sql, local);
  }

  /** Loads the open alerts and the groups' state (at start, and when this node becomes leader). */
  async load(): Promise<void> {
    this.open.clear();
    for (const a of await loadOpenAlerts(this.sql)) this.open.set(a.fingerprint, a);
    const groups = await loadGroups(this.sql);
    this.grouper = new Grouper(groups);
    // told firing, resolved since, not told resolved yet (the last leader held that in memory)
    const told = [...new Set(groups.flatMap((g) => g.lastFiring))].filter((fp) => !this.open.has(fp));
    this.carriedResolved = await loadResolvedAmong(this.sql, told);
  }

  private carriedResolved: Array<OpenAlert & { resolvedAt: number }> = [];

  get openAlerts(): ReadonlyMap<string, OpenAlert> {
    return this.open;
  }

  /**
   * The in-memory part of a cycle: every rule over the snapshot (and the database's
   * observations of the query-based rules), giving the writes and the group inputs.
   */
  evaluate(rules: Rule[], snap: HostSnapshot, fromDb: Map<number, Observation[]>, silences: ActiveSilence[], now: number): EvaluationResult {
    const hostById = new Map(snap.hosts.map((h) => [h.id, h]));
    const writes: CycleWrites = { opened: [], updated: [], resolved: [], now };
    const firing: GroupAlert[] = [];
    const resolved: GroupAlert[] = [];
    const byRule = new Map<number, OpenAlert[]>();
    for (const a of this.open.values()) {
      const l = byRule.get(a.ruleId);
      if (l) l.push(a);
      else byRule.set(a.ruleId, [a]);
    }
    const scopes = new ScopeIndex(snap.hosts);
    const known = new Set(rules.map((r) => r.id));
    for (const [ruleId, list] of byRule) if (!known.has(ruleId)) for (const a of list) this.open.delete(a.fingerprint); // rule deleted
    const groupAlert = (rule: Rule, a: OpenAlert, status: GroupAlert["status"]): GroupAlert => ({
      fingerprint: a.fingerprint, status, agentId: a.agentId, subject: a.subject, value: a.value, summary: a.summary,
      startedAt: a.startedAt, firedAt: a.firedAt, resolvedAt: status === "resolved" ? now : null, acknowledged: a.acknowledgedAt !== null,
      labels: alertLabels(rule, a.agentId === null ? undefined : hostById.get(a.agentId)),
    });
    const ruleById = new Map(rules.map((r) => [r.id, r]));
    for (const a of this.carriedResolved) {
      const rule = ruleById.get(a.ruleId);
      if (rule) resolved.push({ ...groupAlert(rule, a, "resolved"), resolvedAt: a.resolvedAt });
    }
    this.carriedResolved = [];
    for (const rule of rules) {
      const mine = byRule.get(rule.id) ?? [];
      let active: Observation[];
      let held = new Set<string>();
      let cleared: Map<string, number> | undefined;
      if (!rule.enabled) active = [];
      else if (DATABASE_KINDS.has(rule.kind)) {
        const obs = fromDb.get(rule.id);
        if (!obs) {
          // its query failed this cycle: nothing is known, every open alert stays as it is
          for (const a of mine) {
            const host = a.agentId === null ? undefined : hostById.get(a.agentId);
            if (a.state === "firing" && !silenced(silences, "silence", rule, host)) firing.push(groupAlert(rule, a, "firing"));
          }
          continue;
        }
        active = obs;
      }
      else ({ active, held, cleared } = observe(rule, snap, now, this.index, this.rates, mine.length ? { fps: new Set(mine.map((a) => a.fingerprint)), agents: new Set(mine.map((a) => a.agentId)) } : undefined, scopes));
      const seen = new Set<string>();
      for (const o of active) {
        seen.add(o.fingerprint);
        const host = o.agentId === null ? undefined : hostById.get(o.agentId);
        const prev = this.open.get(o.fingerprint);
        const s = step(prev, o, rule.id, o.fingerprint, now, rule.forSeconds, silenced(silences, "maintenance", rule, host));
        if (s.kind === "open") {
          this.open.set(o.fingerprint, s.alert);
          writes.opened.push({ alert: s.alert, transitions: s.transitions, labels: alertLabels(rule, host) });
        } else if (s.kind === "update") {
          this.open.set(o.fingerprint, s.alert);
          writes.updated.push({ alert: s.alert, transitions: s.transitions });
        }
        const a = this.open.get(o.fingerprint);
        if (a?.state === "firing" && !silenced(silences, "silence", rule, host)) firing.push(groupAlert(rule, a, "firing"));
      }
      for (const a of mine) {
        if (seen.has(a.fingerprint) || held.has(a.fingerprint)) {
          if (held.has(a.fingerprint) && a.state === "firing") {
            const host = a.agentId === null ? undefined : hostById.get(a.agentId);
            if (!silenced(silences, "silence", rule, host)) firing.push(groupAlert(rule, a, "firing"));
          }
          continue;
        }
        const s = step(a, undefined, rule.id, a.fingerprint, now, rule.forSeconds, false);
        if (s.kind !== "resolve") continue;
        this.open.delete(a.fingerprint);
        const v = cleared?.get(a.fingerprint);
        if (v !== undefined) a.value = v;
        writes.resolved.push({ alert: a, transitions: s.transitions });
        if (a.state === "firing") resolved.push(groupAlert(rule, a, "resolved"));
      }
    }
    return { writes, firing, resolved };
  }

  /** Groups this cycle's alerts; returns the notifications due now, with the group state to store. */
  group(rules: Rule[], r: EvaluationResult, now: number) {
    return this.grouper.plan(now, new Map(rules.map((x) => [x.id, x])), r.firing, r.resolved);
  }

  /**
   * A whole cycle against the database. When a cycle fails part-way, memory may be ahead of
   * what was stored: the next cycle reloads the open alerts and groups first.
   */
  async cycle(now = Date.now()): Promise<CycleStats> {
    if (this.needsLoad) await this.load();
    this.needsLoad = true;
    const stats = await this.run(now);
    this.needsLoad = false;
    return stats;
  }

  private async run(now: number): Promise<CycleStats> {
    const t0 = performance.now();
    const version = await rulesVersion(this.sql);
    if (this.rules?.version !== version) this.rules = { version, list: await loadRules(this.sql) };
    const rules = this.rules.list;
    const hosts = await loadHosts(this.sql);
    this.cache.overlaySeen(hosts);
    const latest = await this.cache.refresh();
    const silences = await loadActiveSilences(this.sql, now);
    const acked = await loadAcknowledged(this.sql, [...this.open.values()].filter((a) => a.id !== undefined && a.acknowledgedAt === null).map((a) => a.id!));
    for (const a of this.open.values()) if (a.id !== undefined && acked.has(a.id)) a.acknowledgedAt = acked.get(a.id)!;
    const hostMap = new Map(hosts.map((h) => [h.id, h]));
    const fromDb = new Map<number, Observation[]>();
    for (const rule of rules) {
      if (!rule.enabled || !DATABASE_KINDS.has(rule.kind)) continue;
      try {
        fromDb.set(rule.id, await observeFromDatabase(this.sql, rule, hostMap, now));
      } catch (e) {
        // one rule's failing query (say, a pattern PostgreSQL's regular expressions refuse) must not stop the others
        this.log(`alert rule ${rule.id} (${rule.name}) could not be evaluated: ${e instanceof Error ? e.message : e}`);
      }
    }
    const t1 = performance.now();
    const result = this.evaluate(rules, { hosts, latest }, fromDb, silences, now);
    const evaluateMs = performance.now() - t1;
    await writeCycle(this.sql, result.writes);
    const plan = this.group(rules, result, now);
    // the notifications and the groups' new state together: a crash between them neither loses nor repeats one
    if (plan.notifications.length || plan.changed.length || plan.dropped.length) {
      await this.sql.begin(async (tx) => {
        await this.queue(tx as unknown as Sql, plan.notifications);
        await saveGroups(tx as unknown as Sql, plan.changed, plan.dropped);
      });
    }
    return {
      rules: rules.length, hosts: hosts.length, opened: result.writes.opened.length,
      fired: [...result.writes.opened, ...result.writes.updated].filter((w) => w.transitions.some((t) => t.to === "firing")).length,
      resolved: result.writes.resolved.length, notifications: plan.notifications.length, evaluateMs, totalMs: performance.now() - t0,
    };
  }

  private async queue(sql: Sql, ns: GroupNotification[]): Promise<void> {
    if (!ns.length) return;
    const all = await enabledChannelIds(sql);
    const items = ns.flatMap((n) => {
      const payload = buildPayload(n);
      const channels = n.rule.channelIds.length ? n.rule.channelIds.filter((c) => all.includes(c)) : all;
      return channels.map((channelId) => ({ groupKey: n.groupKey, ruleId: n.rule.id, channelId, payload }));
    });
    await queueNotifications(sql, items);
  }
}
