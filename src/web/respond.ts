/**
 * Responses the console sends: full pages in the one layout, partials for htmx, redirects that
 * work with and without htmx, and the security headers every response carries.
 */
import type { ConsoleRequest } from "./route.ts";
import { can } from "./route.ts";
import type { Renderer, SafeHtml } from "./render.ts";

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

export function securityHeaders(h: Headers): Headers {
  h.set("content-security-policy", CSP);
  h.set("x-content-type-options", "nosniff");
  h.set("x-frame-options", "DENY");
  h.set("referrer-policy", "no-referrer");
  h.set("strict-transport-security", "max-age=31536000");
  h.set("cross-origin-opener-policy", "same-origin");
  if (!h.has("cache-control")) h.set("cache-control", "no-store");
  return h;
}

/** A JSON answer with the console's security headers. */
export const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v), { status, headers: securityHeaders(new Headers({ "content-type": "application/json" })) });

export function html(body: SafeHtml | string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(String(body), {
    status,
    headers: securityHeaders(new Headers({ "content-type": "text/html; charset=utf-8", ...headers })),
  });
}

/** After a successful POST: htmx follows HX-Redirect, a plain form follows the 303. */
export function done(req: ConsoleRequest, location: string): Response {
  if (req.htmx.request) return new Response(null, { status: 204, headers: securityHeaders(new Headers({ "hx-redirect": location })) });
  return new Response(null, { status: 303, headers: securityHeaders(new Headers({ location })) });
}

/** Sends the browser elsewhere (sign-in, the next step): the same mechanics as done(). */
export const redirect = done;

interface NavItem {
  href: string;
  label: string;
  access: string;
}

const NAV: NavItem[] = [
  { href: "/hosts", label: "Fleet", access: "hosts.view" },
  { href: "/charts", label: "Charts", access: "metrics.view" },
  { href: "/inventory", label: "Inventory", access: "inventory.view" },
  { href: "/logs", label: "Logs", access: "logs.view" },
  { href: "/security", label: "Security", access: "compliance.view" },
  { href: "/alerts", label: "Alerts", access: "alerts.view" },
  { href: "/services", label: "Services", access: "services.view" },
  { href: "/backups", label: "Backups", access: "backups.view" },
  { href: "/enrollment", label: "Enrollment", access: "agents.enroll" },
  { href: "/users", label: "Users", access: "users.view" },
  { href: "/roles", label: "Roles", access: "roles.view" },
  { href: "/sessions", label: "Sessions", access: "signed-in" },
  { href: "/tokens", label: "API tokens", access: "api.tokens.view" },
  { href: "/ai/approvals", label: "AI approvals", access: "ai.assistant.act" },
  { href: "/audit", label: "Audit log", access: "audit.view" },
  { href: "/settings", label: "Settings", access: "settings.view" },
  { href: "/sso", label: "Single sign-on", access: "sso.view" },
];

export interface Pages {
  /** A whole page, or only its content for htmx requests that target #main. */
  page(req: ConsoleRequest, view: string, title: string, data: object, status?: number): Response;
  /** One fragment (a partial endpoint). */
  partial(view: string, data: object, status?: number, headers?: Record<string, string>): Response;
  /** Validation messages for a form: the errors fragment for htmx, a page otherwise. */
  formErrors(req: ConsoleRequest, problems: string[], status?: number): Response;
  forbidden(req: ConsoleRequest, permission: string): Response;
  notFound(req: ConsoleRequest, what: string): Response;
  render(view: string, data: object): SafeHtml;
}

/** `license`: its warnings show as a banner on every page to users with system.license.view. */
export function createPages(views: Renderer, license?: { current(): { warnings: string[] } | null }): Pages {
  const pages: Pages = {
    render: (view, data) => views.render(view, data),
    page(req, view, title, data, status = 200) {
      const content = views.render(view, { ...data, csrf: req.csrf });
      // htmx (not boosted): only the content, swapped into #main whatever element asked
      if (req.htmx.request && !req.htmx.boosted) {
        return html(content, status, req.htmx.target === "main" ? {} : { "hx-retarget": "#main", "hx-reswap": "innerHTML" });
      }
      const path = req.url.pathname;
      const signedIn = req.session?.stage === "full";
      const nav = signedIn
        ? NAV.filter((n) => n.access === "signed-in" || can(req, n.access)).map((n) => ({
            ...n, active: path === n.href || path.startsWith(`${n.href}/`),
          }))
        : [];
      const licenseWarnings = signedIn && license && can(req, "system.license.view") ? (license.current()?.warnings ?? []) : [];
      return html(views.render("layout", {
        title,
        licenseWarnings,
        content,
        nav,
        signedIn,
        username: req.user?.username ?? "",
        csrfHeaders: JSON.stringify({ "X-CSRF-Token": req.csrf }),
        csrf: req.csrf,
      }), status);
    },
    partial: (view, data, status = 200, headers = {}) => html(views.render(view, data), status, headers),
    formErrors(req, problems, status = 422) {
      if (req.htmx.request) return html(views.render("partials/form-errors", { problems }), status);
      return pages.page(req, "pages/error", "Please correct the form", { heading: "Please correct the form", problems, back: req.raw.headers.get("referer") ? true : false }, status);
    },
    forbidden(req, permission) {
      const data = { heading: "Not allowed", message: `Your roles do not grant the permission ${permission}.`, problems: [] };
      if (req.htmx.request && !req.htmx.boosted) return html(views.render("partials/form-errors", { problems: [data.message] }), 403);
      return pages.page(req, "pages/error", "Not allowed", data, 403);
    },
    notFound(req, what) {
      return pages.page(req, "pages/error", "Not found", { heading: "Not found", message: `${what} does not exist.`, problems: [] }, 404);
    },
  };
  return pages;
}
