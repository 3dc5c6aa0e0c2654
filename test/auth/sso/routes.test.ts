import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { requireComponent } from "../../support/ci.ts";
import { startTestOp, signInAtOp, type TestOp } from "../../support/oidc-provider.ts";
import { BASE, slapdAvailable, startSlapd, USERS, type TestSlapd } from "../../support/slapd.ts";
import { auditRows, setCookieValue, ssoHarness, type SsoHarness } from "../../support/sso-app.ts";
import { saveProvider, setGroupMappings } from "../../../src/auth/sso/providers.ts";
import { OIDC_BINDING_COOKIE } from "../../../src/auth/sso/oidc/flow.ts";
import { SESSION_COOKIE } from "../../../src/auth/session.ts";
import { saveSsoPolicy } from "../../../src/auth/sso/policy.ts";

const PUBLIC = "http://console.test";
const CALLBACK = `${PUBLIC}/auth/oidc/callback`;
const ldapAvailable = requireComponent(slapdAvailable(), "OpenLDAP slapd (apt: slapd ldap-utils)");
let h: SsoHarness;
let op: TestOp;
let slapd: TestSlapd | undefined;

beforeAll(async () => {
  h = await ssoHarness({ publicUrl: PUBLIC });
  op = await startTestOp([{ client_id: "servermind", client_secret: "route-secret-route-secret-route-secret", redirect_uris: [CALLBACK], post_logout_redirect_uris: [`${PUBLIC}/login?signed_out=1`] }]);
  op.accounts.set("dana", { preferred_username: "dana", email: "dana@example.test", name: "Dana", groups: ["ops"] });
  const sql = h.console.db.sql;
  await saveProvider(sql, h.console.services.secrets, { id: "corp", kind: "oidc", name: "Corp OIDC", enabled: true, config: {
    issuer: op.issuer, clientId: "servermind", clientSecret: "route-secret-route-secret-route-secret", allowHttpLoopback: true, scopes: ["openid", "profile", "email", "groups"],
  } });
  await setGroupMappings(sql, "corp", [{ group: "ops", role: "operator" }]);
  if (ldapAvailable) {
    slapd = await startSlapd();
    await saveProvider(sql, h.console.services.secrets, { id: "dir", kind: "ldap", name: "Directory", enabled: true, config: {
      url: slapd.ldapsUrl, caPem: slapd.caPem, bindDn: slapd.serviceDn, bindPassword: slapd.servicePassword,
      userBase: `ou=people,${BASE}`, userFilter: "(&(objectClass=inetOrgPerson)(uid={username}))",
      groupBase: `ou=groups,${BASE}`, groupFilter: "(objectClass=groupOfNames)", nested: "recursive",
    } });
    await setGroupMappings(sql, "dir", [{ group: "platform", role: "operator" }, { group: "dba", role: "auditor" }]);
  }
}, 30_000);
afterAll(async () => {
  await slapd?.stop();
  await op?.stop();
  await h?.close();
}, 30_000);

const get = (path: string, cookie = "") => h.handle(new Request(`${PUBLIC}${path}`, { headers: { cookie, "user-agent": "routes-test" } }));

async function oidcSignIn(login = "dana") {
  const start = await get("/auth/oidc/login?provider=corp");
  expect(start.status).toBe(303);
  const binding = setCookieValue(start, OIDC_BINDING_COOKIE)!;
  const back = await signInAtOp(start.headers.get("location")!, login, CALLBACK);
  return { back: new URL(back), binding };
}

const consolePage = (token: string) => h.console.app.handle(new Request(`${PUBLIC}/hosts`, { headers: { cookie: `${SESSION_COOKIE}=${token}` } }));

describe("ssoPlugin: OIDC", () => {
  test("login -> provider -> callback starts a console session for the provisioned user", async () => {
    const { back, binding } = await oidcSignIn();
    const res = await get(back.pathname + back.search, `${OIDC_BINDING_COOKIE}=${binding}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'");
    const token = setCookieValue(res, SESSION_COOKIE)!;
    expect((await consolePage(token)).status).toBe(200);
    expect(await auditRows(h, "sso.login")).toContainEqual(expect.objectContaining({ success: true, actor_name: "dana", target: "provider:corp", user_agent: "routes-test" }));
  });

  test("a callback without the browser binding, or a reused state, is refused and audited", async () => {
    const { back, binding } = await oidcSignIn();
    const noCookie = await get(back.pathname + back.search);
    expect(noCookie.headers.get("location")).toBe("/login?sso_error=state_not_bound");
    // the state was consumed by that attempt
    const reused = await get(back.pathname + back.search, `${OIDC_BINDING_COOKIE}=${binding}`);
    expect(reused.headers.get("location")).toBe("/login?sso_error=unknown_state");
    const fails = (await auditRows(h, "sso.login")).filter((r) => !r.success).map((r) => r.details.reason);
    expect(fails).toEqual(expect.arrayContaining(["state_not_bound", "unknown_state"]));
  });

  test("an unknown provider and a provider error are refused", async () => {
    expect((await get("/auth/oidc/login?provider=nope")).headers.get("location")).toBe("/login?sso_error=unknown_provider");
    const start = await get("/auth/oidc/login?provider=corp");
    const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
    const denied = await get(`/auth/oidc/callback?error=access_denied&state=${state}`, `${OIDC_BINDING_COOKIE}=${setCookieValue(start, OIDC_BINDING_COOKIE)}`);
    expect(denied.headers.get("location")).toBe("/login?sso_error=idp_error");
  });

  test("require-local MFA sends an SSO user without TOTP to enrollment", async () => {
    await saveSsoPolicy(h.console.db.sql, { enforced: false, mfa: "require-local", requireMfa: false });
    try {
      const { back, binding } = await oidcSignIn();
      const res = await get(back.pathname + back.search, `${OIDC_BINDING_COOKIE}=${binding}`);
      expect(await res.text()).toContain("url=/account/mfa");
    } finally {
      await saveSsoPolicy(h.console.db.sql, { enforced: false, mfa: "trust-idp", requireMfa: false });
    }
  });

  test("re-authentication: a forced sign-in at the provider marks the current session for dangerous operations", async () => {
    const { back, binding } = await oidcSignIn();
    const token = setCookieValue(await get(back.pathname + back.search, `${OIDC_BINDING_COOKIE}=${binding}`), SESSION_COOKIE)!;
    const start = await get("/auth/oidc/login?provider=corp&reauth=/settings");
    const authUrl = new URL(start.headers.get("location")!);
    expect(authUrl.searchParams.get("prompt")).toBe("login");
    expect(authUrl.searchParams.get("max_age")).toBe("0");
    const cb = new URL(await signInAtOp(authUrl.toString(), "dana", CALLBACK));
    const page = await get(cb.pathname + cb.search, `${OIDC_BINDING_COOKIE}=${setCookieValue(start, OIDC_BINDING_COOKIE)}`);
    expect(page.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
    const ticketPath = /url=([^"]+)"/.exec(await page.text())![1]!;
    expect(ticketPath).toStartWith("/auth/sso/reauth?ticket=");
    // the ticket is redeemed only by the same user's session
    const other = await h.console.userWithRole("viewer", "someone-else");
    const wrong = await get(ticketPath, `${SESSION_COOKIE}=${other.token}`);
    expect(wrong.headers.get("location")).toBe("/login?sso_error=session_mismatch");
    // a fresh ticket for the right session
    const start2 = await get("/auth/oidc/login?provider=corp&reauth=/settings");
    const cb2 = new URL(await signInAtOp(start2.headers.get("location")!, "dana", CALLBACK));
    const page2 = await get(cb2.pathname + cb2.search, `${OIDC_BINDING_COOKIE}=${setCookieValue(start2, OIDC_BINDING_COOKIE)}`);
    const ticket2 = /url=([^"]+)"/.exec(await page2.text())![1]!;
    const ok = await get(ticket2, `${SESSION_COOKIE}=${token}`);
    expect(ok.headers.get("location")).toBe("/settings");
    const [sess] = await h.console.db.sql`select reauth_at from console_sessions where token_hash = sha256(${token}::bytea)`;
    expect(Date.now() - new Date(sess!.reauth_at).getTime()).toBeLessThan(10_000);
    expect((await get(ticket2, `${SESSION_COOKIE}=${token}`)).headers.get("location")).toBe("/login?sso_error=unknown_ticket");
    expect((await auditRows(h, "sso.reauth")).map((r) => r.success)).toEqual([false, true]);
  });

  test("logout ends the console session and continues to the provider's end_session_endpoint", async () => {
    const { back, binding } = await oidcSignIn();
    const token = setCookieValue(await get(back.pathname + back.search, `${OIDC_BINDING_COOKIE}=${binding}`), SESSION_COOKIE)!;
    const post = (origin: string) => h.handle(new Request(`${PUBLIC}/auth/oidc/logout`, { method: "POST", headers: { cookie: `${SESSION_COOKIE}=${token}`, origin } }));
    expect((await post("http://evil.test")).status).toBe(403);
    const res = await post(PUBLIC);
    expect(res.status).toBe(303);
    const to = new URL(res.headers.get("location")!);
    expect(to.origin).toBe(op.issuer);
    expect(to.searchParams.get("post_logout_redirect_uri")).toBe(`${PUBLIC}/login?signed_out=1`);
    expect((await consolePage(token)).status).not.toBe(200);
    expect((await fetch(to, { redirect: "manual" })).status).toBeLessThan(500);
  });
});

describe.skipIf(!ldapAvailable)("ssoPlugin: LDAP from the login form", () => {
  const post = (form: Record<string, string>, origin = PUBLIC) => h.handle(new Request(`${PUBLIC}/auth/ldap/login`, {
    method: "POST", body: new URLSearchParams(form), headers: { "content-type": "application/x-www-form-urlencoded", origin, "user-agent": "routes-test" },
  }));

  test("a directory user signs in with nested-group roles", async () => {
    const res = await post({ provider: "dir", username: "alice", password: USERS.alice });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/hosts");
    expect((await consolePage(setCookieValue(res, SESSION_COOKIE)!)).status).toBe(200);
    const roles = await h.console.db.sql`select r.name from user_roles ur join console_roles r on r.id = ur.role_id join console_users u on u.id = ur.user_id where u.username = 'alice'`;
    expect(roles.map((r) => r.name)).toEqual(["operator"]);
  });

  test("a wrong password is refused and audited with the username, never the password", async () => {
    const res = await post({ provider: "dir", username: "bob", password: "not-bobs" });
    expect(res.headers.get("location")).toBe("/login?sso_error=bad_credentials");
    const row = (await auditRows(h, "sso.login")).at(-1)!;
    expect(row).toMatchObject({ success: false, actor_name: "bob", target: "provider:dir", details: { reason: "bad_credentials" } });
    expect(JSON.stringify(await auditRows(h))).not.toContain("not-bobs");
  });

  test("sign-ins are counted for /metrics", () => {
    const text = h.sso.metrics.map((m) => m.render()).join("");
    expect(text).toContain('sso_logins_total{kind="ldap",result="success"} 1');
    expect(text).toContain('sso_logins_total{kind="ldap",result="failure"} 1');
    expect(text).toMatch(/sso_logins_total\{kind="oidc",result="success"\} [1-9]/);
  });

  test("a cross-origin form post is refused", async () => {
    expect((await post({ provider: "dir", username: "alice", password: USERS.alice }, "http://evil.test")).status).toBe(403);
    expect((await post({ provider: "dir", username: "alice", password: USERS.alice }, "null")).status).toBe(403);
    const viaFetchMetadata = await h.handle(new Request(`${PUBLIC}/auth/ldap/login`, {
      method: "POST", body: new URLSearchParams({ provider: "dir", username: "alice", password: USERS.alice }),
      headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "cross-site" },
    }));
    expect(viaFetchMetadata.status).toBe(403);
  });
});

describe("ssoPlugin: LDAP sign-in throttle", () => {
  test("directory sign-ins count in the console's sign-in throttle, and are refused before the directory is asked", async () => {
    const post = () => h.handle(new Request(`${PUBLIC}/auth/ldap/login`, {
      method: "POST", body: new URLSearchParams({ provider: "no-such-dir", username: "ldap-guess", password: "guess" }),
      headers: { "content-type": "application/x-www-form-urlencoded", origin: PUBLIC, "user-agent": "routes-test" },
    }));
    const reasons: string[] = [];
    for (let i = 0; i < 6; i++) reasons.push(new URL((await post()).headers.get("location")!, PUBLIC).searchParams.get("sso_error")!);
    expect(reasons.slice(0, 5).every((r) => r !== "throttled")).toBe(true);
    expect(reasons[5]).toBe("throttled");
    const row = (await auditRows(h, "sso.login")).at(-1)!;
    expect(row).toMatchObject({ success: false, actor_name: "ldap-guess", details: { reason: "throttled" } });
  });
});
