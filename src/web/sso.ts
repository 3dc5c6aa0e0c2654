/**
 * Wires enterprise sign-in (src/auth/sso/) to the console: sessions are the console's
 * (createSession + its cookie and stage pages), audit records go through `audit()`, the client
 * address is the one the server recorded. The composition root mounts
 * `createSso(consoleSsoDeps(services, config)).plugin` beside `consolePlugin(deps)`.
 */
import { audit } from "../audit/audit.ts";
import { createSession, loadSession, revokeSession, SESSION_COOKIE } from "../auth/session.ts";
import type { SsoConfig, SsoDeps } from "../auth/sso/deps.ts";
import { clientIp } from "../http/client-ip.ts";
import type { ConsoleServices } from "./deps.ts";
import { cookie, stagePath } from "./guard.ts";

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
    audit: (e) => audit(s.sql, e),
    requestInfo,
    async startSession(userId, stage, req) {
      const settings = await s.settings.get();
      const { token } = await createSession(s.sql, userId, stage, req.ip, req.userAgent, settings.session);
      return { setCookie: cookie(SESSION_COOKIE, token, settings.session.absoluteHours * 3600), location: stagePath(stage) };
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
