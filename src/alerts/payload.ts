/**
 * The notification document of one alert group (what the webhook channel sends as is, and
 * what the Slack, PagerDuty and email formats are made from). Pure.
 */
import type { GroupAlert, GroupNotification } from "./grouping.ts";

export interface PayloadAlert {
  status: "firing" | "resolved";
  fingerprint: string;
  subject: string;
  summary: string;
  value: number | null;
  labels: Record<string, string>;
  started_at: string;
  fired_at: string | null;
  resolved_at: string | null;
  acknowledged: boolean;
}

export interface NotificationPayload {
  version: 1;
  group_key: string;
  status: "firing" | "resolved";
  rule: { id: number; name: string; kind: string; severity: string };
  group_labels: Record<string, string>;
  title: string;
  counts: { firing: number; resolved: number };
  alerts: PayloadAlert[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function alertOf(a: GroupAlert): PayloadAlert {
  return {
    status: a.status, fingerprint: a.fingerprint, subject: a.subject, summary: a.summary, value: a.value, labels: a.labels,
    started_at: iso(a.startedAt)!, fired_at: iso(a.firedAt), resolved_at: iso(a.resolvedAt), acknowledged: a.acknowledged,
  };
}

export function buildPayload(n: GroupNotification): NotificationPayload {
  const firing = n.alerts.filter((a) => a.status === "firing").length;
  const resolved = n.alerts.length - firing;
  const title = n.status === "firing"
    ? `[FIRING:${firing}] ${n.rule.name}${resolved ? ` (${resolved} resolved)` : ""}`
    : `[RESOLVED] ${n.rule.name}`;
  return {
    version: 1,
    group_key: n.groupKey,
    status: n.status,
    rule: { id: n.rule.id, name: n.rule.name, kind: n.rule.kind, severity: n.rule.severity },
    group_labels: n.labels,
    title,
    counts: { firing, resolved },
    alerts: n.alerts.map(alertOf),
  };
}

/** Plain-text lines for email and chat: at most `max` alerts, then a count of the rest. */
export function summaryLines(p: NotificationPayload, max = 20): string[] {
  const lines = p.alerts.slice(0, max).map((a) => `${a.status === "firing" ? "FIRING" : "RESOLVED"}: ${a.summary}`);
  if (p.alerts.length > max) lines.push(`... and ${p.alerts.length - max} more`);
  return lines;
}
