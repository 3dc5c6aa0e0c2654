/**
 * The access matrix, generated from the router: every route the console and downloads plugins
 * mount (read from Elysia's own route list, so a route added anywhere is covered) × eight
 * principals (seven with a session, one with an API token scoped to group:web) × {a host in the
 * principal's scope, a host outside it}, against the real server
 * (TLS, HTTP/1.1) over a real PostgreSQL. The expected outcome of each case is derived from the
 * route's declaration (access, hostData) and the principal's roles:
 *   - signed out, non-public route: redirect to /login; an API token outside /api/: 401;
 *   - signed in without the route's permission: 403 "not allowed" (HTML, or JSON on /api/);
 *   - a route that names one host (hostData "host" / "violation"): 404, exactly as a host that does
 *     not exist, when the host lies outside the scope of the route's permission; otherwise past the
 *     guard (not 403-forbidden, not 404, no 5xx);
 *   - a fleet route (hostData "fleet"): past the guard, and a scoped principal's response never names
 *     the out-of-scope host;
 *   - everything else: past the guard, no 5xx.
 * A mounted route without a declaration fails the test.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { startConsole } from "../../src/web/plugin.ts";
import { BUILTIN_ROLES, PERMISSIONS } from "../../src/auth/permissions.ts";
import { HostScope, type RoleScope } from "../../src/auth/host-scope.ts";
import { createRole, roleIdByName } from "../../src/auth/roles.ts";
import { createApiToken } from "../../src/auth/api-tokens.ts";
import { createUser } from "../../src/auth/users.ts";
import { createSession, SESSION_COOKIE } from "../../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { recordScan } from "../../src/security/posture.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { commandsWithoutAgents } from "../support/security-views.ts";
import { mountedRouteTables, type DeclaredRoute as Declared } from "../support/mounted-routes.ts";

const builtin = (name: string) => BUILTIN_ROLES.find((r) => r.name === name)!.permissions;
const SCOPE = ["group:web"];
/**
 * The principals: name and roles (permissions + scope tags); null roles = signed out. A token
 * principal calls with `Authorization: Bearer` and no cookie: its owner is an admin, the token
 * carries `token.permissions` over `token.tags`, so its roles are what tokenGrants leaves.
 */
const PRINCIPALS: Array<{ name: string; roles: RoleScope[] | null; token?: { permissions: string[]; tags: string[] } }> = [
  { name: "anonymous", roles: null },
  { name: "no-roles", roles: [] },
  { name: "viewer", roles: [{ permissions: builtin("viewer"), tags: [] }] },
  { name: "scoped-viewer", roles: [{ permissions: builtin("viewer"), tags: SCOPE }] },
  { name: "scoped-operator", roles: [{ permissions: builtin("operator"), tags: SCOPE }] },
  { name: "helpdesk", roles: [{ permissions: PERMISSIONS.map((p) => p.id).filter((p) => p.startsWith("users.")), tags: [] }] },
  { name: "admin", roles: [{ permissions: builtin("admin"), tags: [] }] },
  { name: "token-web-operator", roles: [{ permissions: builtin("operator"), tags: SCOPE }], token: { permissions: builtin("operator"), tags: SCOPE } },
];
const OUT_MARKER = "db-out-of-scope-9";

let db: TestDb;
let server: RunningServer;
let stopConsole: () => void;
let dataDir: string;
let mounted: Array<{ method: string; path: string }>;
let declared: Declared[];
const hosts: Record<"in" | "out", { id: number; tags: string[]; violation: number }> = {} as any;
const sessions: Record<string, { token: string; csrf: string } | null> = {};
const bearers: Record<string, string> = {};

async function host(hostname: string, tags: string[], fill: number) {
  const [a] = await db.sql`insert into agents (hostname, public_key, tags, last_seen) values (${hostname}, ${Buffer.alloc(32, fill)}, ${tags}, now()) returning id`;
  const id = Number(a!.id);
  await recordScan(db.sql, id, new Date(Date.now() - 60_000), { results: [{ id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "yes" }] });
  const [v] = await db.sql`select id from cis_violations where agent_id = ${id}`;
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${id}, 1, now(), 3, 'sshd', ${`log line of ${hostname}`})`;
  return { id, tags, violation: Number(v!.id) };
}

beforeAll(async () => {
  db = await testDatabase(8);
  dataDir = mkdtempSync(join(tmpdir(), "servermind-matrix-"));
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir });
  const deps = { sql: db.sql, config, dataDir, serverFingerprint: cert.fingerprint, security: { ...commandsWithoutAgents(), dispatch: async () => ({ ok: true }) } };
  stopConsole = (await startConsole(deps, () => {})).stop;
  const tables = mountedRouteTables(deps);
  const { consoleApp, downloads } = tables;
  ({ mounted, declared } = tables);
  server = startServer({
    config, sql: db.sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
    plugins: [consoleApp, downloads],
  });
  hosts.in = await host("web-in-scope-1", ["group:web"], 1);
  hosts.out = await host(OUT_MARKER, ["group:db"], 2);
  for (const p of PRINCIPALS) {
    if (!p.roles) {
      sessions[p.name] = null;
      continue;
    }
    const roleIds = [];
    if (p.token) {
      // an admin owner; the token narrows it to its permissions and tags
      const userId = await createUser(db.sql, { username: `m-${p.name}`, password: "Correct-Horse-9-Battery", roleIds: [(await roleIdByName(db.sql, "admin"))!] }, DEFAULT_SETTINGS.password);
      bearers[p.name] = (await createApiToken(db.sql, userId, { name: "matrix", permissions: p.token.permissions, scopeTags: p.token.tags, expiresInDays: 1, aiClient: false, clientName: "" })).token;
      sessions[p.name] = null;
      continue;
    }
    for (const [i, r] of p.roles.entries()) roleIds.push(await createRole(db.sql, `m-${p.name}-${i}`, "", [...r.permissions], [...r.tags]));
    const userId = await createUser(db.sql, { username: `m-${p.name}`, password: "Correct-Horse-9-Battery", roleIds }, DEFAULT_SETTINGS.password);
    const { token, session } = await createSession(db.sql, userId, "full", "127.0.0.1", "matrix", DEFAULT_SETTINGS.session);
    await db.sql`update console_sessions set reauth_at = now() where id = ${session.id}`;
    sessions[p.name] = { token, csrf: session.csrf_token };
  }
}, 60_000);

afterAll(async () => {
  stopConsole?.();
  await server?.stop();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

type Outcome = "login" | "forbidden" | "not-found" | "allowed";

/** What the declaration says this principal gets for this host. */
function expected(r: Declared, p: (typeof PRINCIPALS)[number], which: "in" | "out"): Outcome {
  if (r.access === "public") return "allowed";
  if (!p.roles) return "login";
  // an API token is refused (401) everywhere but /api/
  if (p.token && !r.path.startsWith("/api/")) return "login";
  if (r.access === "signed-in") return "allowed";
  if (!p.roles.some((role) => role.permissions.includes(r.access))) return "forbidden";
  const hostData = r.hostData ?? "none";
  if (hostData === "host" || hostData === "violation") return HostScope.forPermission(p.roles, r.access).covers(hosts[which].tags) ? "allowed" : "not-found";
  return "allowed";
}

function concrete(r: Declared, which: "in" | "out"): string {
  const h = hosts[which];
  const id = r.hostData === "host" ? h.id : r.hostData === "violation" ? h.violation : 999_999;
  return r.path.replace(":id", String(id)).replace(":file", "console.css").replace(":target", "linux-x64").replace(/:[a-z]+/g, "999999");
}

/** Form values that keep the fixtures as they are (a tag edit writes the host's own tags back). */
function form(r: Declared, which: "in" | "out"): Record<string, string> {
  if (r.path === "/hosts/:id/tags") return { tags: hosts[which].tags.join(",") };
  return {};
}

async function run(r: Declared, p: (typeof PRINCIPALS)[number], which: "in" | "out") {
  const s = sessions[p.name];
  const headers: Record<string, string> = { "user-agent": "route-matrix" };
  if (s) headers.cookie = `${SESSION_COOKIE}=${s.token}`;
  if (bearers[p.name]) headers.authorization = `Bearer ${bearers[p.name]}`;
  let body: string | undefined;
  if (r.method === "POST") {
    if (s) headers["x-csrf-token"] = s.csrf;
    headers["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(form(r, which)).toString();
  }
  const res = await fetch(server.url + concrete(r, which), { method: r.method, headers, body, redirect: "manual", tls: { rejectUnauthorized: false } } as RequestInit);
  const text = await res.text();
  let got: Outcome = "allowed";
  if (res.status === 303 && (res.headers.get("location") ?? "").startsWith("/login")) got = "login";
  else if (res.status === 401 && (res.headers.get("www-authenticate") ?? "").startsWith("Bearer")) got = "login";
  else if (res.status === 403 && (text.includes("do not grant the permission") || text.includes('"code":"forbidden"'))) got = "forbidden";
  else if (res.status === 404) got = "not-found";
  return { status: res.status, got, text };
}

/**
 * Refusals must be exact; "allowed" means past the guard. A route naming a host must then not
 * answer 404; other routes may (a user id that does not exist), and public routes may redirect
 * (/ and /setup send you to the sign-in page); /logout ends the session, so its second request
 * of a principal meets the sign-in redirect.
 */
function matches(r: Declared, want: Outcome, got: Outcome): boolean {
  if (want !== "allowed") return got === want;
  if (r.access === "public") return got !== "forbidden";
  if (r.hostData === "host" || r.hostData === "violation") return got === "allowed";
  if (r.path === "/logout") return got === "allowed" || got === "login";
  return got === "allowed" || got === "not-found";
}

test("the access matrix: every mounted route × 8 principals × {host in scope, host out of scope}", async () => {
  // every mounted route is declared, and every declaration is mounted
  const key = (r: { method: string; path: string }) => `${r.method} ${r.path}`;
  const declaredKeys = new Set(declared.map(key));
  expect(mounted.map(key).filter((k) => !declaredKeys.has(k))).toEqual([]);
  expect(declared.map(key).filter((k) => !mounted.some((m) => key(m) === k))).toEqual([]);
  for (const r of declared) {
    // a route naming a host in its path must say so, so the guard resolves it within the scope
    if (/^\/(hosts|agents|api\/security\/hosts|api\/hosts)\/:id/.test(r.path)) expect({ route: key(r), hostData: r.hostData }).toEqual({ route: key(r), hostData: "host" });
    if (r.hostData && r.hostData !== "none") expect({ route: key(r), permission: r.access !== "public" && r.access !== "signed-in" }).toEqual({ route: key(r), permission: true });
  }

  const cases: Array<{ r: Declared; p: (typeof PRINCIPALS)[number]; which: "in" | "out" }> = [];
  for (const r of declared) for (const p of PRINCIPALS) for (const which of ["in", "out"] as const) cases.push({ r, p, which });
  const last = (c: (typeof cases)[number]) => c.r.path === "/logout"; // ends the session: after everything else
  const t0 = performance.now();
  const results: Array<{ c: (typeof cases)[number]; status: number; got: Outcome; text: string }> = [];
  const BATCH = 8; // requests in flight at once
  for (const group of [cases.filter((c) => !last(c)), cases.filter(last)]) {
    for (let i = 0; i < group.length; i += BATCH) {
      results.push(...(await Promise.all(group.slice(i, i + BATCH).map(async (c) => ({ c, ...(await run(c.r, c.p, c.which)) })))));
    }
  }
  const ms = performance.now() - t0;
  console.log(`route matrix: ${declared.length} routes × ${PRINCIPALS.length} principals × 2 hosts = ${cases.length} cases in ${(ms / 1000).toFixed(1)} s`);

  const wrong: string[] = [];
  let leaksChecked = 0;
  let unscopedSawOut = 0;
  for (const { c, status, got, text } of results) {
    const want = expected(c.r, c.p, c.which);
    const label = `${c.p.name} ${c.r.method} ${c.r.path} (host ${c.which} of scope) -> ${status}`;
    if (status >= 500) wrong.push(`${label}: server error`);
    else if (!matches(c.r, want, got)) wrong.push(`${label}: got ${got}, declared ${want}`);
    if (got === "allowed" && c.r.hostData === "fleet" && c.r.method === "GET" && c.p.roles) {
      const scoped = !HostScope.forPermission(c.p.roles, c.r.access).covers(hosts.out.tags);
      if (scoped) {
        leaksChecked++;
        if (text.includes(OUT_MARKER)) wrong.push(`${label}: names the out-of-scope host`);
      } else if (text.includes(OUT_MARKER)) unscopedSawOut++;
    }
  }
  expect(wrong).toEqual([]);
  expect(leaksChecked).toBeGreaterThan(10); // the fleet pages were really checked for scoped principals
  expect(unscopedSawOut).toBeGreaterThan(5); // and the marker does show where the scope allows it
  // the matrix holds every kind of outcome, so no expectation is vacuous
  const outcomes = new Set(results.map((x) => x.got));
  for (const o of ["login", "forbidden", "not-found", "allowed"] as const) expect(outcomes).toContain(o);
  // no command reached the out-of-scope host from a scoped principal
  const [{ n }] = await db.sql`select count(*)::int as n from security_commands where agent_id = ${hosts.out.id} and (requested_by like '%m-scoped-%' or requested_by like '%m-token-%')`;
  expect(n).toBe(0);
  expect(ms).toBeLessThan(60_000);
}, 120_000);
