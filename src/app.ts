/**
 * Builds the Elysia app from feature plugins. No listen(): src/server.ts serves it, tests call
 * app.handle(). Errors become a generic 500 (or 503 + Retry-After when the database is unavailable) that
 * names no internals; the detail goes to the log.
 */
import { Elysia, type AnyElysia } from "elysia";
import { errorResponse } from "./http/errors.ts";

const NOT_FOUND_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not found · ServerMind</title><link rel="icon" href="/assets/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/assets/console.css"><script src="/assets/console.js"></script></head>
<body><a class="skip-link" href="#main">Skip to content</a><main id="main" tabindex="-1"><section class="card narrow" id="not-found"><h1>Not found</h1><p>There is no page at this address.</p>
<p><a href="/hosts">Back to the console</a></p></section></main></body></html>
`;
/** The "Not found" page loads the console's own stylesheet and script (theme, skip link) and nothing else. */
const NOT_FOUND_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export function createApp(plugins: AnyElysia[]) {
  let app = new Elysia({ name: "servermind" }).onError(({ code, error, request }) => {
    if (code === "NOT_FOUND") {
      // a person in a browser gets a page; API clients and agents get JSON
      const path = new URL(request.url).pathname;
      if (!path.startsWith("/api/") && /text\/html/.test(request.headers.get("accept") ?? "")) {
        return new Response(NOT_FOUND_PAGE, { status: 404, headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": NOT_FOUND_CSP } });
      }
      return new Response(JSON.stringify({ error: { code: "not_found", message: "no such route" } }), {
        status: 404,
        headers: { "content-type": "application/json" },
      });
    }
    if (code === "PARSE" || code === "VALIDATION") {
      return new Response(JSON.stringify({ error: { code: "bad_request", message: error instanceof Error ? error.message : String(error) } }), {
        status: 400,
        headers: { "content-type": "application/json" },
      });
    }
    return errorResponse(error, request);
  });
  for (const p of plugins) app = app.use(p) as typeof app;
  return app;
}
