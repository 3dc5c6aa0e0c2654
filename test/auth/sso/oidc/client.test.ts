import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestOp, signInAtOp, type TestOp } from "../../../support/oidc-provider.ts";
import { authorizationUrl, exchangeCode, identityFromClaims, endSessionUrl } from "../../../../src/auth/sso/oidc/client.ts";
import { discover } from "../../../../src/auth/sso/oidc/discovery.ts";
import { verifyIdToken } from "../../../../src/auth/sso/oidc/id-token.ts";
import type { OidcSettings } from "../../../../src/auth/sso/oidc/settings.ts";

const REDIRECT = "http://127.0.0.1:1/auth/oidc/callback";
let op: TestOp;
let settings: OidcSettings;

beforeAll(async () => {
  op = await startTestOp([
    { client_id: "servermind", client_secret: "s3cret-s3cret-s3cret-s3cret-s3cret", redirect_uris: [REDIRECT], post_logout_redirect_uris: ["http://127.0.0.1:1/login"] },
    { client_id: "other-app", client_secret: "0ther-0ther-0ther-0ther-0ther-0ther", redirect_uris: [REDIRECT] },
  ]);
  op.accounts.set("alice", { preferred_username: "alice", email: "alice@example.test", name: "Alice A", groups: ["ops", "dba"] });
  settings = { issuer: op.issuer, clientId: "servermind", clientSecret: "s3cret-s3cret-s3cret-s3cret-s3cret", allowHttpLoopback: true, scopes: ["openid", "profile", "email", "groups"] };
});
afterAll(() => op.stop());

async function signIn(s: OidcSettings) {
  const { url, pending } = await authorizationUrl(s, REDIRECT);
  const back = new URL(await signInAtOp(url, "alice", REDIRECT));
  expect(back.searchParams.get("state")).toBe(pending.state);
  return { code: back.searchParams.get("code")!, pending };
}

describe("OIDC relying party against oidc-provider", () => {
  test("discovery is read and http is refused unless loopback is allowed", async () => {
    const d = await discover(settings);
    expect(d.issuer).toBe(op.issuer);
    await expect(discover({ ...settings, allowHttpLoopback: false, issuer: `${op.issuer}/` })).rejects.toThrow(/https/);
  });

  test("authorization request carries PKCE S256, state and nonce", async () => {
    const { url, pending } = await authorizationUrl(settings, REDIRECT);
    const u = new URL(url);
    expect(u.searchParams.get("code_challenge_method")).toBe("S256");
    expect(u.searchParams.get("code_challenge")).toBe(new Bun.CryptoHasher("sha256").update(pending.verifier).digest("base64url"));
    expect(u.searchParams.get("nonce")).toBe(pending.nonce);
  });

  test("code flow: ID token validated, groups and profile mapped (userinfo fills what the ID token lacks)", async () => {
    const { code, pending } = await signIn(settings);
    const r = await exchangeCode(settings, REDIRECT, code, pending);
    expect(r.claims.sub).toBe("alice");
    const ident = identityFromClaims("corp", settings, r.claims);
    expect(ident).toMatchObject({ provider: "corp", subject: "alice", username: "alice", email: "alice@example.test", displayName: "Alice A", groups: ["ops", "dba"], idpMfa: false });
    // the code is single-use at the provider
    await expect(exchangeCode(settings, REDIRECT, code, pending)).rejects.toThrow(/refused the sign-in code/);
  });

  test("a wrong PKCE verifier is refused by the provider", async () => {
    const { code, pending } = await signIn(settings);
    await expect(exchangeCode(settings, REDIRECT, code, { ...pending, verifier: "x".repeat(43) })).rejects.toThrow(/refused the sign-in code/);
  });

  test("a tampered, expired, wrong-audience or wrong-nonce ID token is refused", async () => {
    const { code, pending } = await signIn(settings);
    // obtain a genuine ID token from the provider's token endpoint
    const d = await discover(settings);
    const res = await fetch(d.token_endpoint, {
      method: "POST",
      headers: { authorization: `Basic ${btoa(`servermind:${settings.clientSecret}`)}`, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: REDIRECT, code_verifier: pending.verifier }),
    });
    const { id_token } = (await res.json()) as { id_token: string };
    expect(await verifyIdToken(settings, d, id_token, { nonce: pending.nonce })).toMatchObject({ sub: "alice" });

    const [h, p, sig] = id_token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: "admin" })).toString("base64url")}.${sig}`;
    const flipped = `${h}.${p}.${sig.slice(0, -4)}${sig.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`;
    const refused = (t: string, o: Parameters<typeof verifyIdToken>[3], s = settings) =>
      verifyIdToken(s, d, t, o).then(() => "accepted", (e) => (e as { details: { code: string } }).details.code);
    expect(await refused(forged, { nonce: pending.nonce })).toBe("ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
    expect(await refused(flipped, { nonce: pending.nonce })).toBe("ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
    expect(await refused(id_token, { nonce: pending.nonce, now: new Date(Date.now() + 2 * 3600_000) })).toBe("ERR_JWT_EXPIRED");
    expect(await refused(id_token, { nonce: pending.nonce }, { ...settings, clientId: "other-app" })).toBe("ERR_JWT_CLAIM_VALIDATION_FAILED");
    expect(await refused(id_token, { nonce: "another-sign-in" })).toBe("nonce");
  });

  test("an ID token issued to another client is refused", async () => {
    const other: OidcSettings = { ...settings, clientId: "other-app", clientSecret: "0ther-0ther-0ther-0ther-0ther-0ther" };
    const { code, pending } = await signIn(other);
    const r = await exchangeCode(other, REDIRECT, code, pending);
    const d = await discover(settings);
    await expect(verifyIdToken(settings, d, r.idToken, { nonce: pending.nonce })).rejects.toThrow(/ID token was refused/);
  });

  test("RP-initiated logout URL points at the provider's end_session_endpoint", async () => {
    const url = new URL((await endSessionUrl(settings, "http://127.0.0.1:1/login", "st"))!);
    expect(url.origin + url.pathname).toBe((await discover(settings)).end_session_endpoint!);
    expect(url.searchParams.get("client_id")).toBe("servermind");
    const page = await fetch(url, { redirect: "manual" });
    expect(page.status).toBeLessThan(500);
  });

  test("over TLS: the provider's certificate must chain to the configured CA", async () => {
    const tlsOp = await startTestOp([{ client_id: "servermind", client_secret: settings.clientSecret!, redirect_uris: [REDIRECT] }], { tls: true });
    try {
      tlsOp.accounts.set("alice", { preferred_username: "alice", groups: ["ops"] });
      const s: OidcSettings = { issuer: tlsOp.issuer, clientId: "servermind", clientSecret: settings.clientSecret, scopes: ["openid", "profile", "groups"] };
      await expect(discover(s)).rejects.toMatchObject({ reason: "provider_unreachable" });
      const trusted = { ...s, caPem: tlsOp.caPem };
      const { url, pending } = await authorizationUrl(trusted, REDIRECT);
      const back = new URL(await signInAtOp(url, "alice", REDIRECT, undefined, tlsOp.caPem));
      const r = await exchangeCode(trusted, REDIRECT, back.searchParams.get("code")!, pending);
      expect(identityFromClaims("tls", trusted, r.claims)).toMatchObject({ subject: "alice", groups: ["ops"] });
    } finally {
      await tlsOp.stop();
    }
  });

  test("amr and acr map to idpMfa", () => {
    expect(identityFromClaims("p", settings, { sub: "x", amr: ["pwd", "otp"] }).idpMfa).toBe(true);
    expect(identityFromClaims("p", settings, { sub: "x", amr: ["pwd"] }).idpMfa).toBe(false);
    expect(identityFromClaims("p", { ...settings, mfaAcr: ["urn:mfa"] }, { sub: "x", acr: "urn:mfa" }).idpMfa).toBe(true);
    expect(identityFromClaims("p", { ...settings, groupsClaim: "roles" }, { sub: "x", roles: "a b,c" }).groups).toEqual(["a", "b", "c"]);
  });
});
