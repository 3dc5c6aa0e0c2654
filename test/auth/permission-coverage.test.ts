/**
 * Every permission in the catalogue (src/auth/permissions.ts) gates something real, so the Roles
 * page never offers a permission that does nothing. A permission counts as gating when
 *   - it is the `access` of a route the router really mounts (the route tables are read the same
 *     way the route matrix test reads them: test/support/mounted-routes.ts), or
 *   - the source checks it by its literal id in one of the permission-check forms below
 *     (`can(req, "id"...)`, `scopeFor(req, "id")`, `permissions.has("id")`), or
 *   - it is on the short allow-list below, each entry naming the non-route gate.
 * The test also fails when a route or a check names an id the catalogue does not hold (such a
 * check is always false), and when an allow-listed permission is gated after all (drop the entry).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { BUILTIN_ROLES, PERMISSIONS, PERMISSION_IDS } from "../../src/auth/permissions.ts";
import { validateRole } from "../../src/auth/roles.ts";
import { createApiToken } from "../../src/auth/api-tokens.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { commandsWithoutAgents } from "../support/security-views.ts";
import { mountedRouteTables } from "../support/mounted-routes.ts";

/** Permissions gated by something other than a console route or a check in src/ (keep it short). */
const ALLOWED_WITHOUT_ROUTE: Record<string, string> = {
  "ai.assistant.use": "gated by every MCP tool call through USE_PERMISSION in src/mcp/tools.ts (test/mcp/mcp.test.ts checks the refusal)",
  // system.* belong to the license helper's system pages (issue #14), left alone here: pending
};

/** The permission-check forms the scan accepts, each with the literal id as group 1. */
const CHECKS: RegExp[] = [
  /\bcan\(\s*req\s*,\s*"([a-z_.]+)"/g, // can(req, "id") / can(req, "id", host): src/web/route.ts
  /\bscopeFor\(\s*req\s*,\s*"([a-z_.]+)"\s*\)/g, // the hosts a user may reach with "id"
  /\bpermissions\.has\(\s*"([a-z_.]+)"\s*\)/g, // req.grants.permissions.has("id")
];

const SRC = join(import.meta.dir, "../../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []);
}

/** Drops comments, so a permission named in prose gates nothing. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

/** Every id the source checks with one of CHECKS, with where. */
function checkedInSource(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    if (file.endsWith("/auth/permissions.ts")) continue; // the catalogue itself
    const text = code(readFileSync(file, "utf8"));
    for (const re of CHECKS) {
      for (const m of text.matchAll(re)) found.set(m[1]!, [...(found.get(m[1]!) ?? []), relative(SRC, file)]);
    }
  }
  return found;
}

let db: TestDb;
let dataDir: string;
let routeAccess: Map<string, string[]>;
let mountedCount = 0;

beforeAll(async () => {
  db = await testDatabase(2);
  dataDir = mkdtempSync(join(tmpdir(), "servermind-perm-coverage-"));
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir });
  const { mounted, declared } = mountedRouteTables({ sql: db.sql, config, dataDir, serverFingerprint: "00", security: commandsWithoutAgents() });
  const key = (r: { method: string; path: string }) => `${r.method} ${r.path}`;
  const mountedKeys = new Set(mounted.map(key));
  routeAccess = new Map();
  for (const r of declared) {
    if (!mountedKeys.has(key(r))) continue; // only what the router really serves
    mountedCount++;
    routeAccess.set(r.access, [...(routeAccess.get(r.access) ?? []), key(r)]);
  }
}, 60_000);

afterAll(async () => {
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

test("every permission in the catalogue gates a mounted route, a check in src/, or an allow-listed gate", () => {
  const checked = checkedInSource();
  // the enumeration is not vacuous
  expect(mountedCount).toBeGreaterThan(50);
  expect(routeAccess.size).toBeGreaterThan(30);
  expect(checked.size).toBeGreaterThan(20);

  const ungated = PERMISSIONS.map((p) => p.id).filter((id) => !routeAccess.has(id) && !checked.has(id) && !(id in ALLOWED_WITHOUT_ROUTE));
  expect(ungated).toEqual([]);

  const routes = [...routeAccess.keys()].filter((id) => id !== "public" && id !== "signed-in").length;
  const byCheckOnly = PERMISSIONS.filter((p) => !routeAccess.has(p.id) && checked.has(p.id)).map((p) => p.id);
  console.log(`permission coverage: ${PERMISSIONS.length} permissions; ${routes} are the access of a mounted route (${mountedCount} routes), ${byCheckOnly.length} more are checked in src/ (${byCheckOnly.join(", ")}), ${Object.keys(ALLOWED_WITHOUT_ROUTE).length} allow-listed`);
});

test("routes and checks name only catalogue permissions (an unknown id is never held, so it locks everyone out)", () => {
  const unknownAccess = [...routeAccess].filter(([id]) => id !== "public" && id !== "signed-in" && !PERMISSION_IDS.has(id));
  expect(unknownAccess).toEqual([]);
  const unknownChecks = [...checkedInSource()].filter(([id]) => !PERMISSION_IDS.has(id));
  expect(unknownChecks).toEqual([]);
});

test("the allow-list is short and current: catalogue ids only, none of them gated by a route or check already", () => {
  expect(Object.keys(ALLOWED_WITHOUT_ROUTE).length).toBeLessThanOrEqual(10);
  const checked = checkedInSource();
  for (const [id, why] of Object.entries(ALLOWED_WITHOUT_ROUTE)) {
    expect({ id, known: PERMISSION_IDS.has(id) }).toEqual({ id, known: true });
    expect(why.length).toBeGreaterThan(10);
    // once the gate lands the entry goes: the route or check covers it
    expect({ id, gated: routeAccess.has(id) || checked.has(id) }).toEqual({ id, gated: false });
  }
});

test("the built-in roles hold only catalogue permissions", () => {
  for (const r of BUILTIN_ROLES) expect({ role: r.name, unknown: r.permissions.filter((p) => !PERMISSION_IDS.has(p)) }).toEqual({ role: r.name, unknown: [] });
});

const MIGRATION_460 = join(SRC, "store/postgres/migrations/460_permissions_pruned.sql");
const prunedIds = () => [...code(readFileSync(MIGRATION_460, "utf8").replace(/--.*$/gm, "")).matchAll(/\('([a-z_.]+)'\)/g)].map((m) => m[1]!);

/** Pruned by 460 and back since their feature landed (issue #18: alerts and notifications, migration 480). */
const REINSTATED = ["alerts.view", "alerts.acknowledge", "alerts.rules.edit", "alerts.rules.delete", "alerts.silence", "notifications.view", "notifications.edit", "notifications.test"];

test("migration 460 prunes only ids the catalogue no longer holds (or reinstated with their feature)", () => {
  const ids = prunedIds();
  expect(ids.length).toBe(48);
  expect(ids.filter((id) => PERMISSION_IDS.has(id) && !REINSTATED.includes(id))).toEqual([]);
  for (const id of REINSTATED) expect({ id, inCatalogue: PERMISSION_IDS.has(id), was460: ids.includes(id) }).toEqual({ id, inCatalogue: true, was460: true });
  for (const gone of ["alerts.rules.view", "vulnerabilities.scan", "containers.manage", "network.firewall.edit", "processes.kill", "patches.apply", "reports.view", "commands.run", "ai.settings.edit"]) {
    expect(ids).toContain(gone);
  }
});

test("migration 460 strips the pruned ids from custom roles and API tokens; the role is editable again", async () => {
  const stale = ["hosts.view", "patches.view", "compliance.view", "commands.run", "ai.settings.edit", "logs.view"];
  // a role and a token as they were stored before the pruning (written directly: the app refuses unknown ids)
  const [{ id: roleId }] = await db.sql`insert into console_roles (name, description, permissions, scope_tags)
    values ('old-ops', '', ${stale}, ${["group:web"]}) returning id`;
  const [{ id: keptId }] = await db.sql`insert into console_roles (name, description, permissions) values ('untouched', '', ${["hosts.view"]}) returning id`;
  expect(validateRole("old-ops", stale, ["group:web"])).toEqual(["Unknown permissions: patches.view, commands.run, ai.settings.edit."]);
  const admin = await db.sql`select id from console_roles where name = 'admin'`;
  const userId = await createUser(db.sql, { username: "pruned-owner", password: "Correct-Horse-9-Battery", roleIds: admin.map((r) => Number(r.id)) }, DEFAULT_SETTINGS.password);
  const { row } = await createApiToken(db.sql, userId, { name: "old", permissions: ["hosts.view"], scopeTags: [], expiresInDays: 1, aiClient: false, clientName: "" });
  await db.sql`update api_tokens set permissions = ${["hosts.view", "reports.view", "logs.view"]} where id = ${row.id}`;
  const [{ updated_at: before }] = await db.sql`select updated_at from console_roles where id = ${keptId}`;

  await db.sql.begin((tx) => tx.unsafe(readFileSync(MIGRATION_460, "utf8")));

  const [r] = await db.sql`select permissions, scope_tags from console_roles where id = ${roleId}`;
  expect(r!.permissions).toEqual(["hosts.view", "compliance.view", "logs.view"]); // order kept
  expect(r!.scope_tags).toEqual(["group:web"]);
  expect(validateRole("old-ops", r!.permissions, r!.scope_tags)).toEqual([]);
  const [t] = await db.sql`select permissions from api_tokens where id = ${row.id}`;
  expect(t!.permissions).toEqual(["hosts.view", "logs.view"]);
  // a role without pruned ids is not rewritten
  const [{ updated_at: after }] = await db.sql`select updated_at from console_roles where id = ${keptId}`;
  expect(after).toEqual(before);
  // no stored grant names an unknown permission
  const roles = await db.sql`select name, permissions from console_roles`;
  for (const x of roles) expect({ role: x.name, unknown: (x.permissions as string[]).filter((p) => !PERMISSION_IDS.has(p)) }).toEqual({ role: x.name, unknown: [] });
});

test("migration 465 strips backups.* (no route gated them then) from custom roles and API tokens, order kept; issue #15 brings them back with their routes", async () => {
  const MIGRATION_465 = join(SRC, "store/postgres/migrations/465_backup_permissions_pruned.sql");
  // back since the backup pages landed (src/web/backups/routes.ts, migration 510): each gates a route
  expect(PERMISSIONS.filter((p) => p.id.startsWith("backups.")).map((p) => p.id).sort()).toEqual(["backups.manage", "backups.restore", "backups.run", "backups.view"]);
  for (const id of ["backups.view", "backups.manage", "backups.run", "backups.restore"]) expect({ id, gated: routeAccess.has(id) }).toEqual({ id, gated: true });
  const [{ id: roleId }] = await db.sql`insert into console_roles (name, description, permissions)
    values ('old-backup-ops', '', ${["hosts.view", "backups.view", "logs.view", "backups.run"]}) returning id`;
  const admin = await db.sql`select id from console_roles where name = 'admin'`;
  const userId = await createUser(db.sql, { username: "backup-token-owner", password: "Correct-Horse-9-Battery", roleIds: admin.map((r) => Number(r.id)) }, DEFAULT_SETTINGS.password);
  const { row } = await createApiToken(db.sql, userId, { name: "old-backups", permissions: ["hosts.view"], scopeTags: [], expiresInDays: 1, aiClient: false, clientName: "" });
  await db.sql`update api_tokens set permissions = ${["backups.restore", "hosts.view"]} where id = ${row.id}`;

  await db.sql.begin((tx) => tx.unsafe(readFileSync(MIGRATION_465, "utf8")));

  const [r] = await db.sql`select permissions from console_roles where id = ${roleId}`;
  expect(r!.permissions).toEqual(["hosts.view", "logs.view"]);
  expect(validateRole("old-backup-ops", r!.permissions, [])).toEqual([]);
  const [t] = await db.sql`select permissions from api_tokens where id = ${row.id}`;
  expect(t!.permissions).toEqual(["hosts.view"]);
});
