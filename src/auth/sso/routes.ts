/**
 * The SSO endpoints as one named Elysia plugin. Each handler reads the request, calls one flow
 * function and turns the outcome into a redirect; failures are audited with their reason and
 * send the browser back to the login page with `sso_error=<reason>`.
 *
 *   GET  /auth/oidc/login?provider=ID     -> the provider's authorization endpoint
 *        (&reauth=/return/path: forced sign-in that re-authenticates the current session, e.g.
 *        for a dangerous operation; the same for /auth/saml/login)
 *   GET  /auth/sso/reauth?ticket=T        second, same-site half of a re-authentication
 *   GET  /auth/oidc/callback              <- code + state; starts the console session
 *   POST /auth/oidc/logout                ends the session, then RP-initiated logout at the provider
 *   GET  /auth/saml/login?provider=ID     -> the IdP's SingleSignOnService (AuthnRequest)
 *   POST /auth/saml/acs                   <- SAMLResponse + RelayState; starts the console session
 *   GET  /auth/saml/metadata              our SP metadata
 *   POST /auth/ldap/login                 username + password + provider from the login form
 *
 * The two POST forms come from anyone, before any authentication: each has a size limit of its
 * own (SAML_FORM_MAX_BYTES, LDAP_FORM_MAX_BYTES), far below the server's body limit
 * (SERVERMIND_MAX_REQUEST_BYTES, 16 MiB), checked before the body is read or parsed (413).
 */
import { Elysia } from "elysia";
import type { SsoDeps } from "./deps.ts";
import { BodyOverLimit, formOf, readBounded } from "../../http/bounded-body.ts";
import { loginFailure, type RequestInfo } from "./audit-event.ts";
import { SsoError } from "./types.ts";
import { redeemReauthTicket } from "./sign-in.ts";
import { beginOidcSignIn, finishOidcSignIn, OIDC_BINDING_COOKIE, oidcLogoutUrl, type SignInOutcome } from "./oidc/flow.ts";
import { beginSamlSignIn, finishSamlSignIn, samlMetadata } from "./saml/flow.ts";
import { LdapDirectories } from "./ldap/flow.ts";
import { beginAttempt, signInSucceeded, throttleLimits } from "../throttle.ts";
import { getUser } from "../users.ts";
import { DEFAULT_SETTINGS } from "../../settings/console-settings.ts";
import { Counter } from "../../metrics/registry.ts";

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function readCookie(request: Request, name: string): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/**
 * A SAML response posted to the ACS is at most a few hundred kB: the SAMLResponse field is
 * refused over 512 KiB (saml/service-provider.ts), and form encoding adds about 6 % to base64.
 */
export const SAML_FORM_MAX_BYTES = 768 * 1024;
/** The LDAP sign-in form: provider, username and password. */
export const LDAP_FORM_MAX_BYTES = 8 * 1024;

/** The sign-in form, read up to `max` bytes (src/http/bounded-body.ts). */
async function boundedForm(request: Request, max: number): Promise<FormData> {
  return formOf(await readBounded(request, max), request.headers.get("content-type") ?? "");
}

/** 413 for a form over its limit (the rest of a body begun is not read: the connection closes). */
function tooLarge(e: BodyOverLimit, path: string): Response {
  return new Response(`The form sent to ${path} is larger than ${e.max} bytes, the limit for this sign-in form; it was not read.`, {
    status: 413, headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...(e.declared !== undefined ? {} : { connection: "close" }) },
  });
}

function redirect(location: string, cookies: string[] = []): Response {
  const headers = new Headers({ location, "cache-control": "no-store" });
  for (const c of cookies) headers.append("set-cookie", c);
  return new Response(null, { status: 303, headers });
}

/**
 * After a provider sent the browser back (a cross-site navigation), the session cookie
 * (SameSite=Strict) is set here and the next page is loaded by this same-site page, so the
 * browser sends the cookie with it.
 */
function continuePage(location: string, cookies: string[]): Response {
  const to = escapeAttr(location);
  const headers = new Headers({
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'",
    "referrer-policy": "no-referrer",
  });
  for (const c of cookies) headers.append("set-cookie", c);
  return new Response(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${to}"><title>Signed in</title><p>Signed in. <a href="${to}">Continue</a></p>`, { status: 200, headers });
}

function outcomePage(o: SignInOutcome, extraCookies: string[]): Response {
  return o.kind === "session" ? continuePage(o.location, [o.setCookie, ...extraCookies]) : continuePage(o.location, extraCookies);
}

export interface SsoPlugin {
  plugin: Elysia<any, any, any, any, any, any, any>;
  /** Closes LDAP connection pools. */
  close(): Promise<void>;
  /** For /metrics: sso_logins_total{kind,result}. */
  metrics: Array<{ render(): string }>;
}

/** Directory sign-ins use the default throttle numbers (the console's settings are not a dependency here). */
const LDAP_LIMITS = throttleLimits(DEFAULT_SETTINGS.password);

export function createSso(deps: SsoDeps): SsoPlugin {
  const loginPath = deps.config.loginPath ?? "/login";
  // Read per request: the composition root may learn the public URL (port) only after start.
  const secure = () => (deps.config.publicUrl.startsWith("https:") ? "; Secure" : "");
  const bindingCookie = (v: string, maxAge: number) => `${OIDC_BINDING_COOKIE}=${v}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure()}`;
  const ldap = new LdapDirectories(deps);
  const logins = new Counter("sso_logins_total", "Sign-ins through an identity provider, by kind (oidc, saml, ldap) and result");
  const counted = (kind: string, ok: boolean) => logins.inc({ kind, result: ok ? "success" : "failure" });
  const publicOrigin = () => new URL(deps.config.publicUrl).origin;
  /**
   * Login/logout CSRF: browsers say where a POST comes from with Sec-Fetch-Site (and Origin,
   * which is "null" under the console's no-referrer policy). Requests that carry neither come
   * from non-browser clients, which cannot be driven cross-site; `strict` refuses them too.
   */
  const sameOrigin = (request: Request, strict: boolean) => {
    const site = request.headers.get("sec-fetch-site");
    if (site) return site === "same-origin";
    const origin = request.headers.get("origin");
    return origin ? origin === publicOrigin() : !strict;
  };

  async function failed(kind: string, e: unknown, provider: string, req: RequestInfo, who = "", cookies: string[] = []): Promise<Response> {
    counted(kind, false);
    const err = e instanceof SsoError ? e : new SsoError("internal", "Sign-in failed.", { error: String((e as Error)?.message ?? e).slice(0, 200) });
    if (!(e instanceof SsoError)) console.error(`sso sign-in failed: ${(e as Error)?.stack ?? e}`);
    const p = String(err.details.provider ?? provider);
    await deps.audit(loginFailure(p, err.reason, req, err.details, who));
    return redirect(`${loginPath}?sso_error=${encodeURIComponent(err.reason)}`, cookies);
  }

  const plugin = new Elysia({ name: "auth.sso" })
    .get("/auth/oidc/login", async ({ request, query }) => {
      const provider = String(query.provider ?? "");
      try {
        const { location, bindingValue } = await beginOidcSignIn(deps, provider, query.reauth ? { returnTo: String(query.reauth) } : undefined);
        return redirect(location, [bindingCookie(bindingValue, deps.config.requestTtlSeconds ?? 600)]);
      } catch (e) {
        return failed("oidc", e, provider, deps.requestInfo(request));
      }
    })
    .get("/auth/oidc/callback", async ({ request, query }) => {
      const req = deps.requestInfo(request);
      const clear = bindingCookie("", 0);
      try {
        const q = query as Record<string, unknown>;
        const one = (k: string) => (typeof q[k] === "string" ? (q[k] as string) : undefined);
        const done = await finishOidcSignIn(deps, { code: one("code"), state: one("state"), error: one("error"), error_description: one("error_description") }, readCookie(request, OIDC_BINDING_COOKIE), req);
        counted("oidc", true);
        return outcomePage(done, [clear]);
      } catch (e) {
        return failed("oidc", e, "", req, "", [clear]);
      }
    })
    .post("/auth/oidc/logout", async ({ request }) => {
      const req = deps.requestInfo(request);
      if (!sameOrigin(request, true)) return new Response("cross-origin sign-out refused", { status: 403 });
      const ended = await deps.endSession(request);
      if (!ended) return redirect(loginPath);
      const u = await getUser(deps.sql, ended.userId);
      await deps.audit({ actor: { type: "user", id: ended.userId, name: u?.username ?? "" }, ip: req.ip, userAgent: req.userAgent,
        category: "authentication", action: "sso.logout", target: String(u?.auth_source ?? ""), success: true });
      const source = String(u?.auth_source ?? "");
      if (source.startsWith("sso:")) {
        const url = await oidcLogoutUrl(deps, source.slice(4), `${loginPath}?signed_out=1`).catch(() => undefined);
        if (url) return redirect(url);
      }
      return redirect(`${loginPath}?signed_out=1`);
    }, { parse: "none" })
    .get("/auth/saml/login", async ({ request, query }) => {
      const provider = String(query.provider ?? "");
      try {
        return redirect(await beginSamlSignIn(deps, provider, query.reauth ? { returnTo: String(query.reauth) } : undefined));
      } catch (e) {
        return failed("saml", e, provider, deps.requestInfo(request));
      }
    })
    .post("/auth/saml/acs", async ({ request }) => {
      const req = deps.requestInfo(request);
      try {
        const form = await boundedForm(request, SAML_FORM_MAX_BYTES);
        const done = await finishSamlSignIn(deps, { SAMLResponse: String(form.get("SAMLResponse") ?? ""), RelayState: String(form.get("RelayState") ?? "") }, req);
        counted("saml", true);
        return outcomePage(done, []);
      } catch (e) {
        if (e instanceof BodyOverLimit) return tooLarge(e, "/auth/saml/acs");
        return failed("saml", e, "", req);
      }
    }, { parse: "none" })
    .get("/auth/sso/reauth", async ({ request, query }) => {
      const req = deps.requestInfo(request);
      try {
        return redirect(await redeemReauthTicket(deps, request, String(query.ticket ?? ""), req));
      } catch (e) {
        return failed("reauth", e, "", req);
      }
    })
    .get("/auth/saml/metadata", async ({ query }) =>
      new Response(await samlMetadata(deps, query.provider ? String(query.provider) : undefined), {
        headers: { "content-type": "application/samlmetadata+xml; charset=utf-8" },
      }))
    .post("/auth/ldap/login", async ({ request }) => {
      const req = deps.requestInfo(request);
      // Login CSRF: a browser posting this form from another origin is refused.
      if (!sameOrigin(request, false)) return new Response("cross-origin sign-in refused", { status: 403 });
      let provider = "";
      let username = "";
      try {
        const form = await boundedForm(request, LDAP_FORM_MAX_BYTES);
        provider = String(form.get("provider") ?? "");
        username = String(form.get("username") ?? "").trim();
        // the console's sign-in throttle (src/auth/throttle.ts), charged before the directory is asked
        const attempt = await beginAttempt(deps.sql, LDAP_LIMITS, { username, ip: req.ip, factor: "password" });
        if (!attempt.ok) throw new SsoError("throttled", "Too many sign-in attempts.", { provider, retry_after_s: attempt.retryAfterS });
        const done = await ldap.signIn(provider, username, String(form.get("password") ?? ""), req);
        await signInSucceeded(deps.sql, LDAP_LIMITS, attempt.ticket);
        counted("ldap", true);
        return redirect(done.location, [done.setCookie]);
      } catch (e) {
        if (e instanceof BodyOverLimit) return tooLarge(e, "/auth/ldap/login");
        return failed("ldap", e, provider, req, username.slice(0, 64));
      }
    }, { parse: "none" });

  return { plugin, close: () => ldap.close(), metrics: [logins] };
}

/** The plugin alone, for composition roots that do not use LDAP pools (or close them elsewhere). */
export function ssoPlugin(deps: SsoDeps) {
  return createSso(deps).plugin;
}
