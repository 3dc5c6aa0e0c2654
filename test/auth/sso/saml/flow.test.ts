import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { requireComponent } from "../../../support/ci.ts";
import { signInAtSsp, simpleSamlPhpAvailable, startSimpleSamlPhp, type TestIdp } from "../../../support/simplesamlphp.ts";
import { auditRows, setCookieValue, ssoHarness, type SsoHarness } from "../../../support/sso-app.ts";
import { importIdpMetadata } from "../../../../src/auth/sso/saml/metadata.ts";
import { authnRequestUrl, consumeResponse, spEndpoints } from "../../../../src/auth/sso/saml/service-provider.ts";
import { firstUseOfAssertion } from "../../../../src/auth/sso/saml/replay.ts";
import { saveProvider, setGroupMappings } from "../../../../src/auth/sso/providers.ts";
import type { SamlSettings } from "../../../../src/auth/sso/saml/settings.ts";
import { SESSION_COOKIE } from "../../../../src/auth/session.ts";

const available = requireComponent(simpleSamlPhpAvailable(), "SimpleSAMLphp with php-cli (apt: simplesamlphp php-cli php-xml php-mbstring php-curl)");
const SP = spEndpoints("http://console.test");
const SP2 = spEndpoints("http://console2.test");
const SP3 = spEndpoints("http://console3.test");
const SP4 = spEndpoints("http://console4.test");
let h: SsoHarness;
let idp: TestIdp;
let settings: SamlSettings;

beforeAll(async () => {
  if (!available) return;
  h = await ssoHarness({ publicUrl: "http://console.test" });
  idp = await startSimpleSamlPhp([SP, { ...SP2, signResponse: false }, { ...SP3, signResponse: true, signAssertion: false }, { ...SP4, nameIdFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient" }], {
    alice: { password: "alice-pw", uid: "alice", mail: "alice@example.test", displayName: "Alice SAML", groups: ["ops", "auditors"] },
  });
  const meta = importIdpMetadata(await (await fetch(idp.metadataUrl)).text());
  settings = { ...meta, usernameAttribute: "uid", emailAttribute: "mail", nameAttribute: "displayName", groupsAttribute: "groups" };
  await saveProvider(h.console.db.sql, h.console.services.secrets, { id: "ssp", kind: "saml", name: "SimpleSAMLphp", enabled: true, config: settings });
  await setGroupMappings(h.console.db.sql, "ssp", [{ group: "ops", role: "operator" }, { group: "auditors", role: "auditor" }]);
}, 30_000);
afterAll(async () => {
  await idp?.stop();
  await h?.close();
}, 30_000);

const acs = (fields: Record<string, string>) => h.handle(new Request(SP.acsUrl, {
  method: "POST", body: new URLSearchParams(fields), headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "saml-flow-test" },
}));

async function startLogin(): Promise<string> {
  const res = await h.handle(new Request("http://console.test/auth/saml/login?provider=ssp"));
  expect(res.status).toBe(303);
  return res.headers.get("location")!;
}

async function rolesOf(username: string): Promise<string[]> {
  return (await h.console.db.sql`select r.name from user_roles ur join console_roles r on r.id = ur.role_id join console_users u on u.id = ur.user_id
    where u.username = ${username} order by r.name`).map((r) => r.name as string);
}

describe.skipIf(!available)("SAML SP against SimpleSAMLphp", () => {
  test("IdP metadata import and SP metadata endpoint", async () => {
    expect(settings.idpEntityId).toBe(idp.entityId);
    expect(settings.idpSsoUrl).toBe(`${idp.baseUrl}/saml2/idp/SSOService.php`);
    expect(settings.idpCerts[0]).toBe(idp.certPem.replace(/-----[^-]+-----|\s/g, ""));
    const res = await h.handle(new Request("http://console.test/auth/saml/metadata"));
    const xml = await res.text();
    expect(res.headers.get("content-type")).toContain("samlmetadata+xml");
    expect(xml).toContain(`entityID="${SP.entityId}"`);
    expect(xml).toContain(`Location="${SP.acsUrl}"`);
  });

  test("SP-initiated sign-in: signed response + assertion accepted, user provisioned with mapped roles, console session works", async () => {
    const url = new URL(await startLogin());
    expect(url.origin + url.pathname).toBe(settings.idpSsoUrl);
    expect(url.searchParams.get("SAMLRequest")).toBeTruthy();
    const form = await signInAtSsp(url.toString(), "alice", "alice-pw");
    expect(form.action).toBe(SP.acsUrl);
    const res = await acs(form.fields);
    expect(res.status).toBe(200);
    const token = setCookieValue(res, SESSION_COOKIE)!;
    expect(token).toBeTruthy();
    expect(await res.text()).toContain('url=/hosts');
    expect(await rolesOf("alice")).toEqual(["auditor", "operator"]);
    const page = await h.console.app.handle(new Request("http://console.test/hosts", { headers: { cookie: `${SESSION_COOKIE}=${token}` } }));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("alice");
    const login = (await auditRows(h, "sso.login")).at(-1)!;
    expect(login).toMatchObject({ category: "authentication", success: true, actor_name: "alice", target: "provider:ssp", user_agent: "saml-flow-test" });
    expect((await auditRows(h, "sso.user.provisioned")).length).toBe(1);

    // replaying the same POST: its RelayState and InResponseTo are spent
    const again = await acs(form.fields);
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe("/login?sso_error=unknown_relay_state");
    // the same response under a fresh RelayState: InResponseTo no longer matches a pending request
    const fresh = new URL(await startLogin()).searchParams.get("RelayState")!;
    const replay = await acs({ ...form.fields, RelayState: fresh });
    expect(replay.headers.get("location")).toBe("/login?sso_error=saml_invalid");
  });

  test("a tampered assertion is refused and audited", async () => {
    const form = await signInAtSsp(await startLogin(), "alice", "alice-pw");
    const xml = Buffer.from(form.fields.SAMLResponse!, "base64").toString("utf8");
    const tampered = xml.replace(/>ops</, ">admins<");
    expect(tampered).not.toBe(xml);
    const res = await acs({ ...form.fields, SAMLResponse: Buffer.from(tampered).toString("base64") });
    expect(res.headers.get("location")).toBe("/login?sso_error=saml_invalid");
    const fail = (await auditRows(h, "sso.login")).at(-1)!;
    expect(fail).toMatchObject({ success: false, target: "provider:ssp", details: { reason: "saml_invalid" } });
    expect(String(fail.details.error)).toMatch(/signature/i);
  });

  test("a group removed at the IdP takes the role away at the next sign-in", async () => {
    idp.users.alice!.groups = ["auditors"];
    idp.saveUsers();
    const res = await acs((await signInAtSsp(await startLogin(), "alice", "alice-pw")).fields);
    expect(res.status).toBe(200);
    expect(await rolesOf("alice")).toEqual(["auditor"]);
    expect((await auditRows(h, "sso.roles.synced")).at(-1)!.details).toMatchObject({ removed: ["operator"] });
  });

  test("unsigned Response (assertion signed) is refused unless only assertion signatures are required; wrong audience refused", async () => {
    const sql = h.console.db.sql;
    const viaSp2 = async () => (await signInAtSsp(await authnRequestUrl(sql, "ssp", settings, SP2, "rs"), "alice", "alice-pw")).fields.SAMLResponse!;
    await expect(consumeResponse(sql, "ssp", settings, SP2, await viaSp2())).rejects.toMatchObject({ reason: "saml_invalid" });
    const ok = await consumeResponse(sql, "ssp", { ...settings, wantResponseSigned: false }, SP2, await viaSp2());
    expect(ok).toMatchObject({ provider: "ssp", subject: "alice", username: "alice", email: "alice@example.test", groups: ["auditors"] });
    // a response addressed to SP2 presented to SP (audience and destination differ)
    await expect(consumeResponse(sql, "ssp", { ...settings, wantResponseSigned: false }, SP, await viaSp2())).rejects.toMatchObject({ reason: "saml_invalid" });
  });

  test("a signed Response around an unsigned assertion is refused (assertions must be signed)", async () => {
    const sql = h.console.db.sql;
    const resp = (await signInAtSsp(await authnRequestUrl(sql, "ssp", settings, SP3, "rs"), "alice", "alice-pw")).fields.SAMLResponse!;
    const xml = Buffer.from(resp, "base64").toString("utf8");
    expect(xml).toContain("<ds:Signature");
    expect(xml.match(/<ds:Signature[ >]/g)).toHaveLength(1);
    expect(xml.indexOf("<ds:Signature")).toBeLessThan(xml.indexOf("<saml:Assertion"));
    const e = await consumeResponse(sql, "ssp", settings, SP3, resp).catch((x) => x);
    // the Response signature verified (else "Invalid document signature"); the assertion's is missing
    expect(e).toMatchObject({ reason: "saml_invalid", details: { error: "Invalid signature" } });
  });

  test("a transient NameID is no subject unless a subject attribute is configured", async () => {
    const sql = h.console.db.sql;
    const viaSp4 = async () => (await signInAtSsp(await authnRequestUrl(sql, "ssp", settings, SP4, "rs"), "alice", "alice-pw")).fields.SAMLResponse!;
    await expect(consumeResponse(sql, "ssp", settings, SP4, await viaSp4())).rejects.toMatchObject({ reason: "saml_no_subject" });
    expect(await consumeResponse(sql, "ssp", { ...settings, subjectAttribute: "uid" }, SP4, await viaSp4())).toMatchObject({ subject: "alice", username: "alice" });
  });

  test("an assertion older than the accepted age is refused", async () => {
    const sql = h.console.db.sql;
    const strict = { ...settings, maxAssertionAgeSeconds: 1, clockSkewSeconds: 0 };
    const resp = (await signInAtSsp(await authnRequestUrl(sql, "ssp", strict, SP, "rs"), "alice", "alice-pw")).fields.SAMLResponse!;
    await Bun.sleep(1600);
    await expect(consumeResponse(sql, "ssp", strict, SP, resp)).rejects.toMatchObject({ reason: "saml_invalid", details: { error: expect.stringMatching(/expired|NotOnOrAfter|subject confirmation/i) } });
  });

  test("re-authentication with ForceAuthn marks the signed-in session", async () => {
    const first = await acs((await signInAtSsp(await startLogin(), "alice", "alice-pw")).fields);
    const token = setCookieValue(first, SESSION_COOKIE)!;
    const start = await h.handle(new Request("http://console.test/auth/saml/login?provider=ssp&reauth=/users"));
    const req = new URL(start.headers.get("location")!).searchParams.get("SAMLRequest")!;
    const xml = Buffer.from(Bun.inflateSync(Buffer.from(req, "base64"))).toString("utf8");
    expect(xml).toContain('ForceAuthn="true"');
    const page = await acs((await signInAtSsp(start.headers.get("location")!, "alice", "alice-pw")).fields);
    const ticket = /url=([^"]+)"/.exec(await page.text())![1]!;
    const done = await h.handle(new Request(`http://console.test${ticket}`, { headers: { cookie: `${SESSION_COOKIE}=${token}` } }));
    expect(done.headers.get("location")).toBe("/users");
  });

  test("the assertion replay cache refuses a second use of an assertion ID", async () => {
    const sql = h.console.db.sql;
    const exp = new Date(Date.now() + 60_000);
    expect(await firstUseOfAssertion(sql, "ssp", "_abc", exp)).toBe(true);
    expect(await firstUseOfAssertion(sql, "ssp", "_abc", exp)).toBe(false);
    expect(await firstUseOfAssertion(sql, "other", "_abc", exp)).toBe(true);
  });
});
