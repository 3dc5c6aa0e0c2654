/**
 * Alert groups, after Prometheus Alertmanager's aggregation groups: the firing alerts of one
 * rule whose `group_by` labels are equal form one group and one notification, so an outage
 * of 200 hosts is one message, not 200.
 *  - group_wait: a new group waits this long before its first notification, to gather the
 *    alerts that start together;
 *  - group_interval: after a notification, changes (alerts added or resolved) wait at least
 *    this long before the next one;
 *  - repeat_interval: an unchanged group that still fires is notified again after this long,
 *    unless every alert in it is acknowledged.
 * Pure state over time: the evaluator feeds it each cycle's firing and resolved alerts.
 */
import type { Rule } from "./rules.ts";

export interface GroupAlert {
  fingerprint: string;
  status: "firing" | "resolved";
  agentId: number | null;
  subject: string;
  value: number | null;
  summary: string;
  startedAt: number;
  firedAt: number | null;
  resolvedAt: number | null;
  acknowledged: boolean;
  labels: Record<string, string>;
}

export interface GroupState {
  key: string;
  ruleId: number;
  labels: Record<string, string>;
  firstSeen: number;
  lastNotified: number | null;
  /** sorted fingerprints of the firing alerts the last notification named */
  lastFiring: string[];
}

export interface GroupNotification {
  groupKey: string;
  rule: Rule;
  labels: Record<string, string>;
  status: "firing" | "resolved";
  alerts: GroupAlert[];
}

export function groupKeyOf(rule: Rule, labels: Record<string, string>): { key: string; labels: Record<string, string> } {
  const g: Record<string, string> = {};
  for (const l of [...rule.groupBy].sort()) g[l] = labels[l] ?? "";
  return { key: `${rule.id}${Object.entries(g).map(([k, v]) => `|${k}=${v}`).join("")}`, labels: g };
}

export class Grouper {
  readonly groups = new Map<string, GroupState>();
  private readonly pendingResolved = new Map<string, Map<string, GroupAlert>>();

  constructor(initial: GroupState[] = []) {
    for (const g of initial) this.groups.set(g.key, g);
  }

  /**
   * One cycle: `firing` are the alerts firing now and not silenced, `resolved` those that
   * resolved this cycle. Returns the notifications due now; `changed` and `dropped` name the
   * groups whose stored state must be written or deleted.
   */
  plan(now: number, rules: Map<number, Rule>, firing: GroupAlert[], resolved: GroupAlert[]): { notifications: GroupNotification[]; changed: GroupState[]; dropped: string[] } {
    const current = new Map<string, { ruleId: number; labels: Record<string, string>; alerts: Map<string, GroupAlert> }>();
    const place = (a: GroupAlert, ruleId: number) => {
      const rule = rules.get(ruleId);
      if (!rule) return undefined;
      const { key, labels } = groupKeyOf(rule, a.labels);
      let c = current.get(key);
      if (!c) current.set(key, (c = { ruleId, labels, alerts: new Map() }));
      return c;
    };
    const ruleOf = (fp: string) => Number(fp.slice(0, fp.indexOf(":")));
    for (const a of firing) place(a, ruleOf(a.fingerprint))?.alerts.set(a.fingerprint, a);
    for (const a of resolved) {
      const rule = rules.get(ruleOf(a.fingerprint));
      if (!rule) continue;
      const { key } = groupKeyOf(rule, a.labels);
      if (!this.groups.get(key)?.lastFiring.includes(a.fingerprint)) continue; // its firing was never told
      let m = this.pendingResolved.get(key);
      if (!m) this.pendingResolved.set(key, (m = new Map()));
      m.set(a.fingerprint, a);
    }
    const notifications: GroupNotification[] = [];
    const changed: GroupState[] = [];
    const dropped: string[] = [];
    for (const key of new Set([...this.groups.keys(), ...current.keys()])) {
      const cur = current.get(key);
      let g = this.groups.get(key);
      if (!g) {
        g = { key, ruleId: cur!.ruleId, labels: cur!.labels, firstSeen: now, lastNotified: null, lastFiring: [] };
        this.groups.set(key, g);
        changed.push(g);
      }
      const rule = rules.get(g.ruleId);
      const alerts = cur?.alerts ?? new Map<string, GroupAlert>();
      const res = this.pendingResolved.get(key) ?? new Map<string, GroupAlert>();
      if (!rule) {
        this.drop(key, dropped);
        continue;
      }
      const fps = [...alerts.keys()].sort();
      let due = false;
      if (g.lastNotified === null) {
        if (alerts.size === 0) {
          this.drop(key, dropped);
          continue;
        }
        due = now >= g.firstSeen + rule.groupWaitSeconds * 1000;
      } else {
        if (alerts.size === 0 && res.size === 0) {
          // silenced or gone without a resolution to tell
          this.drop(key, dropped);
          continue;
        }
        const differs = res.size > 0 || fps.length !== g.lastFiring.length || fps.some((f, i) => f !== g!.lastFiring[i]);
        if (differs) due = now >= g.lastNotified + rule.groupIntervalSeconds * 1000;
        else due = alerts.size > 0 && now >= g.lastNotified + rule.repeatIntervalSeconds * 1000 && [...alerts.values()].some((a) => !a.acknowledged);
      }
      if (!due) continue;
      notifications.push({
        groupKey: key,
        rule,
        labels: g.labels,
        status: alerts.size > 0 ? "firing" : "resolved",
        alerts: [...[...alerts.values()].sort((a, b) => a.subject.localeCompare(b.subject)), ...[...res.values()].sort((a, b) => a.subject.localeCompare(b.subject))],
      });
      this.pendingResolved.delete(key);
      if (alerts.size === 0) {
        this.drop(key, dropped);
        continue;
      }
      g.lastNotified = now;
      g.lastFiring = fps;
      changed.push(g);
    }
    const live = [...new Set(changed)].filter((g) => this.groups.get(g.key) === g);
    return { notifications, changed: live, dropped };
  }

  private drop(key: string, dropped: string[]): void {
    this.groups.delete(key);
    this.pendingResolved.delete(key);
    dropped.push(key);
  }
}
