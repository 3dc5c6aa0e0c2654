/**
 * The headers every HTTP answer of the server carries, set in one place: the outermost fetch of
 * src/server.ts. Console pages set their own, stricter-for-HTML CSP (src/web/respond.ts) and keep
 * it; anything without a CSP (JSON, 404s, /metrics, /install.sh, downloads) gets one that allows
 * nothing, since none of those is meant to render as a page.
 */
export const DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const ALWAYS: Array<[string, string]> = [
  ["strict-transport-security", "max-age=31536000"],
  ["x-content-type-options", "nosniff"],
  ["referrer-policy", "no-referrer"],
  ["x-frame-options", "DENY"],
];

/** Adds the headers a response lacks (never overriding one a route chose). */
export function withSecurityHeaders(res: Response): Response {
  let h = res.headers;
  try {
    h.set("x-content-type-options", "nosniff");
  } catch {
    // immutable headers (Response.redirect(), a proxied fetch): answer with a mutable copy
    res = new Response(res.body, { status: res.status, statusText: res.statusText, headers: new Headers(res.headers) });
    h = res.headers;
  }
  for (const [k, v] of ALWAYS) if (!h.has(k)) h.set(k, v);
  if (!h.has("content-security-policy")) h.set("content-security-policy", DEFAULT_CSP);
  return res;
}
