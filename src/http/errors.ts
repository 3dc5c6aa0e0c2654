/**
 * The generic answers for failures, the same on every route: 503 + Retry-After when the
 * database is not answering, 500 otherwise. JSON for API clients, a short HTML page for
 * browsers; never a stack trace, a path or a port (the detail goes to the log).
 */
import { isStoreUnavailable } from "../store/postgres/unavailable.ts";
import { BodyTooSlow } from "../ingest/body.ts";
import { tooSlowResponse } from "./body-pace.ts";
import { LogLimiter } from "../log-limiter.ts";

/** Seconds a client is told to wait before retrying while the database is unavailable. */
export const STORE_RETRY_AFTER_S = 5;

const PAGE = (title: string, text: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>` +
  `<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto"><h1>${title}</h1><p>${text}</p></body></html>`;

function wantsHtml(req: Request | undefined): boolean {
  return !!req && (req.headers.get("accept") ?? "").includes("text/html") && !req.headers.get("hx-request");
}

export function storeUnavailableResponse(req?: Request): Response {
  const headers = { "retry-after": String(STORE_RETRY_AFTER_S), "cache-control": "no-store" };
  if (wantsHtml(req)) {
    return new Response(PAGE("Service unavailable", "The database is not answering. Try again in a few seconds."), {
      status: 503,
      headers: { ...headers, "content-type": "text/html; charset=utf-8" },
    });
  }
  return new Response(JSON.stringify({ error: { code: "store_unavailable", message: "the database is not answering; retry later" } }), {
    status: 503,
    headers: { ...headers, "content-type": "application/json" },
  });
}

export function internalErrorResponse(req?: Request): Response {
  if (wantsHtml(req)) {
    return new Response(PAGE("Internal error", "The request failed. The server log has the details."), {
      status: 500,
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
    });
  }
  return new Response(JSON.stringify({ error: { code: "internal", message: "internal error" } }), {
    status: 500,
    headers: { "content-type": "application/json" },
  });
}

const unavailableLog = new LogLimiter(10_000);

/** During an outage every request fails the same way: one log line per 10 s, with a count. */
function logUnavailable(error: unknown): void {
  const quieted = unavailableLog.next();
  if (quieted === undefined) return;
  console.error(`request answered 503, database unavailable: ${error instanceof Error ? error.message : String(error)}${quieted ? ` (and ${quieted} more in the last 10 s)` : ""}`);
}

/** The answer for an error no route handled; the log gets the detail, never the client. */
export function errorResponse(error: unknown, req?: Request): Response {
  if (isStoreUnavailable(error)) {
    logUnavailable(error);
    return storeUnavailableResponse(req);
  }
  // a client that fell behind the body pace (src/http/body-pace.ts): counted, not logged per request
  if (error instanceof BodyTooSlow) return tooSlowResponse(error);
  console.error(`request failed: ${error instanceof Error ? error.stack : String(error)}`);
  return internalErrorResponse(req);
}
