import { test, expect, afterAll } from "bun:test";
import { consoleHarness, TEST_PASSWORD } from "../support/console-app.ts";
import { roleIdByName } from "../../src/auth/roles.ts";

const h = await consoleHarness();
afterAll(() => h.close());

test("custom roles: created with chosen permissions, edits take effect at the holder's next request", async () => {
  const admin = await h.userWithRole("admin");
  const created = await h.send("/roles", { session: admin, form: { name: "log-readers", description: "logs", permissions: ["hosts.view"], scope_tags: "" } });
  expect(created.status).toBe(303);
  const id = Number(created.headers.get("location")!.split("/").pop());
  const holder = await h.userWith([]);
  await h.db.sql`insert into user_roles (user_id, role_id) values (${holder.userId}, ${id})`;
  expect((await h.send("/hosts", { session: holder })).status).toBe(200);
  expect((await h.send("/audit", { session: holder })).status).toBe(403);
  const edit = await h.send(`/roles/${id}`, { session: admin, form: { description: "logs", permissions: ["hosts.view", "audit.view"], scope_tags: "", confirm: "log-readers", reauth: TEST_PASSWORD } });
  expect(edit.status).toBe(303);
  expect((await h.send("/audit", { session: holder })).status).toBe(200);
  const [rec] = await h.db.sql`select details from audit_log where action = 'roles.edit'`;
  expect(rec!.details).toMatchObject({ added: ["audit.view"], removed: [], dangerous: true, confirmed: true, reauth: "password" });
});

test("built-in roles cannot be changed or deleted, names are unique", async () => {
  const admin = await h.userWithRole("admin");
  const viewer = (await roleIdByName(h.db.sql, "viewer"))!;
  const r = await h.send(`/roles/${viewer}`, { session: admin, form: { permissions: ["users.delete"], confirm: "viewer" } });
  expect(r.status).toBe(409);
  expect((await h.send(`/roles/${viewer}/delete`, { session: admin, form: { confirm: "viewer" } })).status).toBe(409);
  const dup = await h.send("/roles", { session: admin, form: { name: "Viewer", permissions: ["hosts.view"] } });
  expect(dup.status).toBe(422);
  expect(await dup.text()).toContain("A role named Viewer exists.");
});

test("no escalation: a role editor cannot grant permissions it does not hold, to roles or users", async () => {
  const editor = await h.userWith(["roles.view", "roles.create", "roles.edit", "users.view", "users.create", "users.edit", "hosts.view"]);
  const r = await h.send("/roles", { session: editor, form: { name: "sneaky", permissions: ["hosts.view", "users.delete"] } });
  expect(r.status).toBe(403);
  expect(await r.text()).toContain("You cannot create the role sneaky: the role sneaky as written would grant the permission users.delete, which you do not hold.");
  const admin = (await roleIdByName(h.db.sql, "admin"))!;
  const u = await h.send("/users", { session: editor, form: { username: "sneak", password: TEST_PASSWORD, password2: TEST_PASSWORD, roles: String(admin) } });
  expect(u.status).toBe(403);
  expect(await u.text()).toContain("You cannot give these roles to a new user: the role admin would grant the permissions");
  const target = await h.userWithRole("viewer");
  const up = await h.send(`/users/${target.userId}/roles`, { session: editor, form: { roles: String(admin) } });
  expect(up.status).toBe(403);
});

test("the last administrator cannot be removed, disabled or demoted", async () => {
  const h2 = await consoleHarness();
  try {
    const only = await h2.userWithRole("admin", "solo");
    const other = await h2.userWithRole("admin", "second");
    expect((await h2.send(`/users/${only.userId}/delete`, { session: only, form: { confirm: "solo", reauth: TEST_PASSWORD } })).status).toBe(409); // self
    expect((await h2.send(`/users/${other.userId}/delete`, { session: only, form: { confirm: "second", reauth: TEST_PASSWORD } })).status).toBe(303);
    const viewer = (await roleIdByName(h2.db.sql, "viewer"))!;
    const demote = await h2.send(`/users/${only.userId}/roles`, { session: only, form: { roles: String(viewer) } });
    expect(demote.status).toBe(409);
    expect(await demote.text()).toContain("last active administrator");
    expect((await h2.send(`/users/${only.userId}/disable`, { session: only, form: {} })).status).toBe(409);
  } finally {
    await h2.close();
  }
});
