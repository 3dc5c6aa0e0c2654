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
