/** The signed-in user's own account: password change, TOTP enrollment, backup codes. */
import QRCode from "qrcode";
import type { ConsoleRoute } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { done, type Pages } from "../respond.ts";
import { enableTotp, newBackupCodes, passwordExpired, PolicyError, recordSignIn, remainingBackupCodes, setPassword } from "../../auth/users.ts";
import { verifyPassword } from "../../auth/password.ts";
import { beginAttempt, signInSucceeded, throttleLimits } from "../../auth/throttle.ts";
import type { ConsoleRequest } from "../route.ts";
import { newTotpSecret, otpauthUri, verifyTotp } from "../../auth/totp.ts";
import { revokeUserSessions, setPendingTotp, setStage, type SessionStage } from "../../auth/session.ts";
import { auditRequest } from "../audit-request.ts";
import { trustedHtml } from "../render.ts";
import { dangerForm } from "../danger-form.ts";

export const BACKUP_PHRASE = "new codes";

export function accountRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  /** The key being enrolled, kept sealed in the session row; null if none or unreadable. */
  function pendingSecret(sealed: string | null): string | null {
    if (!sealed) return null;
    try {
      return s.secrets.open(sealed);
    } catch {
      return null;
    }
  }
  /**
   * The signed-in user's current password, asked again before a change: a sign-in attempt for
   * the throttle (src/auth/throttle.ts), so a stolen session cannot be used to guess it.
   */
  async function checkCurrentPassword(req: ConsoleRequest, password: string, action: string): Promise<"ok" | "wrong" | Response> {
    const u = req.user!;
    const limits = throttleLimits((await s.settings.get()).password);
    const attempt = await beginAttempt(sql, limits, { username: u.username, ip: req.ip, factor: "password" });
    if (!attempt.ok) {
      await auditRequest(sql, req, "security_event", "login.throttled", u.username, false, { retry_after_s: attempt.retryAfterS, during: action });
      const res = pages.formErrors(req, [`Too many wrong attempts. Try again in ${attempt.retryAfterS} seconds.`], 429);
      res.headers.set("retry-after", String(attempt.retryAfterS));
      return res;
    }
    if (!u.password_hash || !(await verifyPassword(password, u.password_hash))) {
      await auditRequest(sql, req, "authentication", action, u.username, false, { reason: "wrong current password" });
      return "wrong";
    }
    await signInSucceeded(sql, limits, attempt.ticket);
    return "ok";
  }

  /** A session past a sign-in step: into the next stage, and when that is the console, a sign-in completed (the Users page's "last sign-in"). */
  async function enterConsole(sessionId: number, userId: number, stage: SessionStage): Promise<void> {
    await setStage(sql, sessionId, stage);
    if (stage === "full") await recordSignIn(sql, userId);
  }

  return [
    {
      method: "GET", path: "/account", access: "signed-in",
      async handler(req) {
        const u = req.user!;
        return pages.page(req, "pages/account", "My account", {
          user: u,
          mfaEnabled: Boolean(u.totp_enabled_at),
          backupLeft: await remainingBackupCodes(sql, u.id),
          roles: req.grants!.roles.join(", ") || "none",
          backupForm: dangerForm(pages, {
            id: "backup-codes-form", action: "/account/backup-codes", phrase: BACKUP_PHRASE, button: "Generate new backup codes", csrf: req.csrf,
            description: "Your current backup codes stop working and ten new ones are shown once.",
          }),
          policy: (await s.settings.get()).password,
        });
      },
    },
    {
      method: "GET", path: "/account/password", access: "signed-in", stages: ["password"],
      async handler(req) {
        return pages.page(req, "pages/password-expired", "Change your password", { policy: (await s.settings.get()).password });
      },
    },
    {
      method: "POST", path: "/account/password", access: "signed-in", stages: ["password"],
      async handler(req) {
        const u = req.user!;
        const current = req.form.get("current") ?? "";
        const next = req.form.get("password") ?? "";
        if (next !== req.form.get("password2")) return pages.formErrors(req, ["The two new passwords differ."]);
        const checked = await checkCurrentPassword(req, current, "password.change");
        if (checked instanceof Response) return checked;
        if (checked === "wrong") return pages.formErrors(req, ["Your current password is not correct."], 401);
        if (next === current) return pages.formErrors(req, ["The new password must differ from the current one."]);
        try {
          await setPassword(sql, u, next, (await s.settings.get()).password);
        } catch (e) {
          if (e instanceof PolicyError) return pages.formErrors(req, e.problems);
          throw e;
        }
        const revoked = await revokeUserSessions(sql, u.id, "password changed", req.session!.id);
        if (req.session!.stage === "password") await enterConsole(req.session!.id, u.id, "full");
        await auditRequest(sql, req, "authentication", "password.change", u.username, true, { other_sessions_revoked: revoked });
        return done(req, "/account?password=changed");
      },
    },
    {
      method: "GET", path: "/account/mfa", access: "signed-in", stages: ["enroll"],
      async handler(req) {
        const u = req.user!;
        let secret = pendingSecret(req.session!.pending_totp);
        if (!secret) {
          secret = newTotpSecret();
          await setPendingTotp(sql, req.session!.id, s.secrets.seal(secret));
        }
        const uri = otpauthUri(secret, u.username);
        const svg = await QRCode.toString(uri, { type: "svg", errorCorrectionLevel: "M", margin: 2 });
        return pages.page(req, "pages/mfa-enroll", "Set up two-factor sign-in", {
          forced: req.session!.stage === "enroll",
          already: Boolean(u.totp_enabled_at),
          // qrcode emits only path data and numbers derived from the URI; nothing user-controlled is raw
          qr: trustedHtml(svg.replace(/<\?xml[^>]*>/, "")),
          secret: secret.match(/.{1,4}/g)!.join(" "),
        });
      },
    },
    {
      method: "POST", path: "/account/mfa", access: "signed-in", stages: ["enroll"],
      async handler(req) {
        const u = req.user!;
        const secret = pendingSecret(req.session!.pending_totp);
        if (!secret) return pages.formErrors(req, ["Reload the page to get a new QR code."]);
        if (u.totp_enabled_at) {
          // replacing an existing authenticator needs the password, not just a live session
          const checked = await checkCurrentPassword(req, req.form.get("password") ?? "", "mfa.replace");
          if (checked instanceof Response) return checked;
          if (checked === "wrong") return pages.formErrors(req, ["Enter your current password to replace your authenticator."], 401);
        }
        const step = verifyTotp(secret, (req.form.get("code") ?? "").trim(), Date.now());
        if (step === null) {
          await auditRequest(sql, req, "authentication", "mfa.enroll", u.username, false);
          return pages.formErrors(req, ["That code does not match. Check the time on your phone and enter the current 6-digit code."]);
        }
        await enableTotp(sql, s.secrets, u.id, secret, step);
        await setPendingTotp(sql, req.session!.id, null);
        const codes = await newBackupCodes(sql, u.id);
        // an expired password is still to be changed (the stage after enrollment, as after the TOTP step)
        if (req.session!.stage === "enroll") await enterConsole(req.session!.id, u.id, passwordExpired(u, (await s.settings.get()).password) ? "password" : "full");
        await auditRequest(sql, req, "authentication", "mfa.enroll", u.username, true, { backup_codes_issued: codes.length });
        return pages.page(req, "pages/backup-codes", "Your backup codes", { codes, next: "/hosts" });
      },
    },
    {
      method: "POST", path: "/account/backup-codes", access: "signed-in", dangerous: { phrase: () => BACKUP_PHRASE },
      async handler(req) {
        const u = req.user!;
        if (!u.totp_enabled_at) return pages.formErrors(req, ["Set up an authenticator app first."]);
        const codes = await newBackupCodes(sql, u.id);
        await auditRequest(sql, req, "authentication", "mfa.backup_codes.regenerate", u.username, true);
        return pages.page(req, "pages/backup-codes", "Your backup codes", { codes, next: "/account" });
      },
    },
  ];
}
