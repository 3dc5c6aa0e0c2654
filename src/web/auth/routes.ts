/** First-run setup, sign-in (password, then TOTP), sign-out. */
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, redirect, type Pages } from "../respond.ts";
import { consumeSetupCode, removeSetupCodeFile, setupOpen } from "../../auth/setup-code.ts";
import { checkLogin, checkSecondFactor, createUser, getUser, mfaRequired, passwordExpired, PolicyError, recordSignIn } from "../../auth/users.ts";
import { checkPasswordPolicy } from "../../auth/password.ts";
import { roleIdByName, userGrants } from "../../auth/roles.ts";
import { beginAttempt, signInSucceeded, throttleLimits } from "../../auth/throttle.ts";
import { createSession, revokeSession, SESSION_COOKIE, setStage, type SessionStage } from "../../auth/session.ts";
import { cookie, stagePath } from "../guard.ts";
import { auditRequest } from "../audit-request.ts";
import { breakGlassGate, recordBreakGlassUse, ssoSignInOptions } from "../sso/wiring.ts";

function safeNext(next: string | null): string {
  return next && /^\/[A-Za-z0-9/_?=&%.-]*$/.test(next) && !next.startsWith("//") ? next : "/hosts";
}

/** 429 with Retry-After; the same for every username, known or not. */
function throttled(pages: Pages, req: ConsoleRequest, retryAfterS: number): Response {
  const wait = retryAfterS < 120 ? `${retryAfterS} seconds` : `${Math.ceil(retryAfterS / 60)} minutes`;
  const res = pages.formErrors(req, [`Too many sign-in attempts. Try again in ${wait}.`], 429);
  res.headers.set("retry-after", String(retryAfterS));
  return res;
}

export function authRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  async function stageAfterPassword(userId: number): Promise<SessionStage> {
    const user = (await getUser(sql, userId))!;
    const settings = await s.settings.get();
    if (user.totp_enabled_at) return "mfa";
    if (mfaRequired(settings, await userGrants(sql, userId))) return "enroll";
    if (passwordExpired(user, settings.password)) return "password";
    return "full";
  }

  return [
    {
      method: "GET", path: "/", access: "public",
      handler: (req) => redirect(req, req.session ? stagePath(req.session.stage) : "/login"),
    },
    {
      method: "GET", path: "/setup", access: "public",
      async handler(req) {
        if (!(await setupOpen(sql))) return redirect(req, "/login");
        const policy = (await s.settings.get()).password;
        return pages.page(req, "pages/setup", "Set up ServerMind", { policy });
      },
    },
    {
      method: "POST", path: "/setup", access: "public",
      async handler(req) {
        if (!(await setupOpen(sql))) return pages.formErrors(req, ["Setup is already complete. Sign in instead."], 409);
        const f = req.form;
        const username = (f.get("username") ?? "").trim().toLowerCase();
        const password = f.get("password") ?? "";
        const problems: string[] = [];
        if (!(f.get("code") ?? "").trim()) problems.push("Enter the setup code printed in the server log.");
        if (password !== f.get("password2")) problems.push("The two passwords differ.");
        problems.push(...checkPasswordPolicy(password, (await s.settings.get()).password, username));
        if (problems.length) return pages.formErrors(req, problems);
        if (!(await consumeSetupCode(sql, f.get("code") ?? ""))) {
          await auditRequest(sql, req, "authentication", "setup.code_rejected", username, false, {}, username);
          return pages.formErrors(req, ["That setup code is not correct. Use the code the server printed at start (also in the setup-code file in its data directory)."], 403);
        }
        try {
          const settings = await s.settings.get();
          const id = await createUser(sql, { username, password, displayName: f.get("display_name") ?? "", email: f.get("email") ?? "", roleIds: [(await roleIdByName(sql, "admin"))!] }, settings.password);
          removeSetupCodeFile(s.dataDir);
          await auditRequest(sql, req, "user_management", "setup.admin_created", username, true, { userId: id }, username);
          // the first administrator enrolls an authenticator before anything else: the session
          // starts in the enroll stage, and a later password sign-in without TOTP returns there
          const { token } = await createSession(sql, id, "enroll", req.ip, req.userAgent, settings.session);
          const res = done(req, stagePath("enroll"));
          res.headers.append("set-cookie", cookie(SESSION_COOKIE, token, settings.session.absoluteHours * 3600));
          return res;
        } catch (e) {
          if (e instanceof PolicyError) return pages.formErrors(req, e.problems);
          throw e;
        }
      },
    },
    {
      method: "GET", path: "/login", access: "public",
      async handler(req) {
        if (req.session?.stage === "full") return redirect(req, "/hosts");
        if (await setupOpen(sql)) return redirect(req, "/setup");
        return pages.page(req, "pages/login", "Sign in", {
          next: req.query.get("next") ?? "",
          expired: req.query.get("expired") === "1",
          setupDone: req.query.get("setup") === "done",
          signedOut: req.query.get("signed_out") === "1",
          sso: await ssoSignInOptions(s, req.query.get("sso_error")), // issue 6
        });
      },
    },
    {
      method: "POST", path: "/login", access: "public",
      async handler(req) {
        const username = (req.form.get("username") ?? "").trim().toLowerCase();
        const password = req.form.get("password") ?? "";
        if (!username || !password) return pages.formErrors(req, ["Enter your username and password."]);
        const settings = await s.settings.get();
        const limits = throttleLimits(settings.password);
        // charged before the password is looked at; unknown usernames are counted the same way
        const attempt = await beginAttempt(sql, limits, { username, ip: req.ip, factor: "password" });
        if (!attempt.ok) {
          await auditRequest(sql, req, "security_event", "login.throttled", username, false, { retry_after_s: attempt.retryAfterS }, username);
          return throttled(pages, req, attempt.retryAfterS);
        }
        const r = await checkLogin(sql, username, password);
        if (!r.ok) {
          await auditRequest(sql, req, "authentication", "login.password", username, false, { reason: r.reason }, username);
          return pages.formErrors(req, ["Wrong username or password."], 401);
        }
        const ssoRefusal = await breakGlassGate(s, r.user.id, req); // SSO enforced: break-glass accounts only (issue 6)
        if (ssoRefusal) return pages.formErrors(req, [ssoRefusal], 403);
        const stage = await stageAfterPassword(r.user.id);
        // with a second factor still to come, the counters keep counting until it is given
        if (stage !== "mfa") await signInSucceeded(sql, limits, attempt.ticket);
        const { token } = await createSession(sql, r.user.id, stage, req.ip, req.userAgent, settings.session);
        const reqAs = { ...req, user: r.user };
        await auditRequest(sql, reqAs, "authentication", stage === "full" ? "login.success" : "login.password", username, true, { next_step: stage });
        if (stage === "full") await recordSignIn(sql, r.user.id);
        // the page asked for before sign-in survives the second-factor step
        const next = safeNext(req.form.get("next"));
        const res = done(req, stage === "full" ? next : stage === "mfa" && next !== "/hosts" ? `${stagePath(stage)}?next=${encodeURIComponent(next)}` : stagePath(stage));
        res.headers.append("set-cookie", cookie(SESSION_COOKIE, token, settings.session.absoluteHours * 3600));
        return res;
      },
    },
    {
      method: "GET", path: "/login/totp", access: "signed-in", stages: ["mfa"],
      handler: (req) => pages.page(req, "pages/login-totp", "Verify sign-in", { username: req.user!.username, next: req.query.get("next") ?? "" }),
    },
    {
      method: "POST", path: "/login/totp", access: "signed-in", stages: ["mfa"],
      async handler(req) {
        const user = req.user!;
        const code = (req.form.get("code") ?? "").trim();
        if (!code) return pages.formErrors(req, ["Enter the 6-digit code from your authenticator app, or a backup code."]);
        const settings = await s.settings.get();
        const limits = throttleLimits(settings.password);
        const attempt = await beginAttempt(sql, limits, { username: user.username, ip: req.ip, factor: "second" });
        if (!attempt.ok) {
          await auditRequest(sql, req, "security_event", "login.throttled", user.username, false, { retry_after_s: attempt.retryAfterS, step: "second factor" });
          return throttled(pages, req, attempt.retryAfterS);
        }
        const kind = await checkSecondFactor(sql, s.secrets, user, code);
        if (!kind) {
          await auditRequest(sql, req, "authentication", "login.totp", user.username, false);
          if (attempt.ticket.lastBeforePause) {
            // the counter is full: this half-signed-in session ends, sign-in starts over later
            await revokeSession(sql, req.session!.id, "too many wrong codes");
            return pages.formErrors(req, ["That code is not valid, and that was the last try for now: sign in again later."], 401);
          }
          return pages.formErrors(req, ["That code is not valid. Codes change every 30 seconds and each works once."], 401);
        }
        if (!(await recordBreakGlassUse(s, user, req, kind))) { // SSO enforced: TOTP only (issue 6)
          await revokeSession(sql, req.session!.id, "break-glass needs TOTP");
          return pages.formErrors(req, ["While SSO is enforced, a break-glass sign-in needs a code from the authenticator app, not a backup code."], 403);
        }
        await signInSucceeded(sql, limits, attempt.ticket, 2); // this code and the password before it
        await recordSignIn(sql, user.id);
        const stage: SessionStage = passwordExpired(user, settings.password) ? "password" : "full";
        await setStage(sql, req.session!.id, stage);
        await auditRequest(sql, req, "authentication", "login.success", user.username, true, { second_factor: kind });
        return done(req, stage === "full" ? safeNext(req.form.get("next")) : stagePath(stage));
      },
    },
    {
      method: "POST", path: "/logout", access: "signed-in", stages: ["mfa", "enroll", "password"],
      async handler(req) {
        await revokeSession(sql, req.session!.id, "signed out");
        await auditRequest(sql, req, "authentication", "logout", req.user!.username, true);
        const res = done(req, "/login?signed_out=1");
        res.headers.append("set-cookie", cookie(SESSION_COOKIE, "", 0));
        return res;
      },
    },
  ];
}

