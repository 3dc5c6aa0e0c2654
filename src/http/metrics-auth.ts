/**
 * /metrics needs a credential: `Authorization: Bearer <SERVERMIND_METRICS_TOKEN>`. Without a
 * configured token the endpoint is off (404 naming the setting), so a fresh install exposes no
 * internals; with one, a missing or wrong bearer gets 401. Compared in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (s: string) => createHash("sha256").update(s).digest();

function json(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message } }), { status, headers: { "content-type": "application/json", ...headers } });
}

/** For a /metrics request: null when allowed, else the refusal. Other paths: null. */
export function metricsGate(req: Request, token: string): Response | null {
  const path = req.url.slice(req.url.indexOf("/", req.url.indexOf("//") + 2)).split("?")[0];
  if (path !== "/metrics") return null;
  if (!token) return json(404, "not_found", "metrics are off: set SERVERMIND_METRICS_TOKEN and scrape with Authorization: Bearer <token>");
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  if (m && timingSafeEqual(digest(m[1]!), digest(token))) return null;
  return json(401, "unauthorized", "/metrics needs Authorization: Bearer <SERVERMIND_METRICS_TOKEN>", { "www-authenticate": 'Bearer realm="metrics"' });
}
