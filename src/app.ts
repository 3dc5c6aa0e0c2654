/**
 * Builds the Elysia app from feature plugins. No listen(): src/server.ts serves it, tests call
 * app.handle(). Errors become a generic 500 (or 503 + Retry-After when the database is unavailable) that
 * names no internals; the detail goes to the log.
 */
import { Elysia, type AnyElysia } from "elysia";
import { errorResponse } from "./http/errors.ts";

export function createApp(plugins: AnyElysia[]) {
  let app = new Elysia({ name: "servermind" }).onError(({ code, error, request }) => {
    if (code === "NOT_FOUND") {
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
