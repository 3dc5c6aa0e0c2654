import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testDatabase, type TestDb } from "../../support/db.ts";
import { syncBuiltinRoles } from "../../../src/auth/roles.ts";
import { createUser } from "../../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../../src/settings/console-settings.ts";
import { createSecretBox } from "../../../src/auth/secret-box.ts";
import { randomBytes } from "node:crypto";
import { runSsoCli } from "../../../src/auth/sso/cli.ts";
import { getProvider } from "../../../src/auth/sso/providers.ts";
import { loadSsoPolicy } from "../../../src/auth/sso/policy.ts";

let db: TestDb;
let dir: string;
const out: string[] = [];
const box = createSecretBox(randomBytes(32));
const run = (...args: string[]) => runSsoCli(db.sql, box, args, (l) => out.push(l));

const METADATA = `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.test/meta">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>RU5D</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
      U0lH
    </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.test/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`;

beforeAll(async () => {
  db = await testDatabase(2);
  await syncBuiltinRoles(db.sql);
  dir = mkdtempSync(join(tmpdir(), "servermind-sso-cli-"));
}, 30_000);
afterAll(async () => {
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

test("providers, SAML metadata import, mappings, policy and break-glass flags; changes audited without secrets", async () => {
  writeFileSync(join(dir, "oidc.json"), JSON.stringify({ issuer: "https://op.example.test", clientId: "sm", clientSecret: "top-secret-value" }));
  expect(await run("provider", "set", "corp", "oidc", "Corp", "--config", join(dir, "oidc.json"))).toBe(0);
  writeFileSync(join(dir, "idp.xml"), METADATA);
  const [stored] = await db.sql`select config from sso_providers where id = 'corp'`;
  expect(stored!.config.clientSecret).toStartWith("v1.");
  expect(JSON.stringify(stored)).not.toContain("top-secret-value");
  expect((await getProvider<{ clientSecret: string }>(db.sql, box, "corp"))!.config.clientSecret).toBe("top-secret-value");
  writeFileSync(join(dir, "bad.json"), JSON.stringify({ url: "http://dir.example.test", bindDn: "cn=x", bindPassword: "p", userBase: "o=x", userFilter: "(uid=*)", groupBase: "o=x", nested: "deep" }));
  await expect(run("provider", "set", "dir", "ldap", "Dir", "--config", join(dir, "bad.json"))).rejects.toThrow(/url must use ldaps: or ldap:.*userFilter must contain \{username\}.*nested must be/);
  await expect(run("provider", "set", "Bad Id", "oidc", "X", "--config", join(dir, "oidc.json"))).rejects.toThrow(/provider id/);
  expect(await run("provider", "import-saml", "adfs", "ADFS", "--metadata", join(dir, "idp.xml"))).toBe(0);
  expect((await getProvider(db.sql, box, "adfs"))!.config).toEqual({ idpEntityId: "https://idp.example.test/meta", idpSsoUrl: "https://idp.example.test/sso", idpCerts: ["U0lH"] });
  expect(await run("map", "corp", "ops=operator", "cn=Auditors,ou=groups=auditor")).toBe(0);
  expect((await db.sql`select external_group from sso_group_mappings order by 1`).map((r) => r.external_group)).toEqual(["cn=Auditors,ou=groups", "ops"]);
  await expect(run("map", "corp", "ops=no-such-role")).rejects.toThrow(/no role named/);
  expect(await run("policy", "--enforced", "true", "--mfa", "require-local")).toBe(0);
  expect(await loadSsoPolicy(db.sql)).toEqual({ enforced: true, mfa: "require-local", requireMfa: false });
  await createUser(db.sql, { username: "root-admin", password: "Correct-Horse-9-Battery", roleIds: [] }, DEFAULT_SETTINGS.password);
  expect(await run("break-glass", "root-admin", "on")).toBe(0);
  expect((await db.sql`select break_glass from console_users where username = 'root-admin'`)[0]!.break_glass).toBe(true);
  expect(await run("provider", "disable", "corp")).toBe(0);
  expect(await getProvider(db.sql, box, "corp")).toBeUndefined();
  out.length = 0;
  expect(await run("provider", "list")).toBe(0);
  expect(out).toEqual(["adfs\tsaml\tenabled\tADFS", "corp\toidc\tdisabled\tCorp"]);
  expect(await run("nonsense")).toBe(2);

  const trail = await db.sql`select action, details from audit_log order by id`;
  expect(trail.map((r) => r.action)).toEqual(["sso.provider.saved", "sso.provider.saved", "sso.mappings.saved", "sso.policy.saved", "break_glass.flagged", "sso.provider.disabled"]);
  expect(JSON.stringify(trail)).not.toContain("top-secret-value");
});

test("IdP metadata without a redirect binding or signing certificate, or with a DOCTYPE, is refused", async () => {
  const { importIdpMetadata } = await import("../../../src/auth/sso/saml/metadata.ts");
  expect(() => importIdpMetadata(METADATA.replace(/HTTP-Redirect/, "SOAP"))).toThrow(/HTTP-Redirect/);
  expect(() => importIdpMetadata(METADATA.replace(/use="signing"/, 'use="encryption"'))).toThrow(/signing certificate/);
  expect(() => importIdpMetadata(`<!DOCTYPE x [<!ENTITY e "x">]>${METADATA.replace('<?xml version="1.0"?>', "")}`)).toThrow(/DOCTYPE/);
});
