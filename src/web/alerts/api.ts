/**
 * The JSON API of alerting (/api/alerts...): the alert list within the caller's host scope and
 * acknowledgement, the rules, silences (created and ended) and channels (their secrets only as
 * "set"). Same guard, permissions and audit records as the console pages (./routes.ts); each
 * route is described in /api/openapi.json. Rules and channels are changed in the console.
 */
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { auditRequest } from "../audit-request.ts";
import { json } from "../respond.ts";
import { acknowledgeAlert, listAlerts, type AlertRow } from "../../alerts/alert-list.ts";
import { expireSilence, listRules, listSilences, silenceTags } from "../../alerts/admin.ts";
import { listChannels } from "../../alerts/channels.ts";
import { refuseBeyondScope, saveSilence } from "./routes.ts";

const fail = (status: number, code: string, message: string) => json({ error: { code, message } }, status);
const idOf = (v: string | undefined) => (v && /^[1-9]\d{0,15}$/.test(v) ? Number(v) : 0);

function alertJson(a: AlertRow) {
  return {
    id: a.id, rule: { id: a.rule_id, name: a.rule_name }, severity: a.severity, host: a.agent_id === null ? null : { id: a.agent_id, hostname: a.hostname },
    subject: a.subject, state: a.state, value: a.value, summary: a.summary, started_at: a.started_at, fired_at: a.fired_at, resolved_at: a.resolved_at,
    acknowledged: a.acknowledged_at === null ? null : { at: a.acknowledged_at, by: a.acknowledged_by, note: a.ack_note },
  };
}

export function alertApiRoutes(s: ConsoleServices): ConsoleRoute[] {
  const { sql } = s;
  const by = (req: ConsoleRequest) => req.user!.username;
  return [
    {
      method: "GET", path: "/api/alerts", access: "alerts.view", hostData: "fleet",
      doc: {
        summary: "Alerts of hosts within your scope (and fleet-wide ones): firing and pending, with state=all also those resolved in the last days",
        query: { state: "open (default) | all", days: "with state=all: resolved within 1-90 days (default 7)" },
        responses: { "200": "{alerts: [{id, rule, severity, host, subject, state, value, summary, started_at, fired_at, resolved_at, acknowledged}]}", "400": "a bad parameter" },
      },
      async handler(req) {
        const state = req.query.get("state") ?? "open";
        if (state !== "open" && state !== "all") return fail(400, "bad_request", 'state must be "open" or "all"');
        const daysRaw = req.query.get("days");
        const days = daysRaw === null || daysRaw === "" ? 7 : Number(daysRaw);
        if (!Number.isInteger(days) || days < 1 || days > 90) return fail(400, "bad_request", "days must be a whole number from 1 to 90");
        const alerts = await listAlerts(sql, req.scope, { includeResolved: state === "all", days });
        return json({ alerts: alerts.map(alertJson) });
      },
    },
    {
      method: "POST", path: "/api/alerts/:id/acknowledge", access: "alerts.acknowledge", hostData: "fleet",
      doc: { summary: "Acknowledge an open alert (of a host within your scope)", params: { id: "alert id" }, body: { note: "why, up to 500 characters (optional)" }, responses: { "200": "{acknowledged: true, subject}", "404": "no such open, unacknowledged alert in your scope" } },
      async handler(req) {
        const id = idOf(req.params.id);
        const note = (req.form.get("note") ?? "").trim().slice(0, 500);
        const subject = id ? await acknowledgeAlert(sql, req.scope, id, by(req), note) : undefined;
        await auditRequest(sql, req, "config_change", "alerts.acknowledge", `alert:${req.params.id}${subject ? ` ${subject}` : ""}`, !!subject, { note });
        if (!subject) return fail(404, "not_found", "no such open, unacknowledged alert");
        return json({ acknowledged: true, subject });
      },
    },
    {
      method: "GET", path: "/api/alerts/rules", access: "alerts.view",
      doc: { summary: "Alert rules", responses: { "200": "{rules: [{id, name, kind, enabled, severity, scopeTags, labels, params, forSeconds, channelIds, groupBy, ...}]}" } },
      async handler() {
        return json({ rules: await listRules(sql) });
      },
    },
    {
      method: "GET", path: "/api/alerts/silences", access: "alerts.view",
      doc: { summary: "Silences and maintenance windows: live and scheduled first, then ended ones", responses: { "200": "{silences: [{id, kind, tags, rule_id, rule_name, starts_at, ends_at, comment, created_by, expired_at, active}]}" } },
      async handler() {
        const rows = await listSilences(sql);
        return json({ silences: rows.map((x) => ({ id: Number(x.id), kind: x.kind, tags: x.tags, rule_id: x.rule_id === null ? null : Number(x.rule_id), rule_name: x.rule_name, starts_at: x.starts_at, ends_at: x.ends_at, comment: x.comment, created_by: x.created_by, expired_at: x.expired_at, active: x.active })) });
      },
    },
    {
      method: "POST", path: "/api/alerts/silences", access: "alerts.silence",
      doc: {
        summary: "Create a silence (notifications held) or a maintenance window (no alerts at all)",
        body: { kind: "silence | maintenance", tags: "host tags it covers, comma separated (empty: all hosts)", rule_id: "one rule only (optional)", starts_at: "ISO 8601 (UTC)", ends_at: "ISO 8601, at most 90 days after the start", comment: "why (required)" },
        responses: { "200": "{id}", "400": "invalid (the reasons in the message)" },
      },
      async handler(req) {
        const r = await saveSilence(sql, req);
        if (r.id === undefined) return r.status === 403 ? fail(403, "forbidden", r.problems.join(" ")) : fail(400, "bad_request", r.problems.join(" "));
        return json({ id: r.id });
      },
    },
    {
      method: "POST", path: "/api/alerts/silences/:id/expire", access: "alerts.silence",
      doc: { summary: "End a silence or maintenance window now", params: { id: "silence id" }, responses: { "200": "{expired: true}", "404": "no such silence, or it has ended" } },
      async handler(req) {
        const id = idOf(req.params.id);
        const tags = id ? await silenceTags(sql, id) : undefined;
        const refused = tags ? await refuseBeyondScope(sql, req, `end silence ${id}`, tags) : null;
        if (refused) return fail(403, "forbidden", refused);
        const ok = id ? await expireSilence(sql, id) : false;
        await auditRequest(sql, req, "config_change", "alerts.silence.expire", `silence:${req.params.id}`, ok);
        if (!ok) return fail(404, "not_found", "no such silence, or it has ended");
        return json({ expired: true });
      },
    },
    {
      method: "GET", path: "/api/alerts/channels", access: "notifications.view",
      doc: { summary: "Notification channels; a secret (signing key, Slack URL, routing key, SMTP password) shows only as set", responses: { "200": "{channels: [{id, name, kind, enabled, config, secret: \"set\" | null}]}" } },
      async handler() {
        const cs = await listChannels(sql);
        return json({ channels: cs.map((c) => ({ id: c.id, name: c.name, kind: c.kind, enabled: c.enabled, config: c.config, secret: c.hasSecret ? "set" : null })) });
      },
    },
  ];
}
