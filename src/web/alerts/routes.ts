/**
 * Alerting in the console: the alert list with acknowledgement (host data, within the scope),
 * rules, silences and maintenance windows, notification channels with their deliveries.
 * Every change and acknowledgement is audited. Models: src/alerts/ (alert-list.ts, admin.ts,
 * channels.ts, dispatch.ts).
 */
import type { Sql } from "postgres";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { auditRequest } from "../audit-request.ts";
import { ago, isoMinute } from "../format.ts";
import { acknowledgeAlert, hostAlerts, listAlerts, recentTransitions } from "../../alerts/alert-list.ts";
import {
  createRule, createSilence, deleteRule, deliveryAttempts, expireSilence, getRule, listDeliveries, listRules, listSilences,
  silenceTags, unknownChannelIds, updateRule, validateSilence, type SilenceInput,
} from "../../alerts/admin.ts";
import { describeRule, RULE_KINDS, SEVERITIES, validateRule, type Op, type Rule, type RuleInput, type RuleKind, type Severity } from "../../alerts/rules.ts";
import {
  CHANNEL_KINDS, createChannel, deleteChannel, getChannel, listChannels, updateChannel, validateChannel,
  type Channel, type ChannelConfig, type ChannelKind,
} from "../../alerts/channels.ts";
import { sendTestNotification } from "../../alerts/dispatch.ts";

const list = (v: string | null) => [...new Set((v ?? "").split(/[\s,]+/).map((x) => x.trim()).filter(Boolean))];
const int = (v: string | null, dflt: number) => (v === null || v.trim() === "" ? dflt : Number(v));
/** A path or form id: a positive whole number within int8, else 0 (which matches nothing). */
const idOf = (v: string | null | undefined) => (v && /^[1-9]\d{0,15}$/.test(v) ? Number(v) : 0);
const optNum = (v: string | null) => (v === null || v.trim() === "" ? undefined : Number(v));

/** A rule from its form: the parameters of its kind only. */
export function parseRuleForm(f: URLSearchParams): RuleInput {
  const kind = (f.get("kind") ?? "") as RuleKind;
  const p: RuleInput["params"] = {};
  const set = <K extends keyof RuleInput["params"]>(k: K, v: RuleInput["params"][K] | undefined) => {
    if (v !== undefined) p[k] = v;
  };
  if (kind.startsWith("metric_")) set("metric", (f.get("metric") ?? "").trim());
  if (kind === "metric_threshold" || kind === "metric_rate") {
    set("op", (f.get("op") ?? "") as Op);
    set("threshold", optNum(f.get("threshold")));
  }
  if (kind === "metric_threshold") set("clear", optNum(f.get("clear")));
  if (["metric_rate", "security_score_drop", "fim_critical_path", "failed_signins", "log_pattern"].includes(kind)) set("window_seconds", optNum(f.get("window_seconds")));
  if (kind === "metric_absent") set("absent_seconds", optNum(f.get("absent_seconds")));
  if (kind === "host_offline") set("offline_seconds", optNum(f.get("offline_seconds")));
  if (kind === "security_score_drop") set("drop", optNum(f.get("drop")));
  if (kind === "cis_critical") set("min_severity", optNum(f.get("min_severity")));
  if (kind === "fim_critical_path") set("paths", list(f.get("paths")));
  if (kind === "failed_signins" || kind === "log_pattern") set("min_count", optNum(f.get("min_count")));
  if (kind === "log_pattern") set("pattern", f.get("pattern") ?? "");
  const labels: Record<string, string> = {};
  for (const kv of list(f.get("labels"))) {
    const i = kv.indexOf("=");
    labels[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? "" : kv.slice(i + 1);
  }
  return {
    name: (f.get("name") ?? "").trim(),
    kind,
    enabled: ["on", "true", "1"].includes(f.get("enabled") ?? ""),
    severity: (f.get("severity") ?? "warning") as Severity,
    scopeTags: list(f.get("scope_tags")),
    labels,
    params: p,
    forSeconds: int(f.get("for_seconds"), 0),
    channelIds: f.getAll("channel_ids").flatMap((c) => c.split(",")).filter(Boolean).map((c) => idOf(c.trim()) || -1),
    groupBy: list(f.get("group_by")),
    groupWaitSeconds: int(f.get("group_wait_seconds"), 30),
    groupIntervalSeconds: int(f.get("group_interval_seconds"), 300),
    repeatIntervalSeconds: int(f.get("repeat_interval_seconds"), 14_400),
  };
}

/** A channel's settings from its form; the secret only when one was typed. */
export function parseChannelForm(f: URLSearchParams): { name: string; kind: string; config: ChannelConfig; secret?: string; enabled: boolean } {
  const kind = f.get("kind") ?? "";
  const config: ChannelConfig = {};
  if (kind === "email") {
    config.host = (f.get("host") ?? "").trim();
    config.port = int(f.get("port"), 587);
    config.from = (f.get("from") ?? "").trim();
    config.to = list(f.get("to"));
    const user = (f.get("username") ?? "").trim();
    if (user) config.username = user;
    const ca = (f.get("tls_ca") ?? "").trim();
    if (ca) config.tls_ca = ca;
  }
  if (kind === "webhook" || kind === "pagerduty") {
    const url = (f.get("url") ?? "").trim();
    if (url) config.url = url;
  }
  const secret = f.get("secret") ?? "";
  return { name: (f.get("name") ?? "").trim(), kind, config, ...(secret ? { secret } : {}), enabled: ["on", "true", "1"].includes(f.get("enabled") ?? "") };
}

const SEVERITY_CLASS: Record<string, string> = { critical: "crit", warning: "warn", info: "" };
const STATE_CLASS: Record<string, string> = { firing: "crit", pending: "warn", resolved: "ok" };

function ruleView(r: Rule, channels: Channel[]) {
  return {
    id: r.id, name: r.name, kind: r.kind, severity: r.severity, severityClass: SEVERITY_CLASS[r.severity], enabled: r.enabled, builtin: r.builtin,
    condition: describeRule(r), scope: r.scopeTags.length ? r.scopeTags.join(", ") : "all hosts",
    channels: r.channelIds.length ? r.channelIds.map((c) => channels.find((x) => x.id === c)?.name ?? `#${c}`).join(", ") : "all enabled channels",
    grouping: `${r.groupBy.length ? `by ${r.groupBy.join(", ")}` : "one group"}; wait ${r.groupWaitSeconds} s, interval ${r.groupIntervalSeconds} s, repeat ${r.repeatIntervalSeconds} s`,
  };
}

/** The values a rule form shows: a rule's, or the defaults of a new one. */
function ruleFormData(r: RuleInput | undefined, channels: Channel[]) {
  const x = r ?? {
    name: "", kind: "metric_threshold" as RuleKind, enabled: true, severity: "warning" as Severity, scopeTags: [], labels: {}, params: {},
    forSeconds: 0, channelIds: [], groupBy: [], groupWaitSeconds: 30, groupIntervalSeconds: 300, repeatIntervalSeconds: 14_400,
  };
  const p = x.params;
  return {
    name: x.name, enabled: x.enabled, forSeconds: x.forSeconds, groupWait: x.groupWaitSeconds, groupInterval: x.groupIntervalSeconds,
    repeatInterval: x.repeatIntervalSeconds, scopeTags: x.scopeTags.join(", "), groupBy: x.groupBy.join(", "),
    labels: Object.entries(x.labels).map(([k, v]) => `${k}=${v}`).join(", "),
    kinds: RULE_KINDS.map((k) => ({ k, selected: k === x.kind })),
    severities: SEVERITIES.map((s) => ({ s, selected: s === x.severity })),
    ops: [">", ">=", "<", "<="].map((o) => ({ o, selected: o === (p.op ?? ">") })),
    metric: p.metric ?? "", threshold: p.threshold ?? "", clear: p.clear ?? "", windowSeconds: p.window_seconds ?? "",
    absentSeconds: p.absent_seconds ?? "", offlineSeconds: p.offline_seconds ?? "", drop: p.drop ?? "", minSeverity: p.min_severity ?? "",
    paths: (p.paths ?? []).join(", "), minCount: p.min_count ?? "", pattern: p.pattern ?? "",
    channels: channels.map((c) => ({ id: c.id, name: c.name, kind: c.kind, checked: x.channelIds.includes(c.id) })),
  };
}

function channelView(c: Channel) {
  const cfg = c.config;
  const where = c.kind === "email" ? `${cfg.to?.join(", ")} via ${cfg.host}:${cfg.port}` : c.kind === "webhook" ? cfg.url : c.kind === "pagerduty" ? cfg.url || "PagerDuty Events API v2" : "Slack webhook (stored sealed)";
  return { id: c.id, name: c.name, kind: c.kind, enabled: c.enabled, where, hasSecret: c.hasSecret };
}

function channelFormData(c: { name: string; kind: string; config: ChannelConfig; enabled: boolean } | undefined) {
  const x = c ?? { name: "", kind: "webhook", config: {}, enabled: true };
  return {
    name: x.name, enabled: x.enabled, kinds: CHANNEL_KINDS.map((k) => ({ k, selected: k === x.kind })),
    host: x.config.host ?? "", port: x.config.port ?? 587, from: x.config.from ?? "", to: (x.config.to ?? []).join(", "),
    username: x.config.username ?? "", tlsCa: x.config.tls_ca ?? "", url: x.config.url ?? "",
  };
}

const id = (req: ConsoleRequest) => idOf(req.params.id);

/**
 * Silences and rules reach hosts by tags ([]: every host), so a scoped caller may only use tags
 * of its scope for the route's permission (req.scope): what lies beyond it, or null.
 */
function beyondScope(req: ConsoleRequest, tags: readonly string[]): string | null {
  if (!tags.length) return req.scope.allHosts ? null : "all hosts (your roles are limited to tagged hosts)";
  const outside = tags.filter((t) => !req.scope.coversGroup(t));
  return outside.length ? `hosts tagged ${outside.join(", ")} (outside your host scope)` : null;
}

/** The refusal of a silence or rule beyond the caller's scope, audited as access.denied; null when within it. */
export async function refuseBeyondScope(sql: Sql, req: ConsoleRequest, action: string, tags: readonly string[]): Promise<string | null> {
  const beyond = beyondScope(req, tags);
  if (!beyond) return null;
  await auditRequest(sql, req, "security_event", "access.denied", `${req.method} ${req.url.pathname}`, false, { action, tags, permission: req.scope.label });
  return `You cannot ${action}: it reaches ${beyond}.`;
}

/** Creates the silence of the request's form (page or API), audited either way: its id, or why not (status 403: beyond the scope). */
export async function saveSilence(sql: Sql, req: ConsoleRequest): Promise<{ id?: number; problems: string[]; status?: number }> {
  const x = parseSilenceForm(req.form);
  const problems = validateSilence(x);
  const refused = problems.length ? null : await refuseBeyondScope(sql, req, `create this ${x.kind === "maintenance" ? "maintenance window" : "silence"}`, x.tags);
  if (refused) return { problems: [refused], status: 403 };
  const newId = problems.length ? undefined : await createSilence(sql, x, req.user!.username);
  if (!problems.length && newId === undefined) problems.push("That rule does not exist.");
  await auditRequest(sql, req, "config_change", `alerts.${x.kind === "maintenance" ? "maintenance" : "silence"}.create`, `silence:${newId ?? "-"}`, newId !== undefined,
    newId ? { kind: x.kind, tags: x.tags, rule_id: x.ruleId, starts_at: x.startsAt, ends_at: x.endsAt, comment: x.comment } : { problems });
  return { id: newId, problems };
}

/** A silence from its form (or JSON body): times are UTC, as datetime-local values or ISO 8601. */
export function parseSilenceForm(f: URLSearchParams): SilenceInput {
  const ruleRaw = (f.get("rule_id") ?? "").trim();
  const ruleId = ruleRaw === "" ? null : idOf(ruleRaw) || -1;
  // datetime-local values are UTC here (the console shows UTC times)
  const at = (v: string | null) => new Date(v && /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/.test(v) ? `${v}Z` : (v ?? ""));
  return { kind: (f.get("kind") ?? "") as SilenceInput["kind"], tags: list(f.get("tags")), ruleId, startsAt: at(f.get("starts_at")), endsAt: at(f.get("ends_at")), comment: (f.get("comment") ?? "").trim() };
}

export function alertRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const by = (req: ConsoleRequest) => req.user!.username;

  async function rulesPage(req: ConsoleRequest, extra: { problems?: string[]; form?: RuleInput } = {}, status = 200) {
    const [rules, channels] = await Promise.all([listRules(sql), listChannels(sql)]);
    return pages.page(req, "pages/alert-rules", "Alert rules", {
      rules: rules.map((r) => ruleView(r, channels)), canEdit: can(req, "alerts.rules.edit"),
      form: ruleFormData(extra.form, channels), problems: extra.problems ?? [],
    }, status);
  }

  async function channelsPage(req: ConsoleRequest, extra: { problems?: string[]; form?: ReturnType<typeof parseChannelForm> } = {}, status = 200) {
    const [channels, deliveries] = await Promise.all([listChannels(sql), listDeliveries(sql, 50)]);
    return pages.page(req, "pages/alert-channels", "Notification channels", {
      channels: channels.map(channelView), canEdit: can(req, "notifications.edit"), canTest: can(req, "notifications.test"),
      deliveries: deliveries.map((d) => ({
        ...d, created: isoMinute(d.created_at), sent: d.sent_at ? ago(d.sent_at) : "", statusClass: d.status === "sent" ? "ok" : d.status === "failed" ? "crit" : "warn",
        next: d.status === "pending" ? isoMinute(d.next_attempt_at) : "",
      })),
      form: channelFormData(extra.form as any), problems: extra.problems ?? [],
    }, status);
  }

  async function silencesPage(req: ConsoleRequest, extra: { problems?: string[] } = {}, status = 200) {
    const [silences, rules] = await Promise.all([listSilences(sql), listRules(sql)]);
    const now = new Date();
    return pages.page(req, "pages/alert-silences", "Silences and maintenance", {
      silences: silences.map((x) => ({
        ...x, tagsText: x.tags.length ? x.tags.join(", ") : "all hosts", ruleText: x.rule_name ?? "every rule",
        starts: isoMinute(x.starts_at), ends: isoMinute(x.ends_at), live: x.expired_at === null && x.ends_at > now,
        stateText: x.expired_at ? "expired" : x.ends_at <= now ? "ended" : x.active ? "active" : "scheduled",
        stateClass: x.active ? "warn" : "", maintenance: x.kind === "maintenance",
      })),
      rules: rules.map((r) => ({ id: r.id, name: r.name })),
      canSilence: can(req, "alerts.silence"),
      defaultStart: isoMinute(now).replace(" ", "T").slice(0, 16),
      defaultEnd: isoMinute(new Date(now.getTime() + 2 * 3_600_000)).replace(" ", "T").slice(0, 16),
      problems: extra.problems ?? [],
    }, status);
  }

  return [
    {
      method: "GET", path: "/alerts", access: "alerts.view", hostData: "fleet",
      async handler(req) {
        const all = req.query.get("state") === "all";
        const [alerts, timeline] = await Promise.all([listAlerts(sql, req.scope, { includeResolved: all }), recentTransitions(sql, req.scope, { limit: 50 })]);
        const canAck = can(req, "alerts.acknowledge");
        return pages.page(req, "pages/alerts", "Alerts", {
          all,
          alerts: alerts.map((a) => ({
            ...a, stateClass: STATE_CLASS[a.state], severityClass: SEVERITY_CLASS[a.severity], since: ago(a.fired_at ?? a.started_at),
            started: isoMinute(a.started_at), acked: a.acknowledged_at !== null, ackText: a.acknowledged_at ? `${a.acknowledged_by}, ${ago(a.acknowledged_at)}${a.ack_note ? `: ${a.ack_note}` : ""}` : "",
            mayAck: canAck && a.state !== "resolved" && a.acknowledged_at === null,
          })),
          counts: { firing: alerts.filter((a) => a.state === "firing").length, pending: alerts.filter((a) => a.state === "pending").length },
          timeline: timeline.map((t) => ({ ...t, at: isoMinute(t.at), from: t.from_state ?? "—", toClass: STATE_CLASS[t.to_state] ?? "" })),
        });
      },
    },
    {
      method: "POST", path: "/alerts/instances/:id/acknowledge", access: "alerts.acknowledge", hostData: "fleet",
      async handler(req) {
        const note = (req.form.get("note") ?? "").trim().slice(0, 500);
        const subject = await acknowledgeAlert(sql, req.scope, id(req), by(req), note);
        await auditRequest(sql, req, "config_change", "alerts.acknowledge", `alert:${id(req)}${subject ? ` ${subject}` : ""}`, !!subject, { note });
        if (!subject) return pages.formErrors(req, ["No such open, unacknowledged alert."], 404);
        return done(req, "/alerts");
      },
    },
    {
      method: "GET", path: "/hosts/:id/alerts", access: "alerts.view", hostData: "host",
      async handler(req) {
        const h = req.host!;
        const [alerts, timeline] = await Promise.all([hostAlerts(sql, h), recentTransitions(sql, req.scope, { agentId: h.id, limit: 20 })]);
        return pages.partial("partials/host-alerts", {
          id: h.id,
          alerts: alerts.map((a) => ({ ...a, stateClass: STATE_CLASS[a.state], severityClass: SEVERITY_CLASS[a.severity], since: ago(a.resolved_at ?? a.fired_at ?? a.started_at), acked: a.acknowledged_at !== null })),
          timeline: timeline.map((t) => ({ ...t, at: isoMinute(t.at), from: t.from_state ?? "—", toClass: STATE_CLASS[t.to_state] ?? "" })),
        });
      },
    },
    { method: "GET", path: "/alerts/rules", access: "alerts.view", handler: (req) => rulesPage(req) },
    {
      method: "POST", path: "/alerts/rules", access: "alerts.rules.edit",
      async handler(req) {
        const r = parseRuleForm(req.form);
        const problems = validateRule(r);
        const refused = problems.length ? null : await refuseBeyondScope(sql, req, `create the rule ${r.name}`, r.scopeTags);
        if (refused) return pages.formErrors(req, [refused], 403);
        const unknown = await unknownChannelIds(sql, r.channelIds);
        if (unknown.length) problems.push(`Unknown channels: ${unknown.join(", ")}.`);
        const newId = problems.length ? undefined : await createRule(sql, r, by(req));
        if (!problems.length && newId === undefined) problems.push(`A rule named "${r.name}" exists already.`);
        await auditRequest(sql, req, "config_change", "alerts.rule.create", `rule:${newId ?? "-"} ${r.name}`, newId !== undefined, newId ? { rule: r } : { problems });
        if (problems.length) return req.htmx.request ? pages.formErrors(req, problems) : rulesPage(req, { problems, form: r }, 422);
        return done(req, "/alerts/rules");
      },
    },
    {
      method: "GET", path: "/alerts/rules/:id", access: "alerts.view",
      async handler(req) {
        const r = await getRule(sql, id(req));
        if (!r) return pages.notFound(req, "That rule");
        const channels = await listChannels(sql);
        return pages.page(req, "pages/alert-rule-edit", `Rule ${r.name}`, { id: r.id, builtin: r.builtin, canEdit: can(req, "alerts.rules.edit"), canDelete: can(req, "alerts.rules.delete"), form: ruleFormData(r, channels), problems: [] });
      },
    },
    {
      method: "POST", path: "/alerts/rules/:id", access: "alerts.rules.edit",
      async handler(req) {
        const before = await getRule(sql, id(req));
        if (!before) return pages.notFound(req, "That rule");
        const r = parseRuleForm(req.form);
        const problems = validateRule(r);
        // the rule as it is and as it would be: both within the scope
        const refused = await refuseBeyondScope(sql, req, `change the rule ${before.name}`, before.scopeTags)
          ?? (problems.length ? null : await refuseBeyondScope(sql, req, `change the rule ${before.name}`, r.scopeTags));
        if (refused) return pages.formErrors(req, [refused], 403);
        const unknown = await unknownChannelIds(sql, r.channelIds);
        if (unknown.length) problems.push(`Unknown channels: ${unknown.join(", ")}.`);
        const ok = !problems.length && (await updateRule(sql, before.id, r));
        if (!problems.length && !ok) problems.push(`A rule named "${r.name}" exists already.`);
        const { id: _i, builtin: _b, ...old } = before;
        await auditRequest(sql, req, "config_change", "alerts.rule.update", `rule:${before.id} ${r.name}`, ok, ok ? { before: old, after: r } : { problems });
        if (!ok) return pages.formErrors(req, problems);
        return done(req, `/alerts/rules/${before.id}`);
      },
    },
    {
      method: "POST", path: "/alerts/rules/:id/delete", access: "alerts.rules.delete",
      async handler(req) {
        const r = await getRule(sql, id(req));
        const refused = r ? await refuseBeyondScope(sql, req, `delete the rule ${r.name}`, r.scopeTags) : null;
        if (refused) return pages.formErrors(req, [refused], 403);
        const name = await deleteRule(sql, id(req));
        await auditRequest(sql, req, "config_change", "alerts.rule.delete", `rule:${id(req)}${name ? ` ${name}` : ""}`, !!name);
        if (!name) return pages.formErrors(req, ["No such rule."], 404);
        return done(req, "/alerts/rules");
      },
    },
    { method: "GET", path: "/alerts/silences", access: "alerts.view", handler: (req) => silencesPage(req) },
    {
      method: "POST", path: "/alerts/silences", access: "alerts.silence",
      async handler(req) {
        const { problems, status } = await saveSilence(sql, req);
        if (problems.length) return pages.formErrors(req, problems, status);
        return done(req, "/alerts/silences");
      },
    },
    {
      method: "POST", path: "/alerts/silences/:id/expire", access: "alerts.silence",
      async handler(req) {
        const tags = await silenceTags(sql, id(req));
        const refused = tags ? await refuseBeyondScope(sql, req, `end silence ${id(req)}`, tags) : null;
        if (refused) return pages.formErrors(req, [refused], 403);
        const ok = await expireSilence(sql, id(req));
        await auditRequest(sql, req, "config_change", "alerts.silence.expire", `silence:${id(req)}`, ok);
        if (!ok) return pages.formErrors(req, ["No such silence, or it has ended."], 404);
        return done(req, "/alerts/silences");
      },
    },
    { method: "GET", path: "/alerts/channels", access: "notifications.view", handler: (req) => channelsPage(req) },
    {
      method: "POST", path: "/alerts/channels", access: "notifications.edit",
      async handler(req) {
        const c = parseChannelForm(req.form);
        const problems = validateChannel(c.kind, c.name, c.config, c.secret, false);
        let newId: number | undefined;
        if (!problems.length) {
          try {
            newId = await createChannel(sql, s.secrets, { ...c, kind: c.kind as ChannelKind }, by(req));
          } catch (e) {
            if ((e as { code?: string }).code !== "23505") throw e;
            problems.push(`A channel named "${c.name}" exists already.`);
          }
        }
        // the secret is never audited: only whether one was given
        await auditRequest(sql, req, "config_change", "notifications.channel.create", `channel:${newId ?? "-"} ${c.name}`, newId !== undefined,
          newId ? { kind: c.kind, config: c.config, secret_set: !!c.secret } : { problems });
        if (problems.length) return req.htmx.request ? pages.formErrors(req, problems) : channelsPage(req, { problems, form: c }, 422);
        return done(req, "/alerts/channels");
      },
    },
    {
      method: "GET", path: "/alerts/channels/:id", access: "notifications.view",
      async handler(req) {
        const c = await getChannel(sql, id(req));
        if (!c) return pages.notFound(req, "That channel");
        return pages.page(req, "pages/alert-channel-edit", `Channel ${c.name}`, { id: c.id, kind: c.kind, hasSecret: c.hasSecret, canEdit: can(req, "notifications.edit"), canTest: can(req, "notifications.test"), form: channelFormData(c), problems: [] });
      },
    },
    {
      method: "POST", path: "/alerts/channels/:id", access: "notifications.edit",
      async handler(req) {
        const before = await getChannel(sql, id(req));
        if (!before) return pages.notFound(req, "That channel");
        const c = parseChannelForm(req.form);
        const problems = validateChannel(before.kind, c.name, c.config, c.secret, before.hasSecret);
        let ok = false;
        if (!problems.length) {
          try {
            ok = await updateChannel(sql, s.secrets, before.id, c);
          } catch (e) {
            if ((e as { code?: string }).code !== "23505") throw e;
            problems.push(`A channel named "${c.name}" exists already.`);
          }
        }
        await auditRequest(sql, req, "config_change", "notifications.channel.update", `channel:${before.id} ${c.name}`, ok,
          ok ? { before: { name: before.name, config: before.config, enabled: before.enabled }, after: { name: c.name, config: c.config, enabled: c.enabled }, secret_changed: !!c.secret } : { problems });
        if (!ok) return pages.formErrors(req, problems.length ? problems : ["No such channel."]);
        return done(req, `/alerts/channels/${before.id}`);
      },
    },
    {
      method: "POST", path: "/alerts/channels/:id/delete", access: "notifications.edit",
      async handler(req) {
        const name = await deleteChannel(sql, id(req));
        await auditRequest(sql, req, "config_change", "notifications.channel.delete", `channel:${id(req)}${name ? ` ${name}` : ""}`, !!name);
        if (!name) return pages.formErrors(req, ["No such channel."], 404);
        return done(req, "/alerts/channels");
      },
    },
    {
      method: "POST", path: "/alerts/channels/:id/test", access: "notifications.test",
      async handler(req) {
        const c = await getChannel(sql, id(req));
        if (!c) return pages.formErrors(req, ["No such channel."], 404);
        const r = await sendTestNotification(sql, s.secrets, c.id, by(req));
        await auditRequest(sql, req, "config_change", "notifications.channel.test", `channel:${c.id} ${c.name}`, r.ok, { status: r.status ?? null, error: r.error ?? null });
        return pages.partial("partials/form-errors", { problems: [r.ok ? `Test notification sent (${r.status}).` : `Test notification failed: ${r.error}`] }, 200);
      },
    },
    {
      method: "GET", path: "/alerts/deliveries/:id", access: "notifications.view",
      async handler(req) {
        const attempts = await deliveryAttempts(sql, id(req));
        if (!attempts.length) return pages.notFound(req, "That delivery");
        return pages.partial("partials/alert-attempts", { attempts: attempts.map((a) => ({ ...a, at: isoMinute(a.at), result: a.ok ? "ok" : a.error ?? "failed", cls: a.ok ? "ok" : "crit" })) });
      },
    },
  ];
}
