/**
 * The permission catalog: every `resource.action` the product checks. Each one gates something
 * real (a console route's `access`, or a `can(req, ...)` check in a handler); the coverage test
 * (test/auth/permission-coverage.test.ts) fails for a permission that gates nothing, so a feature
 * adds its permissions when it lands (migration 460 pruned those of features that did not exist).
 * Built-in roles are defined here and synced at start.
 */

export interface PermissionDef {
  id: string;
  group: string;
  description: string;
  /** Grants a destructive or high-risk capability. */
  dangerous?: boolean;
}

const catalog: Array<[group: string, id: string, description: string, dangerous?: boolean]> = [
  ["Hosts", "hosts.view", "See hosts in the fleet overview"],
  ["Hosts", "hosts.edit", "Rename hosts and edit their tags"],
  ["Metrics", "metrics.view", "See metric charts"],
  ["Logs", "logs.view", "See host logs"],
  ["Inventory", "inventory.view", "See hardware and software inventory"],
  ["Processes", "processes.view", "See running processes"],
  ["Agents", "agents.enroll", "Create activation tokens"],
  ["Agents", "agents.tokens.revoke", "Revoke activation tokens"],
  ["Agents", "agents.revoke", "Revoke an enrolled agent", true],
  ["Alerts", "alerts.view", "See alerts, alert rules and silences"],
  ["Alerts", "alerts.acknowledge", "Acknowledge alerts"],
  ["Alerts", "alerts.rules.edit", "Create and edit alert rules"],
  ["Alerts", "alerts.rules.delete", "Delete alert rules"],
  ["Alerts", "alerts.silence", "Create and end silences and maintenance windows"],
  ["Notifications", "notifications.view", "See notification channels and deliveries"],
  ["Notifications", "notifications.edit", "Create, edit and delete notification channels"],
  ["Notifications", "notifications.test", "Send test notifications"],
  ["Security", "security.events.view", "See security events"],
  ["Compliance", "compliance.view", "See compliance results"],
  ["Compliance", "compliance.scan", "Start compliance scans"],
  ["Compliance", "compliance.policies.view", "See compliance policies"],
  ["Compliance", "compliance.policies.edit", "Edit compliance policies"],
  ["Compliance", "compliance.exceptions.edit", "Grant compliance exceptions"],
  ["Compliance", "compliance.reports.export", "Export compliance reports"],
  ["Compliance", "compliance.remediate", "Run automated remediation", true],
  ["File integrity", "fim.view", "See file integrity events"],
  ["Services", "services.view", "See services on hosts"],
  ["Services", "services.start", "Start services"],
  ["Services", "services.stop", "Stop services", true],
  ["Services", "services.restart", "Restart services", true],
  ["Services", "services.enable", "Enable or disable services at boot", true],
  ["Files", "files.view", "Browse files on hosts"],
  ["Files", "files.read", "Read file contents"],
  ["Files", "files.download", "Download files from hosts"],
  ["Files", "files.write", "Write files on hosts", true],
  ["Files", "files.delete", "Delete files on hosts", true],
  ["Backups", "backups.view", "See backup jobs, destinations and their run history"],
  ["Backups", "backups.manage", "Create, change and delete backup destinations and jobs; test a destination from a host", true],
  ["Backups", "backups.run", "Run a backup job now"],
  ["Backups", "backups.restore", "Restore from a backup onto a host", true],
  ["Users", "users.view", "See console users"],
  ["Users", "users.create", "Create users"],
  ["Users", "users.edit", "Edit users and their roles"],
  ["Users", "users.disable", "Disable and enable users"],
  ["Users", "users.delete", "Delete users", true],
  ["Users", "users.unlock", "Unlock locked accounts"],
  ["Users", "users.mfa.reset", "Reset another user's MFA", true],
  ["Users", "users.password.reset", "Set another user's password", true],
  ["Roles", "roles.view", "See roles"],
  ["Roles", "roles.create", "Create custom roles"],
  ["Roles", "roles.edit", "Change a role's permissions and scope", true],
  ["Roles", "roles.delete", "Delete custom roles", true],
  ["Sessions", "sessions.view", "See everyone's sessions"],
  ["Sessions", "sessions.revoke", "Revoke other users' sessions"],
  ["Audit", "audit.view", "See the audit trail"],
  ["Audit", "audit.export", "Export the audit trail"],
  ["Audit", "audit.verify", "Verify the audit hash chain"],
  ["Audit", "audit.retention.edit", "Change audit retention and forwarding", true],
  ["Audit", "audit.purge", "Purge audit records older than the retention period now", true],
  ["Settings", "settings.view", "See settings"],
  ["Settings", "settings.security.edit", "Edit password, MFA and session policy", true],
  ["SSO", "sso.view", "See identity providers"],
  ["SSO", "sso.edit", "Configure OIDC, SAML and LDAP", true],
  ["SSO", "sso.mappings.edit", "Edit group-to-role mappings", true],
  ["SSO", "sso.breakglass.edit", "Flag break-glass accounts", true],
  ["API", "api.tokens.view", "See API tokens"],
  ["API", "api.tokens.create", "Create API tokens"],
  ["API", "api.tokens.revoke", "Revoke API tokens"],
  ["AI", "ai.assistant.use", "Use the AI assistant"],
  ["AI", "ai.assistant.act", "Let the AI assistant act on hosts", true],
  ["System", "system.license.view", "See license information"],
];

export const PERMISSIONS: readonly PermissionDef[] = catalog.map(([group, id, description, dangerous]) => ({
  id, group, description, ...(dangerous ? { dangerous: true } : {}),
}));

export const PERMISSION_IDS: ReadonlySet<string> = new Set(PERMISSIONS.map((p) => p.id));

export function isPermission(id: string): boolean {
  return PERMISSION_IDS.has(id);
}

export function permissionGroups(): Array<{ group: string; permissions: PermissionDef[] }> {
  const out = new Map<string, PermissionDef[]>();
  for (const p of PERMISSIONS) out.set(p.group, [...(out.get(p.group) ?? []), p]);
  return [...out].map(([group, permissions]) => ({ group, permissions }));
}

const all = PERMISSIONS.map((p) => p.id);
// channel settings (webhook URLs, recipients) are not for viewers
const viewOnly = all.filter((p) => /\.(view|history\.view)$/.test(p) && !p.startsWith("audit.") && !/^(users|roles|sessions|settings|sso|api|notifications)\./.test(p));

export interface BuiltinRole {
  name: string;
  description: string;
  permissions: string[];
}

export const BUILTIN_ROLES: readonly BuiltinRole[] = [
  { name: "admin", description: "Everything, including users, roles and security settings", permissions: all },
  {
    name: "operator",
    description: "Runs the fleet: hosts, agents, compliance, services, files, alerts; no user or security administration",
    permissions: all.filter((p) =>
      !/^(users|roles|sso|settings|audit)\./.test(p) && p !== "sessions.view" && p !== "sessions.revoke",
    ).concat(["settings.view"]),
  },
  {
    name: "auditor",
    description: "Reads everything including the audit trail; changes nothing",
    permissions: all.filter((p) => /\.(view|history\.view)$/.test(p) || ["audit.export", "audit.verify", "compliance.reports.export"].includes(p)),
  },
  { name: "viewer", description: "Sees the fleet, changes nothing: hosts, metrics, logs, inventory, processes, alerts, security events, compliance, file integrity, services, file listings, backups, the license; not the audit trail, users, roles, sessions or settings", permissions: viewOnly },
];
