/**
 * The security feature's routes (src/security/routes.ts) served through the console's guard,
 * so the signed-in user's session, permissions, CSRF token and the dangerous-operation checks
 * (typed confirmation + fresh re-authentication) apply to them like to every console page.
 */
import { normalizeBody, SECURITY_ROUTES, type SecurityDeps, type SecurityRequest } from "../../security/routes.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";

function securityRequest(req: ConsoleRequest): SecurityRequest {
  return {
    url: req.url,
    params: req.params,
    body: normalizeBody(Object.fromEntries(req.form)),
    principal: { id: req.user!.id, name: req.user!.username, permissions: req.grants!.permissions },
    htmx: req.htmx.request,
  };
}

export function securityConsoleRoutes(deps: SecurityDeps): ConsoleRoute[] {
  return SECURITY_ROUTES.map((r) => ({
    method: r.method,
    path: r.path,
    access: r.permission,
    dangerous: r.dangerous ? { phrase: (req: ConsoleRequest) => r.dangerous!(securityRequest(req), deps) } : undefined,
    handler: (req: ConsoleRequest) => r.handler(securityRequest(req), deps),
  }));
}
