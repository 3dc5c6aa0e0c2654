/** Settings: password policy, MFA enforcement, session timeouts (security) and audit retention/forwarding. */
import type { ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { listRoles } from "../../auth/roles.ts";
import { requireEnrollmentWhereDue } from "../../auth/mfa-due.ts";
import { auditRequest } from "../audit-request.ts";
import { DEFAULT_SETTINGS, type ConsoleSettings } from "../../settings/console-settings.ts";

export const SECURITY_PHRASE = "apply security settings";
export const AUDIT_PHRASE = "apply audit settings";

function intField(f: URLSearchParams, name: string, label: string, min: number, max: number, problems: string[]): number {
  const raw = (f.get(name) ?? "").trim();
  const v = Number(raw);
  if (raw === "" || !Number.isInteger(v) || v < min || v > max) {
    problems.push(`${label} must be a whole number from ${min} to ${max} (got "${raw.slice(0, 20)}").`);
    return min;
  }
  return v;
}

export function parseSecurityForm(f: URLSearchParams, roleNames: string[]): { value?: Pick<ConsoleSettings, "password" | "mfa" | "session">; problems: string[] } {
  const p: string[] = [];
  const enforce = f.get("mfa_enforce") ?? "off";
  if (!["off", "all", "roles"].includes(enforce)) p.push("MFA enforcement is off, all or roles.");
  const mfaRoles = f.getAll("mfa_roles").filter((r) => roleNames.includes(r));
  if (enforce === "roles" && mfaRoles.length === 0) p.push("Choose at least one role that must use MFA, or enforce it for everyone.");
  const value = {
    password: {
      minLength: intField(f, "min_length", "Minimum length", 8, 128, p),
      requireLower: f.get("require_lower") === "on",
      requireUpper: f.get("require_upper") === "on",
      requireDigit: f.get("require_digit") === "on",
      requireSymbol: f.get("require_symbol") === "on",
      expiryDays: intField(f, "expiry_days", "Password expiry (days)", 0, 3650, p),
      history: intField(f, "history", "Password history", 0, 24, p),
      lockoutThreshold: intField(f, "lockout_threshold", "Failed sign-ins before lockout", 1, 100, p),
      lockoutMinutes: intField(f, "lockout_minutes", "Lockout duration (minutes)", 1, 1440, p),
      // forms from before these fields existed keep the defaults
      minStrength: f.has("min_strength") ? intField(f, "min_strength", "Minimum password strength", 0, 4, p) : DEFAULT_SETTINGS.password.minStrength,
    },
    mfa: {
      enforce: enforce as ConsoleSettings["mfa"]["enforce"], roles: mfaRoles,
      requireForAdmins: f.has("mfa_admins_shown") ? f.get("mfa_admins") === "on" : DEFAULT_SETTINGS.mfa.requireForAdmins,
    },
    session: {
      idleMinutes: intField(f, "idle_minutes", "Idle timeout (minutes)", 1, 1440, p),
      absoluteHours: intField(f, "absolute_hours", "Absolute timeout (hours)", 1, 720, p),
    },
  };
  return p.length ? { problems: p } : { value, problems: [] };
}

export function settingsRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  return [
    {
      method: "GET", path: "/settings", access: "settings.view",
      async handler(req) {
        const st = await s.settings.get();
        const roles = (await listRoles(sql)).map((r) => ({ name: r.name, checked: st.mfa.roles.includes(r.name) }));
        return pages.page(req, "pages/settings", "Settings", {
          st, roles,
          enforce: ["off", "all", "roles"].map((v) => ({ v, selected: st.mfa.enforce === v, label: { off: "Optional", all: "Required for everyone", roles: "Required for the roles below" }[v] })),
          canSecurity: can(req, "settings.security.edit"),
          canAudit: can(req, "audit.retention.edit"),
          securityConfirm: { phrase: SECURITY_PHRASE },
          auditConfirm: { phrase: AUDIT_PHRASE, legend: "Confirm" },
        });
      },
    },
    {
      method: "POST", path: "/settings/security", access: "settings.security.edit", dangerous: { phrase: () => SECURITY_PHRASE },
      async handler(req) {
        const roleNames = (await listRoles(sql)).map((r) => r.name);
        const { value, problems } = parseSecurityForm(req.form, roleNames);
        if (!value) return pages.formErrors(req, problems);
        const before = await s.settings.get();
        await s.settings.set("password", value.password);
        await s.settings.set("mfa", value.mfa);
        await s.settings.set("session", value.session);
        const enrolling = await requireEnrollmentWhereDue(sql, await s.settings.get());
        await auditRequest(sql, req, "config_change", "settings.security", "console security policy", true, {
          before: { password: before.password, mfa: before.mfa, session: before.session },
          after: value,
          ...(enrolling.length ? { mfa_enrollment_required_now: enrolling.slice(0, 100) } : {}),
        });
        return done(req, "/settings?saved=security");
      },
    },
    {
      method: "POST", path: "/settings/audit", access: "audit.retention.edit", dangerous: { phrase: () => AUDIT_PHRASE },
      async handler(req) {
        const p: string[] = [];
        const retentionDays = intField(req.form, "retention_days", "Audit retention (days)", 30, 36500, p);
        const syslogHost = (req.form.get("syslog_host") ?? "").trim();
        if (syslogHost && !/^[A-Za-z0-9.:-]{1,253}$/.test(syslogHost)) p.push("The syslog host must be a host name or IP address.");
        const syslogPort = intField(req.form, "syslog_port", "Syslog port", 1, 65535, p);
        if (p.length) return pages.formErrors(req, p);
        const before = (await s.settings.get()).audit;
        const after = { retentionDays, syslogHost, syslogPort };
        await s.settings.set("audit", after);
        await auditRequest(sql, req, "config_change", "settings.audit", "audit retention and forwarding", true, { before, after });
        return done(req, "/settings?saved=audit");
      },
    },
  ];
}
