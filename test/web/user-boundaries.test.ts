/**
 * Privilege boundaries in user and role management (issue #12, finding 2), against the console
 * over a real PostgreSQL: nobody acts on a user holding more than they do, and nobody grants
 * (or edits a role into) more than they hold. Each escalation of the finding is replayed and
 * must be refused, audited, and leave nothing changed; the legitimate cases still work.
 */
import { test, expect, afterAll } from "bun:test";
import { consoleHarness, TEST_PASSWORD, TEST_IP_HEADER, type TestSession } from "../support/console-app.ts";
import { startConsoleServer } from "../support/console-server.ts";
import { PRE_CSRF_COOKIE } from "../../src/web/guard.ts";
import { createRole, getRole, LastAdminError, roleIdByName, rolesOfUsers, setUserRoles, updateRole, userGrants } from "../../src/auth/roles.ts";
import { createUser, enableTotp, getUser } from "../../src/auth/users.ts";
import { createSession, SESSION_COOKIE } from "../../src/auth/session.ts";
import { combineHoldings, roleHolding } from "../../src/auth/boundaries.ts";
import { PERMISSIONS } from "../../src/auth/permissions.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

const h = await consoleHarness();
afterAll(() => h.close());
const sql = h.db.sql;
const NEW_PASSWORD = "Quiet-Lantern-4-Orchard";

async function login(username: string, password: string): Promise<number> {
  const page = await h.send("/login");
  const pre = /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie")!)![1]!;
  const r = await h.send("/login", { form: { username, password, _csrf: pre }, headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}`, [TEST_IP_HEADER]: "203.0.113.9" } });
  return r.status;
}

/** A signed-in user whose single role holds these permissions over these host tags ([] = all hosts). */
async function scopedUser(permissions: string[], tags: string[]): Promise<TestSession & { roleId: number; roleName: string }> {
  const s = await h.userWith(permissions);
  const roleName = `r-${s.username}`;
  const roleId = (await roleIdByName(sql, roleName))!;
  await updateRole(sql, roleId, "", permissions, tags);
  return { ...s, roleId, roleName };
}

async function denials(): Promise<Array<{ target: string; details: Record<string, unknown> }>> {
  return (await sql`select target, details from audit_log where action = 'access.denied' and category = 'security_event' order by id`) as never;
}

const dangerous = (who: string) => ({ confirm: who, reauth: TEST_PASSWORD });

test("users.password.reset alone cannot reset an administrator's password, so cannot sign in as them", async () => {
  const boss = await h.userWithRole("admin", "boss");
  const helpdesk = await h.userWith(["users.password.reset"]);
  const before = await denials();
  const r = await h.send(`/users/${boss.userId}/password`, { session: helpdesk, form: { password: NEW_PASSWORD, password2: NEW_PASSWORD, ...dangerous("boss") } });
  expect(r.status).toBe(403);
  const text = await r.text();
  expect(text).toContain("You cannot set the password of boss: boss holds the permissions");
  expect(text).toContain("which you do not hold.");
  // the attacker's next step fails: the new password does not open the admin account
  expect(await login("boss", NEW_PASSWORD)).toBe(401);
  expect(await login("boss", TEST_PASSWORD)).toBe(303);
  // refused and audited with the reason and what was lacking
  const after = await denials();
  expect(after.length).toBe(before.length + 1);
  const rec = after.at(-1)!;
  expect(rec.target).toBe(`POST /users/${boss.userId}/password`);
  expect(rec.details).toMatchObject({ reason: "target_holds_more", subject: "boss", lacking: { scope: [] } });
  expect((rec.details.lacking as { permissions: string[] }).permissions).toContain("users.delete");
  expect((await sql`select count(*)::int as n from audit_log where action = 'users.password.reset'`)[0]!.n).toBe(0);
});

test("users.mfa.reset alone cannot remove an administrator's MFA", async () => {
  const boss = await h.userWithRole("admin", "boss-mfa");
  await enableTotp(sql, h.services.secrets, boss.userId, "JBSWY3DPEHPK3PXP", 1);
  const helpdesk = await h.userWith(["users.mfa.reset"]);
  const r = await h.send(`/users/${boss.userId}/mfa/reset`, { session: helpdesk, form: dangerous("boss-mfa") });
  expect(r.status).toBe(403);
  expect(await r.text()).toContain("You cannot reset the MFA of boss-mfa");
  expect((await getUser(sql, boss.userId))!.totp_enabled_at).not.toBeNull();
  // the admin's session survives (a reset would have ended it)
  expect((await h.send("/hosts", { session: boss })).status).toBe(200);
});

test("a scoped users.edit holder cannot give itself an unscoped or wider role; a role within its scope it can", async () => {
  const me = await scopedUser(["users.view", "users.edit", "hosts.view"], ["rack-a"]);
  const wide = await createRole(sql, "everywhere-view", "", ["hosts.view"], []);
  const other = await createRole(sql, "rack-b-view", "", ["hosts.view"], ["rack-b"]);
  const narrow = await createRole(sql, "rack-a-view", "", ["hosts.view"], ["rack-a"]);
  const self = (roles: number[]) => h.send(`/users/${me.userId}/roles`, { session: me, form: { roles: roles.map(String) } });

  const r1 = await self([me.roleId, wide]);
  expect(r1.status).toBe(403);
  expect(await r1.text()).toContain("You cannot give " + me.username + " these roles: the role everywhere-view would grant access to all hosts");
  const r2 = await self([me.roleId, other]);
  expect(r2.status).toBe(403);
  expect(await r2.text()).toContain("hosts tagged rack-b (outside your host scope)");
  expect((await userGrants(sql, me.userId)).scopeTags).toEqual(["rack-a"]);

  expect((await self([me.roleId, narrow])).status).toBe(303);
  expect((await userGrants(sql, me.userId)).roles.sort()).toEqual(["rack-a-view", me.roleName].sort());
});

test("roles.edit on one's own role cannot clear its scope or add permissions", async () => {
  const me = await scopedUser(["roles.view", "roles.edit", "hosts.view"], ["rack-a"]);
  const edit = (permissions: string[], scope: string) =>
    h.send(`/roles/${me.roleId}`, { session: me, form: { description: "", permissions, scope_tags: scope, ...dangerous(me.roleName) } });

  const cleared = await edit(["roles.view", "roles.edit", "hosts.view"], "");
  expect(cleared.status).toBe(403);
  expect(await cleared.text()).toContain(`You cannot edit the role ${me.roleName}: the role ${me.roleName} as written would grant access to all hosts`);
  const widened = await edit(["roles.view", "roles.edit", "hosts.view"], "rack-a, rack-b");
  expect(widened.status).toBe(403);
  const more = await edit(["roles.view", "roles.edit", "hosts.view", "hosts.edit"], "rack-a");
  expect(more.status).toBe(403);
  expect(await more.text()).toContain("the permission hosts.edit");
  expect(await getRole(sql, me.roleId)).toMatchObject({ scope_tags: ["rack-a"], permissions: ["roles.view", "roles.edit", "hosts.view"] });
  // narrowing one's own role is fine
  expect((await edit(["roles.view", "roles.edit", "hosts.view"], "rack-a")).status).toBe(303);
});

test("users.edit cannot strip another administrator's admin role", async () => {
  await h.userWithRole("admin", "keeper"); // so the last-admin rule is not what refuses
  const boss = await h.userWithRole("admin", "boss-roles");
  const editor = await h.userWith(["users.view", "users.edit", "hosts.view"]);
  const viewer = (await roleIdByName(sql, "viewer"))!;
  const r = await h.send(`/users/${boss.userId}/roles`, { session: editor, form: { roles: String(viewer) } });
  expect(r.status).toBe(403);
  expect(await r.text()).toContain("You cannot change the roles of boss-roles: boss-roles holds the permissions");
  expect((await userGrants(sql, boss.userId)).roles).toEqual(["admin"]);
});

test("every user-targeting route refuses an actor who lacks even one permission of the target", async () => {
  await h.userWithRole("admin", "keeper2");
  const boss = await h.userWithRole("admin", "boss-all");
  await enableTotp(sql, h.services.secrets, boss.userId, "JBSWY3DPEHPK3PXP", 1);
  // everything but one permission, unscoped: still less than an administrator
  const almost = await h.userWith(PERMISSIONS.map((p) => p.id).filter((p) => p !== "settings.security.edit"));
  const viewer = (await roleIdByName(sql, "viewer"))!;
  const b = `/users/${boss.userId}`;
  const cases: Array<[string, Record<string, string | string[]>]> = [
    [`${b}/roles`, { roles: String(viewer) }],
    [`${b}/disable`, {}],
    [`${b}/unlock`, {}],
    [`${b}/mfa/reset`, dangerous("boss-all")],
    [`${b}/password`, { password: NEW_PASSWORD, password2: NEW_PASSWORD, ...dangerous("boss-all") }],
    [`${b}/delete`, dangerous("boss-all")],
    [`${b}/sessions/${boss.sessionId}/revoke`, {}],
  ];
  const before = (await denials()).length;
  for (const [path, form] of cases) {
    const r = await h.send(path, { session: almost, form });
    expect({ path, status: r.status }).toEqual({ path, status: 403 });
    expect(await r.text()).toContain("the permission settings.security.edit, which you do not hold");
  }
  expect((await denials()).length).toBe(before + cases.length);
  const u = (await getUser(sql, boss.userId))!;
  expect(u.disabled_at).toBeNull();
  expect(u.totp_enabled_at).not.toBeNull();
  expect((await h.send("/hosts", { session: boss })).status).toBe(200); // session not revoked
  // the pages show the account read-only and offer no revoke for its sessions
  const page = await (await h.send(b, { session: almost })).text();
  expect(page).toContain('id="user-beyond"');
  expect(page).not.toContain(`action="${b}/password"`);
  expect(page).not.toContain(`action="${b}/delete"`);
  const sessions = await (await h.send("/sessions", { session: almost })).text();
  expect(sessions).not.toContain(`${b}/sessions/${boss.sessionId}/revoke`);
});

test("break-glass flags and SSO group mappings are within the actor's holding too", async () => {
  const boss = await h.userWithRole("admin", "boss-bg");
  const sso = await h.userWith(["sso.view", "sso.breakglass.edit", "sso.mappings.edit"]);
  const flag = await h.send("/sso/break-glass", { session: sso, form: { username: "boss-bg", flag: "on", ...dangerous("flag boss-bg") } });
  expect(flag.status).toBe(403);
  expect(await flag.text()).toContain("You cannot flag boss-bg for break-glass sign-in");
  expect((await getUser(sql, boss.userId))!.break_glass).toBe(false);
  await sql`insert into sso_providers (id, kind, name) values ('corp', 'oidc', 'Corp')`;
  const map = await h.send("/sso/mappings", { session: sso, form: { provider: "corp", mappings: "staff = admin", ...dangerous("save group mappings") } });
  expect(map.status).toBe(403);
  expect(await map.text()).toContain("You cannot map groups to these roles: the role admin would grant");
  expect((await sql`select count(*)::int as n from sso_group_mappings`)[0]!.n).toBe(0);
});

test("editing or deleting a role must not act on holders above the editor", async () => {
  const editor = await scopedUser(["roles.view", "roles.edit", "roles.delete", "hosts.view", "logs.view"], []);
  const shared = await createRole(sql, "shared-view", "", ["hosts.view"], []);
  const holder = await h.userWith(["metrics.view"]); // holds metrics.view, which the editor lacks
  await sql`insert into user_roles (user_id, role_id) values (${holder.userId}, ${shared})`;
  const r = await h.send(`/roles/${shared}`, { session: editor, form: { description: "", permissions: ["hosts.view", "logs.view"], scope_tags: "", ...dangerous("shared-view") } });
  expect(r.status).toBe(403);
  expect(await r.text()).toContain(`You cannot edit the role shared-view: its holder ${holder.username} holds the permission metrics.view`);
  const d = await h.send(`/roles/${shared}/delete`, { session: editor, form: dangerous("shared-view") });
  expect(d.status).toBe(403);
  expect((await getRole(sql, shared))!.permissions).toEqual(["hosts.view"]);
  // held only by users within the editor: the edit goes through and stays within the editor
  await sql`delete from user_roles where user_id = ${holder.userId} and role_id = ${shared}`;
  const low = await h.userWith([]);
  await sql`insert into user_roles (user_id, role_id) values (${low.userId}, ${shared})`;
  const ok = await h.send(`/roles/${shared}`, { session: editor, form: { description: "", permissions: ["hosts.view", "logs.view"], scope_tags: "", ...dangerous("shared-view") } });
  expect(ok.status).toBe(303);
  expect([...(await userGrants(sql, low.userId)).permissions].sort()).toEqual(["hosts.view", "logs.view"]);
});

test("legitimate resets still work: an admin resets a viewer, helpdesk resets a user holding less", async () => {
  const admin = await h.userWithRole("admin");
  const viewer = await h.userWithRole("viewer", "plain-viewer");
  const r1 = await h.send(`/users/${viewer.userId}/password`, { session: admin, form: { password: NEW_PASSWORD, password2: NEW_PASSWORD, ...dangerous("plain-viewer") } });
  expect(r1.status).toBe(303);
  expect(await login("plain-viewer", NEW_PASSWORD)).toBe(303);

  const helpdesk = await h.userWith(["users.view", "users.password.reset", "users.mfa.reset", "users.unlock", "hosts.view", "metrics.view"]);
  const staff = await h.userWith(["hosts.view"], "staff-member");
  await enableTotp(sql, h.services.secrets, staff.userId, "JBSWY3DPEHPK3PXP", 1);
  const r2 = await h.send(`/users/${staff.userId}/password`, { session: helpdesk, form: { password: NEW_PASSWORD, password2: NEW_PASSWORD, ...dangerous("staff-member") } });
  expect(r2.status).toBe(303);
  expect(await login("staff-member", NEW_PASSWORD)).toBe(303);
  expect((await h.send(`/users/${staff.userId}/mfa/reset`, { session: helpdesk, form: dangerous("staff-member") })).status).toBe(303);
  expect((await getUser(sql, staff.userId))!.totp_enabled_at).toBeNull();
  // and a user may always act on itself within its own holding
  expect((await h.send(`/users/${helpdesk.userId}/password`, { session: helpdesk, form: { password: NEW_PASSWORD, password2: NEW_PASSWORD, ...dangerous(helpdesk.username) } })).status).toBe(303);
});

test("two administrators demoting each other at once: one of them stays an administrator", async () => {
  const h2 = await consoleHarness();
  try {
    const a = await h2.userWithRole("admin", "ann");
    const b = await h2.userWithRole("admin", "ben");
    const viewer = (await roleIdByName(h2.db.sql, "viewer"))!;
    const [ra, rb] = await Promise.all([
      h2.send(`/users/${b.userId}/roles`, { session: a, form: { roles: String(viewer) } }),
      h2.send(`/users/${a.userId}/roles`, { session: b, form: { roles: String(viewer) } }),
    ]);
    // the loser is refused either by the guard (already demoted) or by the last-admin rule
    const statuses = [ra.status, rb.status].sort();
    expect(statuses[0]).toBe(303);
    expect([403, 409]).toContain(statuses[1]!);
    const admins = async () => (await h2.db.sql`select count(*)::int as n from user_roles ur join console_roles r on r.id = ur.role_id where r.name = 'admin'`)[0]!.n;
    expect(await admins()).toBe(1);
    // the model itself serializes: two demotions started together, with no check in between
    const c = await h2.userWithRole("admin", "cat");
    const survivor = ra.status === 303 ? a : b;
    const results = await Promise.allSettled([setUserRoles(h2.db.sql, survivor.userId, [viewer]), setUserRoles(h2.db.sql, c.userId, [viewer])]);
    expect(results.filter((x) => x.status === "fulfilled").length).toBe(1);
    const failed = results.find((x) => x.status === "rejected") as PromiseRejectedResult;
    expect(failed.reason).toBeInstanceOf(LastAdminError);
    expect(await admins()).toBe(1);
  } finally {
    await h2.close();
  }
});

test("combineHoldings of a user's roles equals userGrants (the boundary checks and the guard agree)", async () => {
  const a = await createRole(sql, "combo-a", "", ["hosts.view"], ["t1"]);
  const b = await createRole(sql, "combo-b", "", ["logs.view"], ["t2", "t1"]);
  const c = await createRole(sql, "combo-c", "", [], []);
  const ids: number[] = [];
  for (const roles of [[a], [a, b], [a, b, c], []]) {
    ids.push(await createUser(sql, { username: `combo${ids.length}`, password: TEST_PASSWORD, roleIds: roles }, DEFAULT_SETTINGS.password));
  }
  const byUser = await rolesOfUsers(sql, ids);
  for (const id of ids) {
    const g = await userGrants(sql, id);
    const c2 = combineHoldings(byUser.get(id)!.map(roleHolding));
    expect([...c2.permissions].sort()).toEqual([...g.permissions].sort());
    const tags = (t: readonly string[] | null) => (t === null ? null : [...new Set(t)].sort());
    expect(tags(c2.scopeTags)).toEqual(tags(g.scopeTags));
  }
});

test("over the real server (TLS): the password-reset escalation is refused and the admin password still rules", async () => {
  const srv = await startConsoleServer();
  try {
    const pw = DEFAULT_SETTINGS.password;
    const adminRole = (await roleIdByName(srv.db.sql, "admin"))!;
    const bossId = await createUser(srv.db.sql, { username: "root-admin", password: TEST_PASSWORD, roleIds: [adminRole] }, pw);
    const hdRole = await createRole(srv.db.sql, "reset-only", "", ["users.password.reset"], []);
    const hdId = await createUser(srv.db.sql, { username: "resetter", password: TEST_PASSWORD, roleIds: [hdRole] }, pw);
    const { token, session } = await createSession(srv.db.sql, hdId, "full", "127.0.0.1", "test", DEFAULT_SETTINGS.session);
    const tls = { rejectUnauthorized: false };
    const body = new URLSearchParams({ password: NEW_PASSWORD, password2: NEW_PASSWORD, confirm: "root-admin", reauth: TEST_PASSWORD });
    const r = await fetch(`${srv.url}/users/${bossId}/password`, {
      method: "POST", body, tls, redirect: "manual",
      headers: { cookie: `${SESSION_COOKIE}=${token}`, "x-csrf-token": session.csrf_token, "content-type": "application/x-www-form-urlencoded" },
    } as RequestInit);
    expect(r.status).toBe(403);
    expect(await r.text()).toContain("You cannot set the password of root-admin");
    const signIn = async (password: string) => {
      const page = await fetch(`${srv.url}/login`, { tls } as RequestInit);
      const pre = /sm_csrf=([^;]+)/.exec(page.headers.get("set-cookie") ?? "")![1]!;
      const res = await fetch(`${srv.url}/login`, {
        method: "POST", tls, redirect: "manual", body: new URLSearchParams({ username: "root-admin", password, _csrf: pre }),
        headers: { cookie: `${PRE_CSRF_COOKIE}=${pre}`, "content-type": "application/x-www-form-urlencoded" },
      } as RequestInit);
      await res.arrayBuffer();
      return res.status;
    };
    expect(await signIn(NEW_PASSWORD)).toBe(401);
    expect(await signIn(TEST_PASSWORD)).toBe(303);
  } finally {
    await srv.close();
  }
});

test("revoking another user's session returns to the page it was revoked from: the Sessions list, or the user's page", async () => {
  const admin = await h.userWithRole("admin", "sess-admin");
  const target = await h.userWith(["hosts.view"], "sess-target");
  const second = await h.userWith(["hosts.view"], "sess-target-2");
  // the Sessions page offers the revoke with its way back
  const list = await (await h.send("/sessions", { session: admin })).text();
  const fromList = `/users/${target.userId}/sessions/${target.sessionId}/revoke?back=sessions`;
  expect(list).toContain(`action="${fromList}"`);
  const r1 = await h.send(fromList, { session: admin, form: {} });
  expect([r1.status, r1.headers.get("location")]).toEqual([303, "/sessions"]);
  expect((await h.send("/hosts", { session: target })).status).not.toBe(200); // it ended
  // from the user's page (no back): to that page; anything but "sessions" is not a destination
  const r2 = await h.send(`/users/${second.userId}/sessions/${second.sessionId}/revoke?back=https://evil.example/`, { session: admin, form: {} });
  expect([r2.status, r2.headers.get("location")]).toEqual([303, `/users/${second.userId}`]);
  expect((await h.send("/hosts", { session: second })).status).not.toBe(200);
});
