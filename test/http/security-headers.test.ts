/**
 * Issue 12, finding 7: every answer of the real server carries the security headers (console
 * HTML, JSON, 404, /metrics, /install.sh, enrollment errors, the agent endpoints), /metrics needs its bearer token,
 * and the session cookie is a `__Host-` cookie. The server runs as the least-privilege database
 * role here, as src/main.ts runs it.
 */
import { test, expect, afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { startServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { consolePlugin, startConsole } from "../../src/web/plugin.ts";
import { downloadsPlugin } from "../../src/downloads/routes.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { SESSION_COOKIE } from "../../src/auth/session.ts";
import { cookie } from "../../src/web/guard.ts";
import { testDatabase } from "../support/db.ts";

const TOKEN = "scrape-me-3f9c";
const db = await testDatabase(2);
for (const t of timeSeriesTables(2, 2)) await ensurePartitions(db.sql, t);
const sql = createPgClient(await db.runtimeUrl(), 6);
const dataDir = mkdtempSync(join(tmpdir(), "servermind-headers-"));
const cert = createSelfSigned(["127.0.0.1", "localhost"]);
const tls = { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" };

function serve(env: Record<string, string>) {
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir, ...env });
  const deps = { sql, config, dataDir, serverFingerprint: cert.fingerprint };
  return { config, deps, server: startServer({ config, sql, cert: tls, plugins: [consolePlugin(deps), downloadsPlugin({ distDir: join(dataDir, "dist"), certPem: cert.certPem, publicUrl: config.publicUrl })] }) };
}

const console_ = await startConsole({ sql, config: loadConfig({}), dataDir, serverFingerprint: cert.fingerprint }, () => {});
const withToken = serve({ SERVERMIND_METRICS_TOKEN: TOKEN });
const noToken = serve({});
afterAll(async () => {
  console_.stop();
  await withToken.server.stop();
  await noToken.server.stop();
  await sql.end();
  await db.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

const get = (base: string, path: string, init: RequestInit = {}) => fetch(`${base}${path}`, { ...init, tls: { rejectUnauthorized: false } } as RequestInit);

function expectSecure(res: Response, what: string) {
  const h = res.headers;
  expect([what, h.get("strict-transport-security")]).toEqual([what, "max-age=31536000"]);
  expect([what, h.get("x-content-type-options")]).toEqual([what, "nosniff"]);
  expect([what, h.get("referrer-policy")]).toEqual([what, "no-referrer"]);
  expect([what, h.get("x-frame-options")]).toEqual([what, "DENY"]);
  expect([what, h.get("content-security-policy") ?? ""]).toEqual([what, expect.stringContaining("frame-ancestors 'none'")]);
}

test("a sweep of representative paths: every answer carries HSTS, nosniff, Referrer-Policy, X-Frame-Options and a CSP", async () => {
  const base = withToken.server.url;
  const cases: Array<[string, string, RequestInit?]> = [
    ["console page (HTML)", "/login"],
    ["console redirect", "/hosts"],
    ["JSON health", "/healthz"],
    ["404", "/no/such/route"],
    ["metrics without token (401)", "/metrics"],
    ["metrics with token", "/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }],
    ["installer script", "/install.sh"],
    ["enrollment error (JSON 400)", "/api/v1/enroll", { method: "POST", body: "{", headers: { "content-type": "application/json" } }],
    ["asset", "/assets/console.css"],
    // the agent endpoints, served by Bun's router ahead of the app
    ["ingest refusal (empty body)", "/api/v1/ingest", { method: "POST", body: new Uint8Array(0) }],
    ["ingest refusal (garbage)", "/api/v1/ingest", { method: "POST", body: new Uint8Array(80).fill(7) }],
    ["session refusal", "/api/v1/session", { method: "POST", body: new Uint8Array(10) }],
    ["stream without upgrade (426)", "/api/v1/stream"],
  ];
  for (const [what, path, init] of cases) {
    const res = await get(base, path, { redirect: "manual", ...init });
    await res.arrayBuffer();
    expect([what, res.status < 500]).toEqual([what, true]);
    expectSecure(res, what);
  }
  // console HTML keeps its own CSP (scripts from self), everything else gets the deny-all one
  expect((await get(base, "/login")).headers.get("content-security-policy")).toContain("script-src 'self'");
  expect((await get(base, "/healthz")).headers.get("content-security-policy")).toStartWith("default-src 'none'");
});

test("every asset a console page and the 404 page link (styles, scripts, the tab's icon) is served, none from elsewhere", async () => {
  const base = withToken.server.url;
  const linked = new Set<string>();
  for (const path of ["/login", "/no/such/route"]) {
    const html = await (await get(base, path, { headers: { accept: "text/html" } })).text();
    expect([path, html]).toEqual([path, expect.stringContaining('rel="icon" href="/assets/favicon.svg"')]);
    for (const m of html.matchAll(/<(?:link|script)\b[^>]*\b(?:href|src)="([^"]+)"/g)) linked.add(m[1]!);
  }
  expect([...linked].filter((u) => !u.startsWith("/assets/"))).toEqual([]);
  expect(linked.size).toBeGreaterThanOrEqual(6);
  for (const u of linked) {
    const res = await get(base, u);
    const type = res.headers.get("content-type") ?? "";
    expect([u, res.status, (await res.arrayBuffer()).byteLength > 0]).toEqual([u, 200, true]);
    expect([u, type]).toEqual([u, u.endsWith(".svg") ? "image/svg+xml" : u.endsWith(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8"]);
  }
});

test("/metrics: 401 without or with a wrong bearer token, 200 with the right one, 404 when no token is configured", async () => {
  const base = withToken.server.url;
  const none = await get(base, "/metrics");
  expect(none.status).toBe(401);
  expect(none.headers.get("www-authenticate")).toBe('Bearer realm="metrics"');
  expect((await none.json() as { error: { message: string } }).error.message).toContain("SERVERMIND_METRICS_TOKEN");
  expect((await get(base, "/metrics", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
  expect((await get(base, "/metrics?x=1", { headers: { authorization: `Basic ${btoa(`x:${TOKEN}`)}` } })).status).toBe(401);
  const ok = await get(base, "/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(ok.status).toBe(200);
  expect(await ok.text()).toMatch(/^# (HELP|TYPE) /m);
  const off = await get(noToken.server.url, "/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(off.status).toBe(404);
  expect(await off.text()).toContain("SERVERMIND_METRICS_TOKEN");
});

test("the session cookie is a __Host- cookie: Secure, Path=/, no Domain", () => {
  expect(SESSION_COOKIE).toStartWith("__Host-");
  const c = cookie(SESSION_COOKIE, "t", 60);
  expect(c).toStartWith(`${SESSION_COOKIE}=t;`);
  expect(c).toContain("; Path=/;");
  expect(c).toContain("; Secure");
  expect(c).not.toMatch(/domain=/i);
});
