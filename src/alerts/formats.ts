/**
 * The wire formats of the channels, made from a notification document (payload.ts). Pure.
 *  - webhook: the document as JSON, signed: `X-ServerMind-Signature: t=<unix seconds>,v1=<hex>`
 *    where v1 = HMAC-SHA256(key, "<t>.<body>");
 *  - Slack-compatible incoming webhook: `text` plus one attachment;
 *  - PagerDuty Events API v2: trigger / resolve with the group key as dedup_key;
 *  - email: subject and plain-text body.
 */
import { createHmac } from "node:crypto";
import { summaryLines, type NotificationPayload } from "./payload.ts";

export const SIGNATURE_HEADER = "x-servermind-signature";

export function webhookSignature(key: string, unixSeconds: number, body: string): string {
  return `t=${unixSeconds},v1=${createHmac("sha256", key).update(`${unixSeconds}.${body}`).digest("hex")}`;
}

const COLORS: Record<string, string> = { critical: "#d00000", warning: "#e8a317", info: "#3a7bd5", resolved: "#2e8540" };

export function slackBody(p: NotificationPayload): Record<string, unknown> {
  return {
    text: p.title,
    attachments: [{
      color: p.status === "resolved" ? COLORS.resolved : COLORS[p.rule.severity],
      title: p.title,
      text: summaryLines(p).join("\n"),
      footer: `ServerMind · ${p.rule.severity}`,
    }],
  };
}

export function pagerDutyBody(p: NotificationPayload, routingKey: string): Record<string, unknown> {
  if (p.status === "resolved") return { routing_key: routingKey, event_action: "resolve", dedup_key: p.group_key };
  return {
    routing_key: routingKey,
    event_action: "trigger",
    dedup_key: p.group_key,
    payload: {
      summary: p.title.slice(0, 1024),
      source: "servermind",
      severity: p.rule.severity,
      timestamp: p.alerts[0]?.fired_at ?? p.alerts[0]?.started_at,
      component: p.group_labels.host || undefined,
      group: p.rule.name,
      class: p.rule.kind,
      custom_details: { firing: p.counts.firing, resolved: p.counts.resolved, alerts: summaryLines(p) },
    },
  };
}

export function emailMessage(p: NotificationPayload): { subject: string; text: string } {
  return {
    subject: `${p.title} [${p.rule.severity}]`,
    text: [`${p.title}`, `Rule: ${p.rule.name} (${p.rule.kind}, ${p.rule.severity})`, "", ...summaryLines(p, 200), "", `Group: ${p.group_key}`, "-- ServerMind"].join("\n"),
  };
}
