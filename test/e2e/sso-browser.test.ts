/**
 * Enterprise sign-in in a real browser: Debian's chromium (playwright-core) against the real
 * server (TLS) with the console and the SSO plugin mounted as the lead will wire them, a real
 * OpenID Provider (oidc-provider) and a real SAML IdP (SimpleSAMLphp). Covers both flows end to
 * end, a tampered assertion refused, and a group removed at the IdP taking the role away at the
 * next sign-in. Screenshots go to test-artifacts/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type Page } from "playwright-core";
import { requireComponent } from "../support/ci.ts";
import { launchChromium } from "../support/browser.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { startTestOp, type TestOp } from "../support/oidc-provider.ts";
import { simpleSamlPhpAvailable, startSimpleSamlPhp, type TestIdp } from "../support/simplesamlphp.ts";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { consolePlugin, createServices, startConsole } from "../../src/web/plugin.ts";
import { consoleSsoDeps } from "../../src/web/sso/wiring.ts";
import { createUser } from "../../src/auth/users.ts";
import { roleIdByName } from "../../src/auth/roles.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { createSso, type SsoPlugin } from "../../src/auth/sso/routes.ts";
import type { SsoConfig } from "../../src/auth/sso/deps.ts";
import { saveProvider, setGroupMappings } from "../../src/auth/sso/providers.ts";
import { saveSsoPolicy } from "../../src/auth/sso/policy.ts";
import { importIdpMetadata } from "../../src/auth/sso/saml/metadata.ts";
import { spEndpoints } from "../../src/auth/sso/saml/service-provider.ts";
import { BASE, slapdAvailable, startSlapd, USERS, type TestSlapd } from "../support/slapd.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = "test-artifacts";
const haveChromium = requireComponent(existsSync(CHROMIUM), "Debian chromium (/usr/bin/chromium)");
const haveSsp = requireComponent(simpleSamlPhpAvailable(), "SimpleSAMLphp with php-cli (apt: simplesamlphp php-cli php-xml php-mbstring php-curl)");
const haveSlapd = requireComponent(slapdAvailable(), "OpenLDAP slapd (apt: slapd ldap-utils)");
const ready = haveChromium && haveSsp && haveSlapd;

let db: TestDb;
let server: RunningServer;
let sso: SsoPlugin;
let op: TestOp;
let idp: TestIdp;
let slapd: TestSlapd;
let browser: Browser;
let dataDir: string;
let stopConsole: () => void;
const ssoConfig: SsoConfig = { publicUrl: "https://127.0.0.1" };

beforeAll(async () => {
  if (!ready) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  db = await testDatabase(6);
  dataDir = mkdtempSync(join(tmpdir(), "servermind-sso-e2e-"));
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir });
  const deps = { sql: db.sql, config, dataDir, serverFingerprint: cert.fingerprint };
  stopConsole = (await startConsole(deps, () => {})).stop;
  // first-run setup is done: a local break-glass admin exists
  const glass = await createUser(db.sql, { username: "glass", password: "Blue-Granite-Harbor-7", roleIds: [(await roleIdByName(db.sql, "admin"))!] }, DEFAULT_SETTINGS.password);
  await db.sql`update console_users set break_glass = true where id = ${glass}`;
  await saveSsoPolicy(db.sql, { enforced: true, mfa: "trust-idp", requireMfa: false });
  const services = createServices(deps);
  sso = createSso(consoleSsoDeps(services, ssoConfig));
  server = startServer({
    config, sql: db.sql,
    cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
    plugins: [consolePlugin(deps, services), sso.plugin],
  });
  ssoConfig.publicUrl = server.url;

  op = await startTestOp([{ client_id: "servermind", client_secret: "e2e-secret-e2e-secret-e2e-secret", redirect_uris: [`${server.url}/auth/oidc/callback`], post_logout_redirect_uris: [`${server.url}/login?signed_out=1`] }]);
  op.accounts.set("erin", { preferred_username: "erin", email: "erin@example.test", name: "Erin OIDC", groups: ["sm-admins", "sm-viewers"] });
  await saveProvider(db.sql, services.secrets, { id: "corp", kind: "oidc", name: "Corp", enabled: true, config: {
    issuer: op.issuer, clientId: "servermind", clientSecret: "e2e-secret-e2e-secret-e2e-secret", allowHttpLoopback: true, scopes: ["openid", "profile", "email", "groups"],
  } });
  await setGroupMappings(db.sql, "corp", [{ group: "sm-admins", role: "admin" }, { group: "sm-viewers", role: "viewer" }]);

  idp = await startSimpleSamlPhp([spEndpoints(server.url)], {
    sam: { password: "sam-pw", uid: "sam", mail: "sam@example.test", displayName: "Sam SAML", groups: ["sm-admins", "sm-viewers"] },
  });
  await saveProvider(db.sql, services.secrets, { id: "ssp", kind: "saml", name: "SimpleSAMLphp", enabled: true, config: {
    ...importIdpMetadata(await (await fetch(idp.metadataUrl)).text()), usernameAttribute: "uid", emailAttribute: "mail", nameAttribute: "displayName", groupsAttribute: "groups",
  } });
  await setGroupMappings(db.sql, "ssp", [{ group: "sm-admins", role: "admin" }, { group: "sm-viewers", role: "viewer" }]);

  slapd = await startSlapd();
  await saveProvider(db.sql, services.secrets, { id: "dir", kind: "ldap", name: "Corporate directory", enabled: true, config: {
    url: slapd.ldapUrl, startTls: true, caPem: slapd.caPem, bindDn: slapd.serviceDn, bindPassword: slapd.servicePassword,
    userBase: `ou=people,${BASE}`, userFilter: "(&(objectClass=inetOrgPerson)(uid={username}))",
    groupBase: `ou=groups,${BASE}`, groupFilter: "(objectClass=groupOfNames)", nested: "recursive",
  } });
  await setGroupMappings(db.sql, "dir", [{ group: "everyone", role: "viewer" }]);

  browser = await launchChromium(CHROMIUM);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await idp?.stop();
  await slapd?.stop();
  await op?.stop();
  await sso?.close();
  await server?.stop();
  stopConsole?.();
  await db?.drop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 30_000);

async function fresh(): Promise<Page> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, userAgent: "sso-e2e-chromium" });
  return ctx.newPage();
}

async function oidcSignIn(page: Page, login: string) {
  await page.goto(`${server.url}/login`);
  await page.click("#sso-providers a:has-text('Sign in with Corp')");
  await page.waitForURL((u) => u.origin === op.issuer && u.pathname.startsWith("/interaction/"));
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any-password");
  await page.click("button[type=submit]");
  // consent, then back to the console
  await page.waitForURL((u) => u.origin === server.url || /\/interaction\//.test(u.pathname));
  if (new URL(page.url()).origin === op.issuer) await page.click("button[type=submit]");
  await page.waitForURL((u) => u.origin === server.url && u.pathname === "/hosts", { timeout: 10_000 });
}

async function samlSignIn(page: Page, tamper?: (xml: string) => string) {
  if (tamper) {
    await page.route("**/auth/saml/acs", async (route) => {
      const form = new URLSearchParams(route.request().postData() ?? "");
      form.set("SAMLResponse", Buffer.from(tamper(Buffer.from(form.get("SAMLResponse")!, "base64").toString("utf8"))).toString("base64"));
      await route.continue({ postData: form.toString() });
    });
  }
  await page.goto(`${server.url}/login`);
  await page.click("#sso-providers a:has-text('Sign in with SimpleSAMLphp')");
  await page.waitForURL((u) => u.origin === idp.baseUrl && u.pathname.includes("loginuserpass"));
  await page.fill("input[name=username]", "sam");
  await page.fill("input[name=password]", "sam-pw");
  await page.click("button[type=submit], input[type=submit]");
  await page.waitForURL((u) => u.origin === server.url && (u.pathname === "/hosts" || u.pathname === "/login"), { timeout: 10_000 });
}

async function status(page: Page, path: string): Promise<number> {
  return (await page.goto(`${server.url}${path}`))!.status();
}

const roles = async (username: string) => (await db.sql`select r.name from user_roles ur join console_roles r on r.id = ur.role_id
  join console_users u on u.id = ur.user_id where u.username = ${username} order by r.name`).map((r) => r.name as string);

describe.skipIf(!ready)("SSO in the browser", () => {
  test("the login page offers every provider; an LDAP user signs in through the directory form (StartTLS, nested groups)", async () => {
    const page = await fresh();
    await page.goto(`${server.url}/login`);
    expect(await page.locator("#sso-providers a").allInnerTexts()).toEqual(["Sign in with Corp", "Sign in with SimpleSAMLphp"]);
    expect(await page.locator("#break-glass-note").count()).toBe(1);
    await page.screenshot({ path: `${ARTIFACTS}/sso-login-page.png`, fullPage: true });
    await page.fill("#ldap-dir input[name=username]", "bob");
    await page.fill("#ldap-dir input[name=password]", "wrong-password");
    await page.click("#ldap-dir button[type=submit]");
    await page.waitForURL((u) => u.search === "?sso_error=bad_credentials");
    expect(await page.locator("#sso-error").innerText()).toContain("Wrong username or password");
    await page.fill("#ldap-dir input[name=username]", "bob");
    await page.fill("#ldap-dir input[name=password]", USERS.bob);
    await page.click("#ldap-dir button[type=submit]");
    await page.waitForURL((u) => u.pathname === "/hosts");
    expect(await roles("bob")).toEqual(["viewer"]);
    await page.context().close();
  }, 30_000);

  test("OIDC: sign in at the provider, land in the console as a provisioned admin; losing the group removes admin at next sign-in", async () => {
    const page = await fresh();
    await oidcSignIn(page, "erin");
    expect(await page.content()).toContain("erin");
    await page.screenshot({ path: `${ARTIFACTS}/sso-oidc-signed-in.png`, fullPage: true });
    expect(await roles("erin")).toEqual(["admin", "viewer"]);
    expect(await status(page, "/users")).toBe(200);

    // an SSO admin has no local password: dangerous changes are confirmed by signing in again at the
    // IdP (the sign-in itself counts for five minutes, so age it first)
    await db.sql`update console_sessions set reauth_at = now() - interval '10 minutes' where user_id = (select id from console_users where username = 'erin')`;
    await page.goto(`${server.url}/sso`);
    await page.screenshot({ path: `${ARTIFACTS}/sso-admin-page.png`, fullPage: true });
    await page.fill("#sso-policy input[name=confirm]", "apply sign-in policy");
    await page.click("#sso-policy button[type=submit]");
    await page.locator("#sso-policy .form-result", { hasText: "confirm your identity" }).waitFor({ timeout: 5000 });
    await page.click("#sso-reauth a");
    await page.waitForURL((u) => u.origin === op.issuer && u.pathname.startsWith("/interaction/"));
    await page.fill("input[name=login]", "erin");
    await page.fill("input[name=password]", "any-password");
    await page.click("button[type=submit]");
    await page.waitForURL((u) => u.origin === server.url && u.pathname === "/sso", { timeout: 10_000 });
    await page.selectOption("#sso-policy select[name=mfa]", "require-local");
    await page.fill("#sso-policy input[name=confirm]", "apply sign-in policy");
    await page.click("#sso-policy button[type=submit]");
    await page.waitForURL((u) => u.search === "?saved=policy");
    const [pol] = await db.sql`select value from console_settings where key = 'sso'`;
    expect(pol!.value).toMatchObject({ enforced: true, mfa: "require-local" });
    await saveSsoPolicy(db.sql, { enforced: true, mfa: "trust-idp", requireMfa: false });
    await page.context().close();

    op.accounts.get("erin")!.groups = ["sm-viewers"];
    const again = await fresh();
    await oidcSignIn(again, "erin");
    expect(await roles("erin")).toEqual(["viewer"]);
    expect(await status(again, "/users")).toBe(403);
    await again.context().close();
  }, 60_000);

  test("SAML: SP-initiated sign-in through SimpleSAMLphp; a tampered assertion is refused; a removed group takes the role away", async () => {
    const tampered = await fresh();
    await samlSignIn(tampered, (xml) => xml.replace(/>sm-viewers</, ">sm-auditors<"));
    expect(new URL(tampered.url()).search).toBe("?sso_error=saml_invalid");
    expect(await tampered.locator("#sso-error").innerText()).toContain("identity provider failed");
    await tampered.screenshot({ path: `${ARTIFACTS}/sso-saml-tampered-refused.png`, fullPage: true });
    expect(await roles("sam")).toEqual([]);
    await tampered.context().close();

    const page = await fresh();
    await samlSignIn(page);
    expect(new URL(page.url()).pathname).toBe("/hosts");
    expect(await page.content()).toContain("sam");
    await page.screenshot({ path: `${ARTIFACTS}/sso-saml-signed-in.png`, fullPage: true });
    expect(await roles("sam")).toEqual(["admin", "viewer"]);
    expect(await status(page, "/users")).toBe(200);
    await page.context().close();

    idp.users.sam!.groups = ["sm-viewers"];
    idp.saveUsers();
    const again = await fresh();
    await samlSignIn(again);
    expect(await roles("sam")).toEqual(["viewer"]);
    expect(await status(again, "/users")).toBe(403);
    await again.context().close();

    const audit = await db.sql`select action, success, actor_name, user_agent, details->>'reason' as reason from audit_log where action like 'sso.%' order by id`;
    expect(audit).toContainEqual(expect.objectContaining({ action: "sso.login", success: false, reason: "saml_invalid", user_agent: "sso-e2e-chromium" }));
    expect(audit.filter((r) => r.action === "sso.login" && r.success && r.actor_name === "sam")).toHaveLength(2);
    expect(audit.filter((r) => r.action === "sso.roles.synced").length).toBeGreaterThanOrEqual(4);
  }, 60_000);
});
