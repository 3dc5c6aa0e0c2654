/**
 * Role file policies: the defaults (nothing, built-in admin "/"), the rules a command carries
 * (only roles granting the permission and covering the host), and the editor on the role page,
 * which cannot grant roots beyond the editor's own.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { consoleHarness, type ConsoleHarness } from "../../support/console-app.ts";
import { createRole, roleIdByName, setUserRoles } from "../../../src/auth/roles.ts";
import { cleanPath, parsePathList, rolePolicy, rootsBeyond, setRolePolicy, userPolicy } from "../../../src/operations/files.ts";
import { findHost } from "../../../src/store/postgres/queries-console.ts";
import { HostScope } from "../../../src/auth/host-scope.ts";

let h: ConsoleHarness;
beforeAll(async () => {
  h = await consoleHarness();
});
afterAll(async () => {
  await h?.close();
});

test("paths: absolute, normalised, no . or ..; lists parsed line by line", () => {
  expect(cleanPath("/srv//app/")).toBe("/srv/app");
  for (const bad of ["srv", "/srv/../etc", "/srv/./x", "/a\0b"]) expect(cleanPath(bad)).toBeNull();
  expect(parsePathList("/srv\n\n  /tmp  \nrelative\n/srv")).toEqual({ paths: ["/srv", "/tmp"], invalid: ["relative"] });
});

test("an editor cannot grant roots beyond its own", () => {
  const editor = [{ roots: ["/srv", "/var/log"], denied: ["/srv/private"] }];
  expect(rootsBeyond(editor, ["/srv/app", "/var/log/nginx"])).toEqual([]);
  expect(rootsBeyond(editor, ["/etc", "/", "/srv", "/srv/private/keys"])).toEqual(["/etc", "/", "/srv", "/srv/private/keys"]);
  expect(rootsBeyond([{ roots: ["/"], denied: [] }], ["/etc"])).toEqual([]);
  expect(rootsBeyond([], ["/tmp"])).toEqual(["/tmp"]);
});

test("defaults and the rules a command carries: only roles that grant the permission and cover the host", async () => {
  const sql = h.db.sql;
  const admin = (await roleIdByName(sql, "admin"))!;
  expect(await rolePolicy(sql, admin)).toMatchObject({ roots: ["/"], explicit: false });
  const plain = await createRole(sql, "files-plain", "", ["files.view"], []);
  expect(await rolePolicy(sql, plain)).toMatchObject({ roots: [], explicit: false });
  await setRolePolicy(sql, plain, { roots: ["/srv"], denied: ["/srv/private"] }, "t");
  const scoped = await createRole(sql, "files-scoped", "", ["files.view", "files.write"], ["group:db"]);
  await setRolePolicy(sql, scoped, { roots: ["/var"], denied: [] }, "t");
  const reader = await createRole(sql, "files-reader", "", ["files.read"], []);
  await setRolePolicy(sql, reader, { roots: ["/etc"], denied: [] }, "t");
  const u = await h.userWith([], "policy-user");
  await setUserRoles(sql, u.userId, [plain, scoped, reader]);
  const [a] = await sql`insert into agents (hostname, public_key, tags) values ('web-1', ${Buffer.alloc(32, 7)}, ${["group:web"]}) returning id`;
  const host = (await findHost(sql, HostScope.system("test"), Number(a!.id)))!;
  expect(await userPolicy(sql, u.userId, "files.view", host)).toEqual([{ roots: ["/srv"], denied: ["/srv/private"] }]);
  expect(await userPolicy(sql, u.userId, "files.write", host)).toEqual([]); // the only writer role is scoped to other hosts
  expect(await userPolicy(sql, u.userId, "files.read", host)).toEqual([{ roots: ["/etc"], denied: [] }]);
});

test("the role page's policy editor: within the editor's roots only, audited", async () => {
  const sql = h.db.sql;
  const editorRole = await createRole(sql, "policy-editor", "", ["roles.view", "roles.edit", "files.view"], []);
  await setRolePolicy(sql, editorRole, { roots: ["/srv"], denied: ["/srv/private"] }, "t");
  const editor = await h.userWith([], "editor");
  await setUserRoles(sql, editor.userId, [editorRole]);
  const target = await createRole(sql, "policy-target", "", ["files.view"], []);
  await h.reauth(editor);
  const save = (roots: string, denied = "") => h.send(`/roles/${target}/files`, { session: editor, form: { roots, denied, confirm: "policy-target" } });
  const ok = await save("/srv/app\n/srv/www", "/srv/app/secrets");
  expect(ok.status).toBeLessThan(400);
  expect(await rolePolicy(sql, target)).toMatchObject({ roots: ["/srv/app", "/srv/www"], denied: ["/srv/app/secrets"], explicit: true });
  for (const beyond of ["/etc", "/srv", "/srv/private"]) {
    const r = await save(`/srv/app\n${beyond}`);
    expect(r.status).toBe(403);
    expect(await r.text()).toContain(beyond);
  }
  expect((await rolePolicy(sql, target)).roots).toEqual(["/srv/app", "/srv/www"]); // unchanged
  expect((await save("relative/path")).status).toBe(422);
  // the page shows the editor
  const page = await h.send(`/roles/${target}/files`, { session: editor });
  expect(await page.text()).toContain("/srv/www");
  const audit = await sql`select success, details from audit_log where action = 'roles.files.edit' order by id`;
  expect(audit.map((a) => a.success)).toEqual([true, false, false, false]);
  // an admin (default "/") can grant anything
  const admin = await h.userWithRole("admin", "the-admin");
  await h.reauth(admin);
  const r = await h.send(`/roles/${target}/files`, { session: admin, form: { roots: "/etc", confirm: "policy-target" } });
  expect(r.status).toBeLessThan(400);
  expect((await rolePolicy(sql, target)).roots).toEqual(["/etc"]);
});
