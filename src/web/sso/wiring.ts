/**
 * Wires enterprise sign-in (src/auth/sso/) to the console: sessions are the console's
 * (createSession + its cookie and stage pages), audit records go through `audit()`, the client
 * address is the one the server recorded. The composition root mounts
 * `createSso(consoleSsoDeps(services, config)).plugin` beside `consolePlugin(deps)`.
 */
import { audit } from "../../audit/audit.ts";
import { createSession, loadSession, markReauth, revokeSession, SESSION_COOKIE } from "../../auth/session.ts";
import { getUser } from "../../auth/users.ts";
import type { SsoConfig, SsoDeps } from "../../auth/sso/deps.ts";
import { loadSsoPolicy } from "../../auth/sso/policy.ts";
import { listProviders } from "../../auth/sso/providers.ts";
import { localLoginGate } from "../../auth/sso/break-glass.ts";
import { clientIp } from "../../http/client-ip.ts";
import type { ConsoleServices } from "../deps.ts";
import { cookie, stagePath } from "../guard.ts";

function sessionToken(request: Request): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === SESSION_COOKIE) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function consoleSsoDeps(s: ConsoleServices, config: SsoConfig): SsoDeps {
  const requestInfo = (r: Request) => ({ ip: s.clientIp?.(r) ?? clientIp(r), userAgent: (r.headers.get("user-agent") ?? "").slice(0, 512) });
  return {
    sql: s.sql,
    config,
    secrets: s.secrets,
    audit: (e) => audit(s.sql, e),
    requestInfo,
    async startSession(userId, stage, req) {
      const settings = await s.settings.get();
      const { token } = await createSession(s.sql, userId, stage, req.ip, req.userAgent, settings.session);
      return { setCookie: cookie(SESSION_COOKIE, token, settings.session.absoluteHours * 3600), location: stagePath(stage) };
    },
    async reauthenticate(request, userId) {
      const token = sessionToken(request);
      if (!token) return false;
      const session = await loadSession(s.sql, token, (await s.settings.get()).session);
      if (!session || session.user_id !== userId || session.stage !== "full") return false;
      await markReauth(s.sql, session.id);
      return true;
    },
    async endSession(request) {
      const token = sessionToken(request);
      if (!token) return null;
      const settings = await s.settings.get();
      const session = await loadSession(s.sql, token, settings.session, { background: true });
      if (!session) return null;
      await revokeSession(s.sql, session.id, "signed out (sso)");
      return { userId: session.user_id };
    },
  };
}

/**
 * For the console's password login while SSO is enforced: after a correct password, refuses
 * accounts not flagged for break-glass (or without TOTP) with a security event. Returns the
 * message to show, or null to continue (flagged accounts then go through the TOTP step).
 */
export async function breakGlassGate(s: ConsoleServices, userId: number, req: { ip: string; userAgent: string }): Promise<string | null> {
  const policy = await loadSsoPolicy(s.sql);
  if (!policy.enforced) return null;
  const u = await getUser(s.sql, userId);
  const gate = localLoginGate(policy, { break_glass: !!u?.break_glass, totp_enabled_at: u?.totp_enabled_at ?? null });
  if (gate.allowed) return null;
  await audit(s.sql, { actor: { type: "user", id: userId, name: u?.username ?? "" }, ip: req.ip, userAgent: req.userAgent,
    category: "security_event", action: "break_glass.refused", target: `user:${u?.username ?? ""}`, success: false, details: { reason: gate.reason } });
  return gate.reason === "sso_enforced"
    ? "Sign in through your organization's identity provider. Local passwords work only for break-glass accounts."
    : "This break-glass account needs TOTP enrolled before it can sign in while SSO is enforced.";
}

/**
 * After the TOTP step: while SSO is enforced a local sign-in is a break-glass use. A TOTP code
 * completes it and raises a security event; a backup code does not (returns false, audited).
 */
export async function recordBreakGlassUse(s: ConsoleServices, user: { id: number; username: string }, req: { ip: string; userAgent: string }, factor: string): Promise<boolean> {
  if (!(await loadSsoPolicy(s.sql)).enforced) return true;
  const ok = factor === "totp";
  await audit(s.sql, { actor: { type: "user", id: user.id, name: user.username }, ip: req.ip, userAgent: req.userAgent,
    category: "security_event", action: ok ? "break_glass.used" : "break_glass.refused", target: `user:${user.username}`, success: ok,
    details: ok ? { factor } : { reason: "backup_code_not_allowed" } });
  return ok;
}

const SSO_ERRORS: Record<string, string> = {
  bad_credentials: "Wrong username or password.",
  disabled: "This account is disabled.",
  username_taken: "An account with your username already exists here; ask an administrator to link it to your sign-in provider.",
  not_provisioned: "No account is linked to your identity and accounts are not created automatically. Ask an administrator.",
  no_mapped_group: "None of your groups gives access to this console.",
  idp_error: "The identity provider did not sign you in.",
  saml_replay: "This sign-in response was already used. Start again.",
  unknown_state: "This sign-in expired or was already used. Start again.",
  unknown_relay_state: "This sign-in expired or was already used. Start again.",
  state_not_bound: "This sign-in was started in another browser. Start again here.",
  session_mismatch: "Re-authenticate as the user who is signed in here.",
  reauth_not_fresh: "The identity provider did not ask you to sign in again. Try again.",
  ldap_unreachable: "The directory cannot be reached right now. Try again, or use a break-glass account.",
  ldap_timeout: "The directory did not answer in time. Try again.",
  provider_unreachable: "The identity provider cannot be reached right now.",
};

/** What the login page shows for enterprise sign-in: provider buttons, directory forms, the last error. */
export async function ssoSignInOptions(s: ConsoleServices, errorCode: string | null) {
  const providers = (await listProviders(s.sql)).filter((p) => p.enabled);
  return {
    error: errorCode ? (SSO_ERRORS[errorCode] ?? "Sign-in through your identity provider failed.") : "",
    redirects: providers.filter((p) => p.kind !== "ldap").map((p) => ({ name: p.name || p.id, href: `/auth/${p.kind}/login?provider=${encodeURIComponent(p.id)}` })),
    directories: providers.filter((p) => p.kind === "ldap").map((p) => ({ id: p.id, name: p.name || p.id })),
    enforced: (await loadSsoPolicy(s.sql)).enforced && providers.length > 0,
  };
}
