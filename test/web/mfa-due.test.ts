/**
 * MFA that becomes required while users are signed in takes effect at their next request, not
 * at their next sign-in: turning on "MFA for administrators", granting an administrative role to
 * a user, or adding an administrative permission to a role moves the signed-in sessions of the
 * users it now concerns (local accounts without TOTP) to enrollment.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { consoleHarness, TEST_PASSWORD, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { enableTotp } from "../../src/auth/users.ts";
import { newTotpSecret, totpStep } from "../../src/auth/totp.ts";
import { createRole, roleIdByName } from "../../src/auth/roles.ts";

let h: ConsoleHarness;
let actor: TestSession; // an administrator with TOTP, as a real one has
beforeAll(async () => {
  h = await consoleHarness();
  actor = await h.userWithRole("admin", "actor");
  await enableTotp(h.db.sql, h.services.secrets, actor.userId, newTotpSecret(), totpStep(Date.now()) - 2);
}, 60_000);
afterAll(() => h?.close());

const where = async (s: TestSession, path = "/hosts") => {
  const r = await h.send(path, { session: s });
  return r.status === 303 ? r.headers.get("location") : String(r.status);
};

const securityForm = (mfaAdmins: boolean) => ({
  min_length: "12", require_lower: "on", require_upper: "on", require_digit: "on", expiry_days: "0", history: "5",
  lockout_threshold: "5", lockout_minutes: "15", min_strength: "3", mfa_enforce: "off", mfa_admins_shown: "1",
  ...(mfaAdmins ? { mfa_admins: "on" } : {}),
  idle_minutes: "30", absolute_hours: "12", confirm: "apply security settings", reauth: TEST_PASSWORD,
});

test("turning on MFA for administrators sends signed-in administrators without TOTP to enrollment at once", async () => {
  const before = await h.services.settings.get();
  await h.services.settings.set("mfa", { ...before.mfa, requireForAdmins: false });
  try {
    const editor = await h.userWith(["users.view", "users.edit"], "editor-no-totp");
    const viewer = await h.userWithRole("viewer", "viewer-no-totp");
    expect(await where(editor, "/users")).toBe("200");
    expect(await where(viewer)).toBe("200");

    const saved = await h.send("/settings/security", { session: actor, form: securityForm(true) });
    expect(saved.status).toBe(303);
    expect(await where(editor, "/users")).toBe("/account/mfa"); // an administrative permission, no TOTP
    expect(await where(viewer)).toBe("200"); // the policy does not concern viewers
    expect(await where(actor)).toBe("200"); // enrolled already
    // enrollment is the one page the session still reaches
    expect((await h.send("/account/mfa", { session: editor })).status).toBe(200);
    const [a] = await h.db.sql`select details from audit_log where action = 'settings.security' order by id desc limit 1`;
    expect(a!.details.mfa_enrollment_required_now).toEqual(["editor-no-totp"]);
  } finally {
    await h.services.settings.set("mfa", before.mfa);
  }
}, 60_000);

test("an administrative role granted to a signed-in user without TOTP takes effect as enrollment, not as power", async () => {
  const target = await h.userWithRole("viewer", "promoted");
  expect(await where(target)).toBe("200");
  const admin = (await roleIdByName(h.db.sql, "admin"))!;
  const viewer = (await roleIdByName(h.db.sql, "viewer"))!;
  await h.reauth(actor);
  const r = await h.send(`/users/${target.userId}/roles`, { session: actor, form: { roles: [String(viewer), String(admin)], confirm: "promoted" } });
  expect(r.status).toBeLessThan(400);
  expect(await where(target)).toBe("/account/mfa");
  expect((await h.send("/users", { session: target })).headers.get("location")).toBe("/account/mfa");
}, 60_000);

test("adding an administrative permission to a role sends its signed-in holders without TOTP to enrollment", async () => {
  const roleId = await createRole(h.db.sql, "desk", "", ["hosts.view", "users.view"], []);
  const holder = await h.userWith(["hosts.view"], "desk-holder");
  await h.db.sql`insert into user_roles (user_id, role_id) values (${holder.userId}, ${roleId})`;
  expect(await where(holder)).toBe("200");
  await h.reauth(actor);
  const r = await h.send(`/roles/${roleId}`, { session: actor, form: { name: "desk", description: "", permissions: ["hosts.view", "users.view", "users.unlock"], scope_tags: "", confirm: "desk" } });
  expect(r.status).toBeLessThan(400);
  expect(await where(holder)).toBe("/account/mfa");
}, 60_000);
