/**
 * The security feature's routes (src/security/routes.ts) served through the console's guard,
 * so the signed-in user's session, permissions, CSRF token and the dangerous-operation checks
 * (typed confirmation + fresh re-authentication) apply to them like to every console page.
 * Their htmx partials are rendered by the console's template engine; a JSON error answering an
 * htmx request becomes the console's form-errors fragment.
 */
import { normalizeBody, SECURITY_ROUTES, type SecurityDeps, type SecurityRequest } from "../../security/routes.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { createRenderer, VIEWS_DIR } from "../render.ts";
import { html, securityHeaders } from "../respond.ts";
import { createSecurityViews } from "./views.ts";

/** Form fields as the security routes read them: a repeated field (checkboxes) becomes a list. */
function formBody(form: URLSearchParams): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of new Set(form.keys())) {
    const all = form.getAll(k);
    out[k] = all.length > 1 ? all : all[0];
  }
  return out;
}

function securityRequest(req: ConsoleRequest): SecurityRequest {
  return {
    url: req.url,
    params: req.params,
    body: normalizeBody(formBody(req.form)),
    principal: { id: req.user!.id, name: req.user!.username, permissions: req.grants!.permissions },
    htmx: req.htmx.request,
    csrf: req.csrf,
  };
}

export function securityConsoleRoutes(base: Omit<SecurityDeps, "views"> & { views?: SecurityDeps["views"] }): ConsoleRoute[] {
  const deps: SecurityDeps = { ...base, views: base.views ?? createSecurityViews(createRenderer(VIEWS_DIR)) };
  return SECURITY_ROUTES.map((r) => ({
    method: r.method,
    path: r.path,
    access: r.permission,
    dangerous: r.dangerous ? { phrase: (req: ConsoleRequest) => r.dangerous!(securityRequest(req), deps) } : undefined,
    async handler(req: ConsoleRequest) {
      const res = await r.handler(securityRequest(req), deps);
      securityHeaders(res.headers);
      if (!req.htmx.request || res.status < 400 || !res.headers.get("content-type")?.startsWith("application/json")) return res;
      const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
      return html(String(deps.views.render("partials/form-errors", { problems: [body?.error?.message ?? `failed (${res.status})`] })), res.status);
    },
  }));
}
