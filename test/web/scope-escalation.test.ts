/**
 * Acting beyond one's host scope through the data that defines scopes: host tags (a host's tags
 * decide which roles reach it), and alert silences and rules (which reach hosts by tags). A
 * principal scoped to some tags must not widen its own reach, nor reach hosts outside its scope,
 * by changing them. Replayed against the console over a real PostgreSQL.
 */
import { afterAll, expect, test } from "bun:test";
import { consoleHarness, TEST_PASSWORD, type TestSession } from "../support/console-app.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { createSession } from "../../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { rolePolicy, setRolePolicy } from "../../src/operations/files.ts";

const h = await consoleHarness();
afterAll(() => h.close());
const sql = h.db.sql;

async function agent(hostname: string, tags: string[]): Promise<number> {
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values (${hostname}, ${Buffer.from(hostname.padEnd(32, "."))}, ${tags}, now()) returning id`;
  return Number(a!.id);
}

/** A signed-in user holding these roles (each: permissions + scope tags, [] = all hosts). */
async function userWithRoles(name: string, roles: Array<{ permissions: string[]; tags: string[] }>): Promise<TestSession> {
  const ids: number[] = [];
  for (const [i, r] of roles.entries()) ids.push(await createRole(sql, `${name}-${i}`, "", r.permissions, r.tags));
  const userId = await createUser(sql, { username: name, password: TEST_PASSWORD, roleIds: ids }, DEFAULT_SETTINGS.password);
  const { token, session } = await createSession(sql, userId, "full", "192.0.2.10", "test", DEFAULT_SETTINGS.session);
  return { userId, username: name, token, csrf: session.csrf_token, sessionId: session.id };
}

const tagsOf = async (id: number) => ((await sql`select tags from agents where id = ${id}`)[0]!.tags as string[]);

test("hosts.edit cannot tag a host into the scope of another of the editor's roles (it would widen the editor's own reach)", async () => {
  const web = await agent("esc-web-1", ["group:web"]);
  // tags the web hosts; reads logs of the db hosts only
  const u = await userWithRoles("tagger", [
    { permissions: ["hosts.view", "hosts.edit"], tags: ["group:web", "group:db"] },
    { permissions: ["logs.view"], tags: ["group:db"] },
  ]);
  expect((await h.send(`/hosts/${web}/logs`, { session: u })).status).toBe(404);
  const r = await h.send(`/hosts/${web}/tags`, { session: u, form: { tags: "group:web, group:db" } });
  expect(r.status).toBe(403);
  expect(await r.text()).toContain("logs.view");
  expect(await tagsOf(web)).toEqual(["group:web"]);
  expect((await h.send(`/hosts/${web}/logs`, { session: u })).status).toBe(404);
});

test("a scoped hosts.edit cannot add or remove tags outside its scope", async () => {
  const web = await agent("esc-web-2", ["group:web", "team:payments"]);
  const u = await userWithRoles("tagger-web", [{ permissions: ["hosts.view", "hosts.edit"], tags: ["group:web"] }]);
  // adding a tag outside the scope hands the host to whoever that tag's roles are
  const add = await h.send(`/hosts/${web}/tags`, { session: u, form: { tags: "group:web, team:payments, group:db" } });
  expect(add.status).toBe(403);
  expect(await add.text()).toContain("group:db");
  // removing one takes it away from them
  const remove = await h.send(`/hosts/${web}/tags`, { session: u, form: { tags: "group:web" } });
  expect(remove.status).toBe(403);
  expect(await remove.text()).toContain("team:payments");
  expect(await tagsOf(web)).toEqual(["group:web", "team:payments"]);
  const denied = await sql`select details from audit_log where action = 'access.denied' and target = ${`POST /hosts/${web}/tags`}`;
  expect(denied.length).toBe(2);
  // within the scope (a web and db operator moving the host between its groups): still works
  const both = await userWithRoles("tagger-both", [{ permissions: ["hosts.view", "hosts.edit"], tags: ["group:web", "group:db"] }]);
  expect((await h.send(`/hosts/${web}/tags`, { session: both, form: { tags: "team:payments, group:db" } })).status).toBe(303);
  expect(await tagsOf(web)).toEqual(["team:payments", "group:db"]);
});

test("an unscoped hosts.edit still moves hosts between groups", async () => {
  const web = await agent("esc-web-3", ["group:web"]);
  const admin = await h.userWithRole("admin");
  expect((await h.send(`/hosts/${web}/tags`, { session: admin, form: { tags: "group:db" } })).status).toBe(303);
  expect(await tagsOf(web)).toEqual(["group:db"]);
});

const local = (ms: number) => new Date(ms).toISOString().slice(0, 16);
const window = () => ({ starts_at: local(Date.now() - 60_000), ends_at: local(Date.now() + 86_400_000) });
const silences = async () => Number((await sql`select count(*)::int as n from alert_silences`)[0]!.n);

test("a scoped alerts.silence cannot silence or hold maintenance beyond its scope, nor end a silence beyond it", async () => {
  const u = await userWithRoles("silencer-web", [{ permissions: ["alerts.view", "alerts.silence"], tags: ["group:web"] }]);
  const before = await silences();
  // no tags means every host: a maintenance window over the whole fleet (no alerts at all)
  const all = await h.send("/alerts/silences", { session: u, form: { kind: "maintenance", tags: "", comment: "quiet night", ...window() }, headers: { "hx-request": "true" } });
  expect(all.status).toBe(403);
  expect(await all.text()).toContain("all hosts");
  const api = await h.call("POST", "/api/alerts/silences", u, { kind: "silence", tags: "group:web, group:db", comment: "quiet night", ...window() });
  expect(api.status).toBe(403);
  expect(api.text).toContain("group:db");
  expect(await silences()).toBe(before);
  // an administrator's fleet-wide window is not the scoped user's to end
  const admin = await h.userWithRole("admin");
  expect((await h.send("/alerts/silences", { session: admin, form: { kind: "maintenance", tags: "", comment: "datacenter move", ...window() }, headers: { "hx-request": "true" } })).status).toBe(204);
  const [fleet] = await sql`select id from alert_silences order by id desc limit 1`;
  expect((await h.send(`/alerts/silences/${fleet!.id}/expire`, { session: u, form: {}, headers: { "hx-request": "true" } })).status).toBe(403);
  expect((await h.call("POST", `/api/alerts/silences/${fleet!.id}/expire`, u)).status).toBe(403);
  expect((await sql`select expired_at from alert_silences where id = ${fleet!.id}`)[0]!.expired_at).toBeNull();
  // within the scope: still works
  const own = await h.call("POST", "/api/alerts/silences", u, { kind: "silence", tags: "group:web", comment: "deploy", ...window() });
  expect(own.status).toBe(200);
  expect((await h.call("POST", `/api/alerts/silences/${own.json.id}/expire`, u)).status).toBe(200);
});

const rule = (name: string, scope: string) => ({ name, kind: "host_offline", severity: "warning", enabled: "on", offline_seconds: "300", for_seconds: "0", scope_tags: scope });

test("a scoped alerts.rules.edit / .delete cannot create, change or delete a rule reaching hosts beyond its scope", async () => {
  const admin = await h.userWithRole("admin");
  expect((await h.send("/alerts/rules", { session: admin, form: rule("fleet offline", ""), headers: { "hx-request": "true" } })).status).toBe(204);
  const [fleet] = await sql`select id from alert_rules where name = 'fleet offline'`;
  const u = await userWithRoles("ruler-web", [{ permissions: ["alerts.view", "alerts.rules.edit", "alerts.rules.delete"], tags: ["group:web"] }]);
  const create = await h.send("/alerts/rules", { session: u, form: rule("everything", ""), headers: { "hx-request": "true" } });
  expect(create.status).toBe(403);
  expect((await h.send("/alerts/rules", { session: u, form: rule("db too", "group:web, group:db"), headers: { "hx-request": "true" } })).status).toBe(403);
  expect((await sql`select count(*)::int as n from alert_rules where name in ('everything', 'db too')`)[0]!.n).toBe(0);
  // narrowing the fleet rule to group:web would stop alerts for every other host
  const edit = await h.send(`/alerts/rules/${fleet!.id}`, { session: u, form: rule("fleet offline", "group:web"), headers: { "hx-request": "true" } });
  expect(edit.status).toBe(403);
  expect((await h.send(`/alerts/rules/${fleet!.id}/delete`, { session: u, form: {}, headers: { "hx-request": "true" } })).status).toBe(403);
  expect((await sql`select scope_tags from alert_rules where id = ${fleet!.id}`)[0]!.scope_tags).toEqual([]);
  // within the scope: still works
  expect((await h.send("/alerts/rules", { session: u, form: rule("web offline", "group:web"), headers: { "hx-request": "true" } })).status).toBe(204);
  const [web] = await sql`select id from alert_rules where name = 'web offline'`;
  expect((await h.send(`/alerts/rules/${web!.id}`, { session: u, form: { ...rule("web offline", "group:web"), offline_seconds: "600" }, headers: { "hx-request": "true" } })).status).toBe(204);
  expect((await h.send(`/alerts/rules/${web!.id}/delete`, { session: u, form: {}, headers: { "hx-request": "true" } })).status).toBe(204);
});

test("an unscoped helpdesk role does not let its holder create or give roles that widen its scoped permissions to every host", async () => {
  const web = await agent("esc-web-4", ["group:web"]);
  const db = await agent("esc-db-4", ["group:db"]);
  // user administration everywhere (no host permission), and logs of the web hosts only
  const u = await userWithRoles("helpdesk-op", [
    { permissions: ["users.view", "users.edit", "roles.view", "roles.create", "roles.edit"], tags: [] },
    { permissions: ["hosts.view", "logs.view"], tags: ["group:web"] },
  ]);
  expect((await h.send(`/hosts/${db}/logs`, { session: u })).status).toBe(404);
  // a new role with the scoped permissions and no scope tags (every host)
  const create = await h.send("/roles", { session: u, form: { name: "logs-everywhere", permissions: ["hosts.view", "logs.view"], scope_tags: "" } });
  expect(create.status).toBe(403);
  expect(await create.text()).toContain("access to all hosts");
  expect((await sql`select count(*)::int as n from console_roles where name = 'logs-everywhere'`)[0]!.n).toBe(0);
  // the same through an existing unscoped role (an administrator's) given to oneself
  const allLogs = await createRole(sql, "all-logs", "", ["hosts.view", "logs.view"], []);
  const own = (await sql`select role_id from user_roles where user_id = ${u.userId}`).map((r) => String(r.role_id));
  const give = await h.send(`/users/${u.userId}/roles`, { session: u, form: { roles: [...own, String(allLogs)] } });
  expect(give.status).toBe(403);
  expect((await sql`select count(*)::int as n from user_roles where user_id = ${u.userId}`)[0]!.n).toBe(2);
  // or by widening the scoped role itself
  await h.reauth(u);
  const [scoped] = await sql`select id, name from console_roles where name = 'helpdesk-op-1'`;
  const widen = await h.send(`/roles/${scoped!.id}`, { session: u, form: { permissions: ["hosts.view", "logs.view"], scope_tags: "", confirm: scoped!.name } });
  expect(widen.status).toBe(403);
  expect((await sql`select scope_tags from console_roles where id = ${scoped!.id}`)[0]!.scope_tags).toEqual(["group:web"]);
  expect((await h.send(`/hosts/${db}/logs`, { session: u })).status).toBe(404);
  expect((await h.send(`/hosts/${web}/logs`, { session: u })).status).toBe(200);
  // within the scope: still works (a web-only role with those permissions)
  expect((await h.send("/roles", { session: u, form: { name: "web-logs", permissions: ["hosts.view", "logs.view"], scope_tags: "group:web" } })).status).toBe(303);
});

test("the restore confirmation does not name a backup job outside the caller's scope", async () => {
  const web = await agent("esc-web-5", ["group:web"]);
  const [dest] = await sql`insert into backup_destinations (name, type, created_by) values ('esc-dest', 'local', 'admin') returning id`;
  const [job] = await sql`insert into backup_jobs (name, host_tag, destination_id, password_sealed, created_by)
    values ('payroll-db-nightly', 'group:payroll', ${dest!.id}, 'x', 'admin') returning id`;
  const u = await userWithRoles("restorer-web", [{ permissions: ["hosts.view", "backups.view", "backups.restore"], tags: ["group:web"] }]);
  const r = await h.call("POST", `/api/hosts/${web}/backups/restore`, u, { job: String(job!.id), target: "/" });
  expect(r.text).not.toContain("payroll-db-nightly");
  // answered as a job that does not exist
  const missing = await h.call("POST", `/api/hosts/${web}/backups/restore`, u, { job: "999999", target: "/" });
  expect({ status: r.status, json: r.json }).toEqual({ status: missing.status, json: missing.json });
});

test("a role's file roots are granted only where the editor reaches them: per file permission and host scope", async () => {
  // reads everything on the web hosts, only /var/log on the db hosts, writes only /tmp on the web hosts
  const u = await userWithRoles("policy-editor-scoped", [
    { permissions: ["roles.view", "roles.edit"], tags: [] },
    { permissions: ["hosts.view", "files.view", "files.read"], tags: ["group:web"] },
    { permissions: ["hosts.view", "files.view", "files.read"], tags: ["group:db"] },
    { permissions: ["hosts.view", "files.write"], tags: ["group:web"] },
  ]);
  const roleOf = async (i: number) => Number((await sql`select id from console_roles where name = ${`policy-editor-scoped-${i}`}`)[0]!.id);
  await setRolePolicy(sql, await roleOf(1), { roots: ["/"], denied: [] }, "t");
  await setRolePolicy(sql, await roleOf(2), { roots: ["/var/log"], denied: [] }, "t");
  await setRolePolicy(sql, await roleOf(3), { roots: ["/tmp"], denied: [] }, "t");
  await h.reauth(u);
  const saveFiles = async (role: number, name: string, roots: string) => h.send(`/roles/${role}/files`, { session: u, form: { roots, denied: "", confirm: name } });

  // a db reader role: /etc is within the editor's roots on web hosts only
  const dbReader = await createRole(sql, "db-reader", "", ["hosts.view", "files.view", "files.read"], ["group:db"]);
  const refused = await saveFiles(dbReader, "db-reader", "/etc");
  expect(refused.status).toBe(403);
  expect(await refused.text()).toContain("/etc for files.view on group:db hosts, /etc for files.read on group:db hosts");
  expect((await rolePolicy(sql, dbReader)).roots).toEqual([]);
  expect((await saveFiles(dbReader, "db-reader", "/var/log/postgresql")).status).toBe(303);

  // a web writer role: reading /etc is within reach there, writing it is not
  const webWriter = await createRole(sql, "web-writer", "", ["hosts.view", "files.view", "files.write"], ["group:web"]);
  const write = await saveFiles(webWriter, "web-writer", "/etc");
  expect(write.status).toBe(403);
  const writeText = await write.text();
  expect(writeText).toContain("/etc for files.write on group:web hosts");
  expect(writeText).not.toContain("files.view on");
  expect((await saveFiles(webWriter, "web-writer", "/tmp/uploads")).status).toBe(303);

  // nor by widening a role's scope or permissions afterwards: /etc for reading on web, then the role onto db hosts
  const webReader = await createRole(sql, "web-reader", "", ["hosts.view", "files.view", "files.read"], ["group:web"]);
  expect((await saveFiles(webReader, "web-reader", "/etc")).status).toBe(303);
  const widen = await h.send(`/roles/${webReader}`, { session: u, form: { permissions: ["hosts.view", "files.view", "files.read"], scope_tags: "group:web, group:db", confirm: "web-reader" } });
  expect(widen.status).toBe(403);
  expect(await widen.text()).toContain("/etc for files.view on group:db hosts");
  const writeToo = await h.send(`/roles/${webReader}`, { session: u, form: { permissions: ["hosts.view", "files.view", "files.read", "files.write"], scope_tags: "group:web", confirm: "web-reader" } });
  expect(writeToo.status).toBe(403);
  expect(await writeToo.text()).toContain("/etc for files.write on group:web hosts");
  expect((await sql`select permissions, scope_tags from console_roles where id = ${webReader}`)[0]).toEqual({ permissions: ["hosts.view", "files.view", "files.read"], scope_tags: ["group:web"] });
  // an edit within what it reached before still goes through (narrowing, the description)
  expect((await h.send(`/roles/${webReader}`, { session: u, form: { description: "reads web configs", permissions: ["hosts.view", "files.view"], scope_tags: "group:web", confirm: "web-reader" } })).status).toBe(303);
});
