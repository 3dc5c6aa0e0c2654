/**
 * The one path every console request takes: build a ConsoleRequest, load the session, check the
 * session stage, the route's permission, the CSRF token on state-changing requests; resolve the
 * principal's host scope for the route's permission and, on routes that name one host (or one
 * violation) in the path, find it within that scope (404 otherwise, exactly as for a host that
 * does not exist); for dangerous routes, the typed confirmation and a fresh re-authentication.
 * Then the handler runs.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { loadSession, markReauth, revokeSession, SESSION_COOKIE } from "../auth/session.ts";
import { checkSecondFactor, getUser } from "../auth/users.ts";
import { beginAttempt, signInSucceeded, throttleLimits } from "../auth/throttle.ts";
import { userGrants } from "../auth/roles.ts";
import { verifyPassword } from "../auth/password.ts";
import { scopeFor, type ConsoleRequest, type ConsoleRoute } from "./route.ts";
import { HostScope } from "../auth/host-scope.ts";
import { findHost } from "../store/postgres/queries-console.ts";
import { findViolation } from "../security/posture.ts";
import type { ConsoleServices } from "./deps.ts";
import { html, redirect, securityHeaders, type Pages } from "./respond.ts";
import { auditRequest } from "./audit-request.ts";
import { clientIp } from "../http/client-ip.ts";
import { BodyOverLimit, formOf, readBounded } from "../http/bounded-body.ts";
import { bearerPrincipal, type BearerPrincipal } from "./bearer.ts";

export const PRE_CSRF_COOKIE = "sm_csrf";
export const REAUTH_WINDOW_MS = 5 * 60_000;
/** Set (through hx-headers) by elements that poll for themselves: not user activity. */
export const POLL_HEADER = "x-console-poll";
const MAX_FORM_BYTES = 1 << 20;

export function parseCookies(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

export function cookie(name: string, value: string, maxAgeS?: number): string {
  return `${name}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict${maxAgeS === undefined ? "" : `; Max-Age=${maxAgeS}`}`;
}

function sameToken(a: string, b: string): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

interface FormProblem {
  problem: string;
  status: number;
}

async function readForm(request: Request): Promise<URLSearchParams | FormProblem> {
  if (request.method === "GET" || request.method === "HEAD") return new URLSearchParams();
  // no more than the limit is read, with or without a content-length (a chunked body is cut there)
  let bytes: Buffer<ArrayBuffer>;
  try {
    bytes = await readBounded(request, MAX_FORM_BYTES);
  } catch (e) {
    if (!(e instanceof BodyOverLimit)) throw e;
    return { problem: e.declared !== undefined ? `The form is ${e.declared} bytes; the limit is ${MAX_FORM_BYTES}.` : `The form is over ${MAX_FORM_BYTES} bytes; the limit is ${MAX_FORM_BYTES}.`, status: 413 };
  }
  const type = request.headers.get("content-type") ?? "";
  if (type.startsWith("application/json")) return jsonForm(bytes.toString("utf8"));
  if (type.startsWith("multipart/form-data")) {
    let fd: FormData;
    try {
      fd = await formOf(bytes, type);
    } catch {
      // Bun's parser throws on a malformed body (no boundary, no final boundary): the client's fault
      return { problem: "The body is not valid multipart/form-data.", status: 400 };
    }
    const p = new URLSearchParams();
    for (const [k, v] of fd) {
      if (typeof v === "string") p.append(k, v);
      else p.append(`${k}.base64`, Buffer.from(await v.arrayBuffer()).toString("base64")), p.append(`${k}.name`, v.name); // file parts (uploads), binary-safe
    }
    return withoutNul(p);
  }
  return withoutNul(new URLSearchParams(bytes.toString("utf8")));
}

/**
 * API clients may post a JSON object instead of a form: its fields become form fields (a list
 * repeats the field, true/false become "true"/"false"), so handlers read one shape.
 */
function jsonForm(text: string): URLSearchParams | FormProblem {
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    return { problem: "The body is not valid JSON.", status: 400 };
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) return { problem: "The body must be a JSON object.", status: 400 };
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    for (const x of Array.isArray(v) ? v : [v]) if (x !== null && typeof x !== "object") p.append(k, String(x));
  }
  return withoutNul(p);
}

/** PostgreSQL text cannot hold NUL: a form carrying one is refused with the field's name. */
function withoutNul(p: URLSearchParams): URLSearchParams | FormProblem {
  for (const [k, v] of p) {
    if (v.includes("\u0000") || k.includes("\u0000")) {
      return { problem: `The field ${JSON.stringify(k.replace(/\u0000/g, ""))} contains a NUL character, which is not allowed.`, status: 400 };
    }
  }
  return p;
}

/** The query string's problem, if any: like a form's, a NUL character is refused, naming the parameter. */
function queryProblem(url: URL): FormProblem | undefined {
  for (const [k, v] of url.searchParams) {
    if (v.includes("\u0000") || k.includes("\u0000")) {
      return { problem: `The query parameter ${JSON.stringify(k.replace(/\u0000/g, ""))} contains a NUL character, which is not allowed.`, status: 400 };
    }
  }
  return undefined;
}

export function stagePath(stage: string): string {
  if (stage === "mfa") return "/login/totp";
  if (stage === "enroll") return "/account/mfa";
  if (stage === "password") return "/account/password";
  return "/hosts";
}

/**
 * Where a request without a live session is sent: the sign-in page with the page to come back to
 * (`next`: the page itself, or for htmx requests the page they came from) and, when the browser
 * still sent a session cookie, `expired=1` so the page says the session ended.
 */
function loginPath(req: ConsoleRequest): string {
  const q = new URLSearchParams();
  let back = "";
  if (req.method === "GET" && !req.htmx.request) back = req.url.pathname + req.url.search;
  else {
    try {
      const from = new URL(req.raw.headers.get("hx-current-url") ?? "");
      if (from.host === req.url.host) back = from.pathname + from.search;
    } catch {
      /* no usable page to come back to */
    }
  }
  if (back && back !== "/" && !back.startsWith("/login")) q.set("next", back);
  if (new RegExp(`(^|;\\s*)${SESSION_COOKIE}=`).test(req.raw.headers.get("cookie") ?? "")) q.set("expired", "1");
  const qs = q.toString();
  return qs ? `/login?${qs}` : "/login";
}

export function createGuard(s: ConsoleServices, pages: Pages) {
  return async function run(route: ConsoleRoute, request: Request, params: Record<string, string>): Promise<Response> {
    const url = new URL(request.url);
    const cookies = parseCookies(request.headers.get("cookie"));
    const ip = s.clientIp?.(request) || clientIp(request);
    // an API token (Authorization: Bearer, /api/* only) instead of a session: ./bearer.ts
    const bearer = await bearerPrincipal(s, request, url, route.path, ip, Boolean(cookies[SESSION_COOKIE]));
    if (bearer instanceof Response) return bearer;
    if (bearer) {
      const form = await readForm(request);
      return decide(route, tokenRequest(request, url, params, ip, bearer, form), form);
    }
    const setCookies: string[] = [];
    const form = await readForm(request);
    const settings = await s.settings.get();
    const background = request.headers.get(POLL_HEADER) === "1";
    const session = cookies[SESSION_COOKIE] ? await loadSession(s.sql, cookies[SESSION_COOKIE]!, settings.session, { background }) : null;
    let pre = cookies[PRE_CSRF_COOKIE] ?? "";
    if (!session && !/^[A-Za-z0-9_-]{32}$/.test(pre)) {
      pre = randomBytes(24).toString("base64url");
      setCookies.push(cookie(PRE_CSRF_COOKIE, pre));
    }
    const user = session ? (await getUser(s.sql, session.user_id)) ?? null : null;
    const live = session && user && !user.disabled_at ? session : null;
    const req: ConsoleRequest = {
      method: request.method,
      url,
      params,
      query: url.searchParams,
      form: form instanceof URLSearchParams ? form : new URLSearchParams(),
      ip,
      userAgent: request.headers.get("user-agent") ?? "",
      htmx: {
        request: request.headers.get("hx-request") === "true",
        boosted: request.headers.get("hx-boosted") === "true",
        target: request.headers.get("hx-target") ?? "",
        trigger: request.headers.get("hx-trigger") ?? "",
      },
      csrf: live ? live.csrf_token : pre,
      session: live,
      user: live ? user : null,
      grants: live && live.stage === "full" ? await userGrants(s.sql, live.user_id) : null,
      scope: HostScope.none(),
      raw: request,
    };
    const res = await decide(route, req, form);
    for (const c of setCookies) res.headers.append("set-cookie", c);
    return res;
  };

  /** The ConsoleRequest of a token-authenticated API call: no session, no CSRF, never htmx. */
  function tokenRequest(request: Request, url: URL, params: Record<string, string>, ip: string, p: BearerPrincipal, form: URLSearchParams | FormProblem): ConsoleRequest {
    const req: ConsoleRequest = {
      method: request.method, url, params, query: url.searchParams,
      form: form instanceof URLSearchParams ? form : new URLSearchParams(),
      ip, userAgent: request.headers.get("user-agent") ?? "",
      htmx: { request: false, boosted: false, target: "", trigger: "" },
      csrf: "", session: null, user: p.user, grants: p.grants, scope: HostScope.none(), token: p.token, raw: request,
    };
    return req;
  }

  async function decide(route: ConsoleRoute, req: ConsoleRequest, form: URLSearchParams | FormProblem): Promise<Response> {
    // the hosts this request may touch: those the user's roles granting the route's permission cover
    if (route.access !== "public" && route.access !== "signed-in") req.scope = scopeFor(req, route.access);
    if (route.access !== "public") {
      if (!req.session && !req.token) return redirect(req, loginPath(req));
      if (req.session && req.session.stage !== "full" && !route.stages?.includes(req.session.stage as "mfa")) {
        return redirect(req, stagePath(req.session.stage));
      }
      if (route.access !== "signed-in") {
        if ((req.session && req.session.stage !== "full") || !req.grants?.permissions.has(route.access)) {
          await auditRequest(s.sql, req, "security_event", "access.denied", `${req.method} ${req.url.pathname}`, false, { permission: route.access });
          return apiError(req, 403, "forbidden", `this needs the ${route.access} permission`) ?? pages.forbidden(req, route.access);
        }
      }
    }
    const badQuery = queryProblem(req.url);
    if (badQuery) return apiError(req, badQuery.status, "bad_request", badQuery.problem) ?? pages.formErrors(req, [badQuery.problem], badQuery.status);
    if (req.method !== "GET") {
      // a token request carries no ambient credential (no cookie): nothing for CSRF to abuse
      const sent = req.raw.headers.get("x-csrf-token") ?? req.form.get("_csrf") ?? "";
      if (!req.token && !sameToken(sent, req.csrf)) {
        await auditRequest(s.sql, req, "security_event", "csrf.rejected", `${req.method} ${req.url.pathname}`, false);
        const message = "This form has expired or did not come from this console. Reload the page and try again.";
        return apiError(req, 403, "csrf", message) ?? html(pages.render("partials/form-errors", { problems: [message] }), 403);
      }
      if (!(form instanceof URLSearchParams)) return apiError(req, form.status, "bad_request", form.problem) ?? pages.formErrors(req, [form.problem], form.status);
    }
    if (route.hostData === "host" || route.hostData === "violation") {
      // out of scope and nonexistent answer the same, before any confirmation is asked for
      const id = Number(req.params.id);
      if (route.hostData === "host") req.host = await findHost(s.sql, req.scope, id);
      else {
        req.violation = await findViolation(s.sql, req.scope, id);
        req.host = req.violation?.host;
      }
      if (!req.host) return notFound(req, route.hostData);
    }
    if (route.dangerous && req.token && (await route.dangerous.phrase(req)) !== null) {
      // a token can neither type the confirmation nor re-authenticate: dangerous operations need a person
      await auditRequest(s.sql, req, "security_event", "dangerous.refused", `${req.method} ${req.url.pathname}`, false, { reason: "api token" });
      return apiError(req, 403, "dangerous_by_token", "This is a dangerous operation: it needs typed confirmation and re-authentication by a signed-in user, which an API token cannot give. Use the console.")!;
    }
    if (route.dangerous) {
      const problem = await checkDanger(route, req);
      if (problem) {
        await auditRequest(s.sql, req, "security_event", "dangerous.refused", `${req.method} ${req.url.pathname}`, false, { reason: problem });
        return apiError(req, 403, "confirmation_required", problem) ?? pages.formErrors(req, [problem], 403);
      }
    }
    try {
      return await route.handler(req);
    } catch (e) {
      console.error(`console ${req.method} ${req.url.pathname} failed: ${e instanceof Error ? e.stack : e}`);
      return pages.page(req, "pages/error", "Something went wrong", {
        heading: "Something went wrong",
        message: "The server could not complete this request. It has been logged; try again.",
        problems: [],
      }, 500);
    }
  }

  /** The same answer for a host (or violation) that does not exist and one outside the scope. */
  function notFound(req: ConsoleRequest, what: "host" | "violation"): Response {
    const message = what === "host" ? "no such host" : "no such violation";
    if (req.url.pathname.startsWith("/api/") && req.htmx.request) return pages.formErrors(req, [message], 404);
    return apiError(req, 404, "not_found", message) ?? pages.notFound(req, what === "host" ? `Host ${req.params.id}` : `Violation ${req.params.id}`);
  }

  /** Refusals of the JSON API (/api/..., not from htmx) are JSON; null for every other request. */
  function apiError(req: ConsoleRequest, status: number, code: string, message: string): Response | null {
    if (!req.url.pathname.startsWith("/api/") || req.htmx.request) return null;
    return new Response(JSON.stringify({ error: { code, message } }), { status, headers: securityHeaders(new Headers({ "content-type": "application/json" })) });
  }

  /** Typed confirmation plus re-authentication within the last five minutes. */
  async function checkDanger(route: ConsoleRoute, req: ConsoleRequest): Promise<string | null> {
    const phrase = await route.dangerous!.phrase(req);
    if (phrase === null) return null;
    const typed = (req.form.get("confirm") ?? "").trim();
    if (typed !== phrase) return `Type ${phrase} exactly to confirm this action.`;
    const session = req.session!;
    const user = req.user!;
    const credential = req.form.get("reauth") ?? "";
    if (credential) {
      // re-authentication is a sign-in attempt too: the same throttle, charged before checking,
      // so a stolen session cannot be used to guess the password or the code
      const limits = throttleLimits((await s.settings.get()).password);
      const isCode = /^\d{6}$/.test(credential.trim()) && Boolean(user.totp_secret);
      const attempt = await beginAttempt(s.sql, limits, { username: user.username, ip: req.ip, factor: isCode ? "second" : "password" });
      if (!attempt.ok) return `Too many wrong attempts. Try again in ${attempt.retryAfterS} seconds.`;
      let problem: string | null = null;
      if (isCode) {
        if ((await checkSecondFactor(s.sql, s.secrets, user, credential.trim())) !== "totp") problem = "That authenticator code is not valid. Enter a current code or your password.";
        else req.reauth = "totp";
      } else if (!user.password_hash || !(await verifyPassword(credential, user.password_hash))) {
        problem = "That password is not correct.";
      } else {
        req.reauth = "password";
      }
      if (problem) {
        if (attempt.ticket.lastBeforePause) {
          // the counter is full: this session ends, and signing in again waits for the pause
          await revokeSession(s.sql, session.id, "too many wrong re-authentications");
          await auditRequest(s.sql, req, "security_event", "reauth.throttled", user.username, false, { during: "re-authentication" });
          return "Too many wrong attempts: sign-in is paused for this account from this address and this session has ended.";
        }
        return problem;
      }
      await signInSucceeded(s.sql, limits, attempt.ticket);
      await markReauth(s.sql, session.id);
      return null;
    }
    if (session.reauth_at && Date.now() - new Date(session.reauth_at).getTime() < REAUTH_WINDOW_MS) {
      req.reauth = "recent";
      return null;
    }
    return "This action needs you to confirm your identity: enter your password or an authenticator code.";
  }
}

export { securityHeaders };
