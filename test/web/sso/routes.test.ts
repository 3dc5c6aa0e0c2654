/** The /sso page: providers, mappings, policy and break-glass flags, each a confirmed, audited change. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { consoleHarness, TEST_PASSWORD, type ConsoleHarness, type TestSession } from "../../support/console-app.ts";
import { getProvider, listGroupMappings, setGroupMappings } from "../../../src/auth/sso/providers.ts";
import { loadSsoPolicy } from "../../../src/auth/sso/policy.ts";

let h: ConsoleHarness;
let admin: TestSession;

beforeAll(async () => {
  h = await consoleHarness();
  admin = await h.userWithRole("admin", "sso-admin");
}, 30_000);
afterAll(() => h.close());

const post = (path: string, form: Record<string, string>, session = admin) => h.send(path, { session, form });
const audits = async (prefix: string) => (await h.db.sql`select action, details from audit_log where action like ${prefix + "%"} order by id`);

test("an admin adds an OIDC provider, its secret is sealed and never shown again", async () => {
  const config = JSON.stringify({ issuer: "https://op.example.test", clientId: "sm", clientSecret: "s3cr3t-client-value" });
  const refused = await post("/sso/providers", { id: "corp", kind: "oidc", name: "Corp", enabled: "on", config, confirm: "wrong" });
  expect(await refused.text()).toContain("Type save identity provider exactly");
  const res = await post("/sso/providers", { id: "corp", kind: "oidc", name: "Corp", enabled: "on", config, confirm: "save identity provider", reauth: TEST_PASSWORD });
  expect(res.headers.get("location")).toBe("/sso?saved=provider");
  expect((await getProvider<{ clientSecret: string }>(h.db.sql, h.services.secrets, "corp"))!.config.clientSecret).toBe("s3cr3t-client-value");
  const page = await (await h.send("/sso?edit=corp", { session: admin })).text();
  expect(page).toContain('value="corp"');
  expect(page).toContain("(unchanged)");
  expect(page).not.toContain("s3cr3t-client-value");
  // saving again with "(unchanged)" keeps the secret
  const again = JSON.stringify({ issuer: "https://op2.example.test", clientId: "sm", clientSecret: "(unchanged)" });
  await post("/sso/providers", { id: "corp", kind: "oidc", name: "Corp", enabled: "on", config: again, confirm: "save identity provider" });
  const p = (await getProvider<{ clientSecret: string; issuer: string }>(h.db.sql, h.services.secrets, "corp"))!.config;
  expect(p).toMatchObject({ issuer: "https://op2.example.test", clientSecret: "s3cr3t-client-value" });
  expect(JSON.stringify(await audits("sso.provider"))).not.toContain("s3cr3t-client-value");
  expect((await audits("sso.provider")).map((r) => r.action)).toEqual(["sso.provider.created", "sso.provider.updated"]);
  // invalid settings are explained
  const bad = await post("/sso/providers", { id: "dir", kind: "ldap", name: "Dir", config: JSON.stringify({ url: "ldap://x" }), confirm: "save identity provider" });
  expect(await bad.text()).toContain("bindDn is required");
});

test("group mappings are validated and saved", async () => {
  const bad = await post("/sso/mappings", { provider: "corp", mappings: "ops = operator\nnonsense\nx = no-role", confirm: "save group mappings" });
  const text = await bad.text();
  expect(text).toContain("Line 2: write GROUP = ROLE.");
  expect(text).toContain("Line 3: there is no role named no-role.");
  const ok = await post("/sso/mappings", { provider: "corp", mappings: "ops = operator\ncn=Auditors,ou=groups = auditor\n", confirm: "save group mappings" });
  expect(ok.headers.get("location")).toBe("/sso?saved=mappings");
  const page = await (await h.send("/sso", { session: admin })).text();
  expect(page).toContain("cn=Auditors,ou=groups → auditor");
});

test("policy: enforcement needs an enabled provider; break-glass flags need the typed username", async () => {
  const res = await post("/sso/policy", { enforced: "on", mfa: "require-local", confirm: "apply sign-in policy" });
  expect(res.headers.get("location")).toBe("/sso?saved=policy");
  expect(await loadSsoPolicy(h.db.sql)).toEqual({ enforced: true, mfa: "require-local", requireMfa: false });
  const flag = await post("/sso/break-glass", { username: "sso-admin", flag: "on", confirm: "flag sso-admin" });
  expect(flag.headers.get("location")).toBe("/sso?saved=break-glass");
  expect((await h.db.sql`select break_glass from console_users where username = 'sso-admin'`)[0]!.break_glass).toBe(true);
  expect(await (await h.send("/sso", { session: admin })).text()).toContain("no TOTP: cannot sign in while SSO is enforced");
  expect((await audits("break_glass")).map((r) => r.action)).toEqual(["break_glass.flagged"]);
  await h.db.sql`update sso_providers set enabled = false`;
  const refused = await post("/sso/policy", { enforced: "on", mfa: "trust-idp", confirm: "apply sign-in policy" });
  expect(await refused.text()).toContain("Enable an identity provider before enforcing SSO");
});

test("viewers without sso permissions are refused", async () => {
  const viewer = await h.userWithRole("viewer", "sso-viewer");
  expect((await h.send("/sso", { session: viewer })).status).toBe(403);
  expect((await post("/sso/policy", { mfa: "off", confirm: "apply sign-in policy" }, viewer)).status).toBe(403);
});

test("a mappings editor cannot remove or change mappings to roles it could not grant; those it could grant are free to change", async () => {
  await h.db.sql`insert into sso_providers (id, kind, name, enabled, config) values ('hr', 'oidc', 'HR', false, '{}')`;
  await setGroupMappings(h.db.sql, "hr", [{ group: "Admins", role: "admin" }, { group: "ops", role: "operator" }, { group: "staff", role: "viewer" }]);
  const operator = (await h.db.sql`select permissions from console_roles where name = 'operator'`)[0]!.permissions as string[];
  const editor = await h.userWith(["sso.view", "sso.mappings.edit", ...operator], "mapping-editor");
  await h.reauth(editor);
  const current = async () => (await listGroupMappings(h.db.sql)).filter((m) => m.provider_id === "hr").map((m) => `${m.external_group} = ${m.role}`);
  const save = (mappings: string) => post("/sso/mappings", { provider: "hr", mappings, confirm: "save group mappings" }, editor);
  const before = await current();
  // removing the admin mapping would demote its members at their next sign-in
  const removed = await save("ops = operator\nstaff = viewer");
  expect(removed.status).toBe(403);
  expect(await removed.text()).toContain("Admins = admin");
  // changing its role too (the members would sign in as operators)
  const changed = await save("Admins = operator\nops = operator\nstaff = viewer");
  expect(changed.status).toBe(403);
  expect(await changed.text()).toContain("Admins = admin");
  // nor map another group to it (that grants it)
  const added = await save("Admins = admin\nroot = admin\nops = operator\nstaff = viewer");
  expect(added.status).toBe(403);
  expect(await added.text()).toContain("You cannot map groups to these roles: the role admin would grant");
  expect(await current()).toEqual(before);
  const denied = await h.db.sql`select details from audit_log where action = 'access.denied' and actor_name = 'mapping-editor' and target = 'POST /sso/mappings'`;
  expect(denied.map((d) => d.details.reason)).toEqual(["target_holds_more", "target_holds_more", "grant_exceeds_actor"]);
  // the admin mapping kept (group names match case-insensitively, as at sign-in), the others changed, removed or added
  const ok = await save("admins = admin\nops = viewer\ncontractors = viewer");
  expect(ok.headers.get("location")).toBe("/sso?saved=mappings");
  expect((await current()).sort()).toEqual(["admins = admin", "contractors = viewer", "ops = viewer"]);
  // an administrator still removes it
  await h.reauth(admin);
  expect((await post("/sso/mappings", { provider: "hr", mappings: "ops = viewer", confirm: "save group mappings" })).headers.get("location")).toBe("/sso?saved=mappings");
  expect(await current()).toEqual(["ops = viewer"]);
});
