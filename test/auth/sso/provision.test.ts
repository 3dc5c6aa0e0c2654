import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../../support/db.ts";
import { syncBuiltinRoles, createRole, roleIdByName } from "../../../src/auth/roles.ts";
import { audit, type AuditEvent } from "../../../src/audit/audit.ts";
import { createUser } from "../../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../../src/settings/console-settings.ts";
import { loginStage, normalizeUsername, provisionUser } from "../../../src/auth/sso/provision.ts";
import { setGroupMappings } from "../../../src/auth/sso/providers.ts";
import type { ExternalIdentity, SsoPolicy } from "../../../src/auth/sso/types.ts";

let db: TestDb;
const req = { ip: "192.0.2.7", userAgent: "provision-test" };
const events: AuditEvent[] = [];
const record = async (e: AuditEvent) => { events.push(e); return audit(db.sql, e); };
const ident = (over: Partial<ExternalIdentity> = {}): ExternalIdentity => ({
  provider: "corp", subject: "sub-alice", username: "Alice.Smith", email: "alice@example.test", displayName: "Alice Smith", groups: ["Ops"], idpMfa: false, ...over,
});
const rolesOf = async (userId: number) => (await db.sql`select r.name, ur.granted_by from user_roles ur join console_roles r on r.id = ur.role_id
  where ur.user_id = ${userId} order by r.name`).map((r) => `${r.name}:${r.granted_by}`);

beforeAll(async () => {
  db = await testDatabase(2);
  await syncBuiltinRoles(db.sql);
  await createRole(db.sql, "web-operators", "", ["hosts.view"], ["group:web"]);
  await db.sql`insert into sso_providers (id, kind, name) values ('corp', 'oidc', 'Corp'), ('other', 'saml', 'Other')`;
  await setGroupMappings(db.sql, "corp", [
    { group: "ops", role: "operator" },
    { group: "web-team", role: "web-operators" },
    { group: "auditors", role: "auditor" },
    { group: "console-admins", role: "admin" },
  ]);
}, 30_000);
afterAll(() => db.drop());

describe("JIT provisioning and group-to-role mapping", () => {
  test("first sign-in creates the user, links the identity and maps groups case-insensitively", async () => {
    const r = await provisionUser(db.sql, record, ident(), {}, req);
    expect(r).toMatchObject({ username: "alice.smith", created: true, rolesAdded: ["operator"], rolesRemoved: [] });
    const [u] = await db.sql`select username, email, display_name, auth_source, password_hash from console_users where id = ${r.userId}`;
    expect(u).toEqual({ username: "alice.smith", email: "alice@example.test", display_name: "Alice Smith", auth_source: "sso:corp", password_hash: null });
    expect(await rolesOf(r.userId)).toEqual(["operator:sso:corp"]);
    expect(events.map((e) => e.action)).toEqual(["sso.user.provisioned", "sso.roles.synced"]);
  });

  test("roles follow the groups at every sign-in; host-group scope comes with the role; manual grants stay", async () => {
    const first = await provisionUser(db.sql, record, ident(), {}, req);
    await db.sql`insert into user_roles (user_id, role_id) values (${first.userId}, ${(await roleIdByName(db.sql, "viewer"))!})`;
    const r = await provisionUser(db.sql, record, ident({ groups: ["web-team", "auditors"], email: "new@example.test" }), {}, req);
    expect(r.created).toBe(false);
    expect(r.rolesAdded.sort()).toEqual(["auditor", "web-operators"]);
    expect(r.rolesRemoved).toEqual(["operator"]);
    expect(await rolesOf(r.userId)).toEqual(["auditor:sso:corp", "viewer:manual", "web-operators:sso:corp"]);
    const [scope] = await db.sql`select scope_tags from console_roles where name = 'web-operators'`;
    expect(scope!.scope_tags).toEqual(["group:web"]);
    expect((await db.sql`select email from console_users where id = ${r.userId}`)[0]!.email).toBe("new@example.test");
    const removed = await provisionUser(db.sql, record, ident({ groups: [] }), {}, req);
    expect(removed.rolesRemoved.sort()).toEqual(["auditor", "web-operators"]);
    expect(await rolesOf(r.userId)).toEqual(["viewer:manual"]);
    const synced = events.filter((e) => e.action === "sso.roles.synced").at(-1)!;
    expect(synced.details).toMatchObject({ removed: expect.arrayContaining(["auditor", "web-operators"]) });
  });

  test("editing a user's roles in the console keeps where each kept role came from", async () => {
    const { setUserRoles } = await import("../../../src/auth/roles.ts");
    const r = await provisionUser(db.sql, record, ident({ subject: "sub-edit", username: "edited", groups: ["ops"] }), {}, req);
    const operator = (await roleIdByName(db.sql, "operator"))!;
    const viewer = (await roleIdByName(db.sql, "viewer"))!;
    await setUserRoles(db.sql, r.userId, [operator, viewer]);
    expect(await rolesOf(r.userId)).toEqual(["operator:sso:corp", "viewer:manual"]);
    // leaving the group still removes the SSO-granted role; the manual one stays
    await provisionUser(db.sql, record, ident({ subject: "sub-edit", username: "edited", groups: [] }), {}, req);
    expect(await rolesOf(r.userId)).toEqual(["viewer:manual"]);
  });

  test("an existing local account is never taken over by a provider asserting its name", async () => {
    await createUser(db.sql, { username: "bob", password: "Correct-Horse-9-Battery", roleIds: [] }, DEFAULT_SETTINGS.password);
    await expect(provisionUser(db.sql, record, ident({ subject: "sub-bob", username: "bob" }), {}, req)).rejects.toMatchObject({ reason: "username_taken" });
    // nor by another provider's user of the same name
    await expect(provisionUser(db.sql, record, ident({ provider: "other", subject: "x", username: "alice.smith" }), {}, req)).rejects.toMatchObject({ reason: "username_taken" });
  });

  test("jit off, no mapped group, disabled account and unusable usernames are refused", async () => {
    await expect(provisionUser(db.sql, record, ident({ subject: "new-1", username: "newbie" }), { jit: false }, req)).rejects.toMatchObject({ reason: "not_provisioned" });
    await expect(provisionUser(db.sql, record, ident({ subject: "new-2", username: "nogroup", groups: ["nothing"] }), { requireMappedGroup: true }, req)).rejects.toMatchObject({ reason: "no_mapped_group" });
    expect((await db.sql`select count(*)::int as n from console_users where username = 'nogroup'`)[0]!.n).toBe(0);
    await expect(provisionUser(db.sql, record, ident({ subject: "new-3", username: "###" }), {}, req)).rejects.toMatchObject({ reason: "bad_username" });
    const r = await provisionUser(db.sql, record, ident({ subject: "sub-dis", username: "dis" }), {}, req);
    await db.sql`update console_users set disabled_at = now() where id = ${r.userId}`;
    await expect(provisionUser(db.sql, record, ident({ subject: "sub-dis", username: "dis" }), {}, req)).rejects.toMatchObject({ reason: "disabled" });
  });

  test("concurrent first sign-ins of one identity create one user", async () => {
    const all = await Promise.all(Array.from({ length: 4 }, () => provisionUser(db.sql, record, ident({ subject: "sub-race", username: "racer" }), {}, req)));
    expect(new Set(all.map((r) => r.userId)).size).toBe(1);
    expect(all.filter((r) => r.created)).toHaveLength(1);
  });

  test("leaving the admin group never removes the last active administrator: the role stays and that is audited", async () => {
    const admin = (await roleIdByName(db.sql, "admin"))!;
    const otherAdmins = await db.sql`select user_id from user_roles where role_id = ${admin}`;
    expect(otherAdmins.length).toBe(0); // the SSO user below is the only administrator
    const who = { subject: "sub-root", username: "root-sso" };
    const first = await provisionUser(db.sql, record, ident({ ...who, groups: ["console-admins"] }), {}, req);
    expect(first.rolesAdded).toEqual(["admin"]);
    const left = await provisionUser(db.sql, record, ident({ ...who, groups: [] }), {}, req);
    expect(left).toMatchObject({ rolesRemoved: [], rolesKept: ["admin"] });
    expect(await rolesOf(first.userId)).toEqual(["admin:sso:corp"]);
    const kept = events.filter((e) => e.action === "sso.roles.kept").at(-1)!;
    expect(kept).toMatchObject({ success: false, target: "user:root-sso", details: { kept: ["admin"], reason: "last active administrator" } });
    // once another administrator exists, the group decides again
    await createUser(db.sql, { username: "local-admin", password: "Correct-Horse-9-Battery", roleIds: [admin] }, DEFAULT_SETTINGS.password);
    const now = await provisionUser(db.sql, record, ident({ ...who, groups: [] }), {}, req);
    expect(now).toMatchObject({ rolesRemoved: ["admin"], rolesKept: [] });
    expect(await rolesOf(first.userId)).toEqual([]);
  });

  test("usernames are normalized", () => {
    expect(normalizeUsername("  John Doe@Corp.example ")).toBe("john-doe@corp.example");
    expect(normalizeUsername("__x")).toBe("x");
  });
});

describe("MFA policy for SSO users", () => {
  const p = (mfa: SsoPolicy["mfa"], requireMfa = false): SsoPolicy => ({ enforced: false, mfa, requireMfa });
  test("trust-idp, require-local and off", () => {
    expect(loginStage(p("trust-idp"), false, false)).toBe("full");
    expect(loginStage(p("trust-idp", true), true, false)).toBe("full");
    expect(loginStage(p("trust-idp", true), false, true)).toBe("mfa");
    expect(loginStage(p("trust-idp", true), false, false)).toBe("enroll");
    expect(loginStage(p("require-local"), true, true)).toBe("mfa");
    expect(loginStage(p("require-local"), true, false)).toBe("enroll");
    expect(loginStage(p("off"), false, false)).toBe("full");
  });
});
