/**
 * Alert rules: their kinds, parameters and validation. Pure: no database, no framework.
 * The console's forms and the evaluator both go through validateRule(), so a stored rule
 * always has the parameters its kind needs.
 */

export const RULE_KINDS = [
  "metric_threshold", "metric_rate", "metric_absent", "host_offline",
  "security_score_drop", "cis_critical", "fim_critical_path", "failed_signins", "log_pattern",
] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export type Op = ">" | ">=" | "<" | "<=";

export interface RuleParams {
  /** metric_*: a metric name; matches the name and every labelled series of it (`disk.used_pct{mount="/"}`) */
  metric?: string;
  op?: Op;
  /** metric_threshold: fires past it; metric_rate: change per minute past it */
  threshold?: number;
  /** metric_threshold: hysteresis, the alert clears only past this (e.g. fires > 90, clears < 80) */
  clear?: number;
  /** metric_rate, security_score_drop, fim_critical_path, failed_signins, log_pattern: the look-back */
  window_seconds?: number;
  /** metric_absent: no value for this long; host_offline: not seen for this long */
  absent_seconds?: number;
  offline_seconds?: number;
  /** security_score_drop: points lost within the window */
  drop?: number;
  /** cis_critical: a violation of at least this severity (1-10) */
  min_severity?: number;
  /** fim_critical_path: path prefixes */
  paths?: string[];
  /** failed_signins: failures of one account within the window; log_pattern: matching lines per host */
  min_count?: number;
  /** log_pattern: a POSIX regular expression, case-insensitive */
  pattern?: string;
}

export interface Rule {
  id: number;
  name: string;
  kind: RuleKind;
  enabled: boolean;
  severity: Severity;
  scopeTags: string[];
  labels: Record<string, string>;
  params: RuleParams;
  forSeconds: number;
  channelIds: number[];
  groupBy: string[];
  groupWaitSeconds: number;
  groupIntervalSeconds: number;
  repeatIntervalSeconds: number;
  builtin: boolean;
}

export type RuleInput = Omit<Rule, "id" | "builtin">;

export const DEFAULT_FIM_PATHS = ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/sudoers", "/etc/ssh/", "/root/.ssh/", "/boot/"];

const OPS: readonly Op[] = [">", ">=", "<", "<="];
const METRIC_RE = /^[a-z][a-z0-9_.]{0,127}$/;
const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$/;
const LABEL_RE = /^[a-z][a-z0-9_]{0,31}$/;

/** Problems with a rule, in words for the console; empty when it is valid. */
export function validateRule(r: RuleInput): string[] {
  const errs: string[] = [];
  const p = r.params;
  const num = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  const pos = (v: unknown) => num(v) && (v as number) > 0;
  if (!/^\S.{0,119}$/.test(r.name)) errs.push("The name must be 1-120 characters.");
  if (!RULE_KINDS.includes(r.kind)) errs.push(`Unknown rule kind: ${r.kind}.`);
  if (!SEVERITIES.includes(r.severity)) errs.push(`Unknown severity: ${r.severity}.`);
  for (const t of r.scopeTags) if (!TAG_RE.test(t)) errs.push(`Invalid tag: ${t}.`);
  for (const [k, v] of Object.entries(r.labels)) if (!LABEL_RE.test(k) || typeof v !== "string" || v.length > 200) errs.push(`Invalid label: ${k}.`);
  for (const g of r.groupBy) if (!LABEL_RE.test(g)) errs.push(`Invalid group-by label: ${g}.`);
  if (!Number.isInteger(r.forSeconds) || r.forSeconds < 0 || r.forSeconds > 86_400) errs.push("The for-duration must be 0-86400 seconds.");
  if (!Number.isInteger(r.groupWaitSeconds) || r.groupWaitSeconds < 0 || r.groupWaitSeconds > 3600) errs.push("Group wait must be 0-3600 seconds.");
  if (!Number.isInteger(r.groupIntervalSeconds) || r.groupIntervalSeconds < 0 || r.groupIntervalSeconds > 86_400) errs.push("Group interval must be 0-86400 seconds.");
  if (!Number.isInteger(r.repeatIntervalSeconds) || r.repeatIntervalSeconds < 60 || r.repeatIntervalSeconds > 7 * 86_400) errs.push("Repeat interval must be 60 seconds to 7 days.");
  const needMetric = () => {
    if (!p.metric || !METRIC_RE.test(p.metric)) errs.push("A metric name is required (e.g. cpu.usage_pct).");
  };
  const needOp = () => {
    if (!p.op || !OPS.includes(p.op)) errs.push("The comparison must be one of > >= < <=.");
    if (!num(p.threshold)) errs.push("A numeric threshold is required.");
  };
  const needWindow = () => {
    if (!pos(p.window_seconds) || p.window_seconds! > 7 * 86_400) errs.push("The window must be 1 second to 7 days.");
  };
  switch (r.kind) {
    case "metric_threshold":
      needMetric();
      needOp();
      if (p.clear !== undefined) {
        if (!num(p.clear)) errs.push("The clear value must be a number.");
        else if (p.op && num(p.threshold)) {
          const above = p.op === ">" || p.op === ">=";
          if (above ? p.clear > p.threshold! : p.clear < p.threshold!) errs.push(`The clear value must be on the safe side of the threshold (${above ? "at most" : "at least"} ${p.threshold}).`);
        }
      }
      break;
    case "metric_rate":
      needMetric();
      needOp();
      needWindow();
      break;
    case "metric_absent":
      needMetric();
      if (!pos(p.absent_seconds)) errs.push("The absence time must be a positive number of seconds.");
      break;
    case "host_offline":
      if (!pos(p.offline_seconds)) errs.push("The offline time must be a positive number of seconds.");
      break;
    case "security_score_drop":
      if (!pos(p.drop) || p.drop! > 100) errs.push("The score drop must be 1-100 points.");
      needWindow();
      break;
    case "cis_critical":
      if (!Number.isInteger(p.min_severity) || p.min_severity! < 1 || p.min_severity! > 10) errs.push("The minimum severity must be 1-10.");
      break;
    case "fim_critical_path":
      needWindow();
      if (!Array.isArray(p.paths) || p.paths.length === 0 || p.paths.some((x) => typeof x !== "string" || !x.startsWith("/"))) errs.push("At least one absolute path prefix is required.");
      break;
    case "failed_signins":
    case "log_pattern":
      needWindow();
      if (!Number.isInteger(p.min_count) || p.min_count! < 1) errs.push("The minimum count must be a positive integer.");
      if (r.kind === "log_pattern") {
        if (!p.pattern || p.pattern.length > 500) errs.push("A pattern (regular expression, up to 500 characters) is required.");
        else {
          try {
            new RegExp(p.pattern, "i");
          } catch {
            errs.push("The pattern is not a valid regular expression.");
          }
        }
      }
      break;
  }
  return errs;
}

/** True when `value` is past `threshold` in the direction of `op`. */
export function compare(value: number, op: Op, threshold: number): boolean {
  switch (op) {
    case ">": return value > threshold;
    case ">=": return value >= threshold;
    case "<": return value < threshold;
    case "<=": return value <= threshold;
  }
}

/**
 * Hysteresis: an open alert stays active until the value is past `clear` on the safe side
 * (fires above 90, clears only below 80). Without `clear`, it clears when the condition fails.
 */
export function stillActive(value: number, op: Op, threshold: number, clear: number | undefined): boolean {
  if (clear === undefined) return compare(value, op, threshold);
  return op === ">" || op === ">=" ? value >= clear : value <= clear;
}

/** Does a host with `tags` fall in a rule's (or silence's) tag scope? Empty scope: every host. */
export function inTagScope(scope: readonly string[], tags: readonly string[]): boolean {
  if (scope.length === 0) return true;
  for (const t of tags) if (scope.includes(t)) return true;
  return false;
}

/** A one-line description of the condition, for lists and notifications. */
export function describeRule(r: Pick<Rule, "kind" | "params" | "forSeconds">): string {
  const p = r.params;
  const dur = r.forSeconds ? ` for ${r.forSeconds} s` : "";
  switch (r.kind) {
    case "metric_threshold": return `${p.metric} ${p.op} ${p.threshold}${dur}${p.clear !== undefined ? `, clears at ${p.clear}` : ""}`;
    case "metric_rate": return `${p.metric} changes ${p.op} ${p.threshold}/min over ${p.window_seconds} s${dur}`;
    case "metric_absent": return `no ${p.metric} for ${p.absent_seconds} s`;
    case "host_offline": return `host not seen for ${p.offline_seconds} s${dur}`;
    case "security_score_drop": return `security score drops ${p.drop} points within ${p.window_seconds} s`;
    case "cis_critical": return `open CIS violation of severity ≥ ${p.min_severity}`;
    case "fim_critical_path": return `file change under ${(p.paths ?? []).join(", ")} within ${p.window_seconds} s`;
    case "failed_signins": return `${p.min_count} failed sign-ins of one account within ${p.window_seconds} s`;
    case "log_pattern": return `${p.min_count} log lines matching /${p.pattern}/ within ${p.window_seconds} s`;
  }
}
