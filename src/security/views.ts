/**
 * The security feature's HTML: data shaped into view models and rendered by the console's
 * template engine (views/partials/security-*.html, every value escaped there). The engine and the
 * chart helper are injected (`SecurityViews`), because nothing outside src/web imports the
 * console. Each fragment owns its id so htmx can target it.
 */
import type { SecurityScore } from "./score.ts";
import type { Incident } from "./incidents.ts";
import type { ControlPassRate, AutoRemediationSetting } from "./posture.ts";
import type { AppliedRemediation } from "./issue.ts";
import type { FimEventRow } from "./fim.ts";
import { allControls, controlInfo } from "./catalog.ts";

export interface SecurityViews {
  /** Renders views/<view>.html with its values escaped (src/web/render.ts). */
  render(view: string, data: object): { toString(): string };
  /** The score history as the console's SVG line chart (src/web/chart/svg.ts), 0-100. */
  scoreChart(points: Array<[number, number]>, fromMs: number, toMs: number): unknown;
}

export const isoSecond = (d: unknown) => (d ? new Date(d as string).toISOString().replace("T", " ").slice(0, 19) : "");

/** ok from 80, warn from 50, crit below: the badge colours of the console. */
export const scoreLevel = (n: number | null | undefined) => (n === null || n === undefined ? "none" : n >= 80 ? "ok" : n >= 50 ? "warn" : "crit");

/** An event or violation severity (0-10) as a badge colour: crit from 7, warn from 4, else info. */
export const severityLevel = (severity: unknown) => (Number(severity) >= 7 ? "crit" : Number(severity) >= 4 ? "warn" : "info");

export function categoriesModel(s: SecurityScore | null) {
  return Object.entries(s?.categories ?? {}).map(([name, c]) => ({
    name, score: c.score === null ? "?" : c.score, known: c.score !== null, weight: c.weight, detail: c.detail, level: scoreLevel(c.score),
  }));
}

export function scoreModel(agentId: number, s: SecurityScore, trend?: unknown) {
  return { agentId, score: s.score, level: scoreLevel(s.score), categories: categoriesModel(s), unknown: s.unknown.join(", "), trend };
}

export function violationModel(v: any, ctx: { canAck: boolean; csrf?: string }) {
  const info = controlInfo(String(v.control_id));
  return {
    id: Number(v.id), agentId: Number(v.agent_id), hostname: v.hostname, control: v.control_id, title: info?.title ?? "",
    severity: v.severity, sevLevel: severityLevel(v.severity), observed: v.observed,
    firstSeen: isoSecond(v.first_seen), lastSeen: isoSecond(v.last_seen),
    acknowledged: !!v.acknowledged_at, ackAt: isoSecond(v.acknowledged_at), ackBy: v.acknowledged_by ?? "", ackNote: v.ack_note ?? "",
    resolved: !!v.resolved_at, resolvedAt: isoSecond(v.resolved_at), resolvedBy: v.resolved_by ?? "",
    canAck: ctx.canAck && !v.acknowledged_at && !v.resolved_at, csrf: ctx.csrf ?? "",
  };
}

export function passRateModel(rows: ControlPassRate[]) {
  return rows.map((r) => ({
    control: r.control_id, title: controlInfo(r.control_id)?.title ?? "", category: r.category, severity: r.severity,
    passed: r.passed, failed: r.failed, hosts: r.hosts,
    rate: r.pass_rate === null ? 0 : Math.round(r.pass_rate * 100), pct: r.pass_rate === null ? "–" : `${Math.round(r.pass_rate * 100)}%`,
    level: r.pass_rate === null ? "none" : scoreLevel(r.pass_rate * 100),
  }));
}

export function incidentsModel(agentId: number, incidents: Incident[]) {
  return {
    agentId,
    incidents: incidents.map((i) => ({
      title: i.title, from: isoSecond(i.startMs), to: isoSecond(i.endMs), severity: i.severity,
      level: severityLevel(i.severity), kinds: i.kinds.join(", "),
      steps: i.timeline.map((s) => ({ ts: isoSecond(s.ts), kind: s.kind, summary: s.summary, severity: s.severity })),
    })),
  };
}

const facts = (f: any) => (f ? `${f.mode ?? ""} ${f.uid ?? "?"}:${f.gid ?? "?"}`.trim() : "(none)");

/**
 * A remediation or rollback result. After a successful dry run the model carries the typed
 * confirmation form that applies exactly the controls that were planned.
 */
export function remediationModel(r: any, ctx: { agentId: number; hostname?: string; controls?: string[]; csrf?: string; canApply?: boolean }) {
  const changes = (Array.isArray(r?.changes) ? r.changes : []).map((c: any) => ({
    path: c.path, before: c.before?.exists === false ? "(new)" : facts(c.before), after: facts(c.after), diff: c.diff ?? "",
  }));
  const dryRun = !!r?.dryRun;
  const ok = !!r?.ok;
  return {
    ok, error: ok ? "" : String(r?.error ?? "failed"), dryRun, snapshot: r?.snapshot ?? "", rollback: r?.action === "cis.rollback",
    changes, skipped: (Array.isArray(r?.skipped) ? r.skipped : []).map((s: any) => ({ id: s.id, reason: s.reason })),
    verdicts: Object.entries(r?.verdicts ?? {}).map(([id, verdict]) => ({ id, verdict, level: verdict === "pass" ? "ok" : "crit" })),
    apply: ok && dryRun && changes.length > 0 && !!ctx.canApply,
    agentId: ctx.agentId, controls: (ctx.controls ?? []).join(","), phrase: `remediate ${ctx.hostname ?? ctx.agentId}`, csrf: ctx.csrf ?? "",
  };
}

export function autoRemediationModel(settings: AutoRemediationSetting[], ctx: { canEdit: boolean; csrf?: string }) {
  return {
    settings: settings.map((s) => ({
      control: s.control_id, title: controlInfo(s.control_id)?.title ?? "", group: s.host_group, enabled: s.enabled,
      setBy: s.set_by, setAt: isoSecond(s.set_at),
      toggle: `/security/auto-remediation/confirm?${new URLSearchParams({ control: s.control_id, hostGroup: s.host_group, enabled: String(!s.enabled) })}`,
    })),
    choices: allControls().filter((c) => c.automatic).map((c) => ({ id: c.id, title: c.title })),
    canEdit: ctx.canEdit, csrf: ctx.csrf ?? "",
  };
}

export function cisResultsModel(rows: any[], ctx: { agentId: number; canRemediate: boolean; csrf?: string }) {
  const results = rows.map((r) => {
    const info = controlInfo(String(r.control_id));
    return {
      control: r.control_id, title: info?.title ?? "", rationale: info?.rationale ?? "", fix: info?.remediation ?? "",
      category: r.category, severity: r.severity, status: r.status, observed: r.observed, scannedAt: isoSecond(r.scanned_at),
      level: r.status === "pass" ? "ok" : r.status === "fail" ? "crit" : r.status === "error" ? "warn" : "none",
      failed: r.status === "fail", fixable: r.status === "fail" && ctx.canRemediate && info?.automatic !== false,
    };
  });
  // failed first, then by id
  results.sort((a, b) => Number(b.failed) - Number(a.failed) || String(a.control).localeCompare(String(b.control)));
  return { agentId: ctx.agentId, results, failedCount: results.filter((r) => r.failed).length, canRemediate: ctx.canRemediate, csrf: ctx.csrf ?? "" };
}

/** Applied remediations, each with the confirmation form (views/partials/danger-form.html) that rolls it back. */
export function rollbacksModel(rows: AppliedRemediation[], ctx: { agentId: number; hostname: string; canRollback: boolean; csrf?: string }) {
  return rows.map((r, i) => ({
    at: isoSecond(r.issued_at), by: r.requested_by, controls: (r.controls ?? []).join(", "), snapshot: r.snapshot,
    rolledBack: r.rolled_back, canRollback: ctx.canRollback && !r.rolled_back,
    id: `rollback-${i}`, action: `/api/security/hosts/${ctx.agentId}/rollback`, phrase: `rollback ${ctx.hostname}`, button: "Roll back",
    description: "Restores every file this remediation changed exactly as it was before (bytes, mode, owner).",
    csrf: ctx.csrf ?? "", hidden: [{ name: "snapshot", value: r.snapshot }],
  }));
}

export function fimEventsModel(rows: FimEventRow[]) {
  return rows.map((e) => {
    const pm = e.data?.packageManager;
    const fact = (f: any) => (f ? [f.type, f.mode, `${f.uid}:${f.gid}`, `${f.size} B`, f.sha256 ? `sha256 ${String(f.sha256).slice(0, 16)}…` : "", f.target ? `→ ${f.target}` : ""].filter(Boolean).join(" · ") : "(none)");
    return {
      ts: isoSecond(e.ts), type: e.type.replace(/^fim\./, ""), severity: e.severity,
      level: severityLevel(e.severity),
      path: e.path ?? e.data?.to ?? "", from: e.data?.from ?? "",
      changes: Array.isArray(e.data?.changes) ? e.data!.changes.join(", ") : "",
      detectedBy: e.data?.detectedBy ?? "",
      packageManager: pm ? `package manager${pm.package ? `: ${pm.package}` : ""}${pm.via ? ` (${pm.via})` : ""}` : "",
      ownChange: e.own_change ? `ServerMind: ${e.own_change}` : "",
      before: fact(e.data?.before), after: fact(e.data?.after),
      summary: e.type === "fim.rate_limited" || e.type === "fim.watch_limit" || e.type === "fim.queue_overflow" ? JSON.stringify(e.data ?? {}).slice(0, 300) : "",
    };
  });
}

export function fimStatusModel(s: { ts: Date; data: Record<string, any> } | null) {
  if (!s) return null;
  const d = s.data;
  const list = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
  return {
    at: isoSecond(s.ts), watches: d.watches ?? "?", maxWatches: d.maxWatches ?? "?", unwatchedDirs: d.unwatchedDirs ?? 0, files: d.files ?? "?",
    pending: d.pending ?? 0, suppressed: d.eventsSuppressed ?? 0, overflows: d.queueOverflows ?? 0, rescans: d.rescans ?? 0,
    lastRescan: d.lastRescanMs ? isoSecond(d.lastRescanMs) : "never", rescanRunning: !!d.rescanRunning,
    rescanEvery: d.rescanIntervalMs ? `${Math.round(Number(d.rescanIntervalMs) / 60_000)} min` : "",
    rate: d.ratePerSecond !== undefined ? `${d.ratePerSecond}/s, burst ${d.rateBurst ?? "?"}` : "",
    paths: list(d.paths), ignore: list(d.ignore),
  };
}
