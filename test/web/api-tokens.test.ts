/**
 * Personal API tokens and the JSON API, against the real server (TLS) and PostgreSQL: creation
 * (shown once, stored hashed, within the creator's permissions and scope), bearer use on /api/
 * only, re-intersection with the owner's current roles, host scope, expiry, revocation, last
 * use, dangerous operations refused, audit actor, throttling of wrong tokens, and the OpenAPI
 * document generated from the route declarations.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { consolePlugin, consoleRoutes, createServices, startConsole } from "../../src/web/plugin.ts";
import { BUILTIN_ROLES, PERMISSIONS } from "../../src/auth/permissions.ts";
import { createRole, setUserRoles } from "../../src/auth/roles.ts";
import { createUser, deleteUser, setDisabled } from "../../src/auth/users.ts";
import { createSession, SESSION_COOKIE } from "../../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { recordScan } from "../../src/security/posture.ts";
import { BEARER_FAILURE_LIMIT } from "../../src/web/bearer.ts";
import { tokenGrants } from "../../src/auth/api-tokens.ts";
import { CREATE_TOKEN_PHRASE } from "../../src/web/tokens/routes.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { commandsWithoutAgents } from "../support/security-views.ts";

const builtin = (name: string) => BUILTIN_ROLES.find((r) => r.name === name)!.permissions;

let db: TestDb;
let server: RunningServer;
let stopConsole: () => void;
let dataDir: string;
let routes: ReturnType<typeof consoleRoutes>;
const hosts = { web: 0, db: 0, webViolation: 0, dbViolation: 0 };
const users: Record<string, { id: number; cookie: string; csrf: string }> = {};
const roles: Record<string, number> = {};

async function host(hostname: string, tags: string[], fill: number) {
  const [a] = await db.sql`insert into agents (hostname, public_key, tags, last_seen) values (${hostname}, ${Buffer.alloc(32, fill)}, ${tags}, now()) returning id`;
  const id = Number(a!.id);
  await recordScan(db.sql, id, new Date(Date.now() - 60_000), { results: [{ id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "yes" }] });
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${id}, 1, now(), 3, 'sshd', ${`log line of ${hostname}`})`;
  await db.sql`insert into metric_latest (agent_id, ts, names, vals) values (${id}, now(), ${["cpu.usage_pct", "mem.used_pct"]}, ${[12.5, 40]})`;
  const [v] = await db.sql`select id from cis_violations where agent_id = ${id}`;
  return { id, violation: Number(v!.id) };
}

async function user(name: string, roleIds: number[]) {
  const id = await createUser(db.sql, { username: name, password: "Correct-Horse-9-Battery", roleIds }, DEFAULT_SETTINGS.password);
  const { token, session } = await createSession(db.sql, id, "full", "127.0.0.1", "tokens-test", DEFAULT_SETTINGS.session);
  users[name] = { id, cookie: `${SESSION_COOKIE}=${token}`, csrf: session.csrf_token };
}

beforeAll(async () => {
  db = await testDatabase(6);
  dataDir = mkdtempSync(join(tmpdir(), "servermind-tokens-"));
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir });
  const deps = { sql: db.sql, config, dataDir, serverFingerprint: cert.fingerprint, security: { ...commandsWithoutAgents(), dispatch: async () => ({ ok: true }) } };
  stopConsole = (await startConsole(deps, () => {})).stop;
  const services = createServices(deps);
  routes = consoleRoutes(services);
  server = startServer({
    config, sql: db.sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
    plugins: [consolePlugin(deps, services)],
  });
  const w = await host("web-1", ["group:web"], 1);
  const d = await host("db-secret-1", ["group:db"], 2);
  hosts.web = w.id;
  hosts.db = d.id;
  hosts.webViolation = w.violation;
  hosts.dbViolation = d.violation;
  roles.admin = (await db.sql`select id from console_roles where name = 'admin'`)[0]!.id;
  roles.admin = Number(roles.admin);
  roles.operatorWeb = await createRole(db.sql, "operator-web", "", builtin("operator"), ["group:web"]);
  roles.viewer = Number((await db.sql`select id from console_roles where name = 'viewer'`)[0]!.id);
  roles.revoker = await createRole(db.sql, "token-revoker", "", ["api.tokens.view", "api.tokens.revoke"], []);
  await user("alice", [roles.admin]); // admin
  await user("bob", [roles.operatorWeb]); // operator scoped to group:web
  await user("carol", [roles.admin]); // demoted later
  await user("rita", [roles.revoker]); // may revoke tokens, covers nobody's roles
  await user("vera", [roles.viewer]); // no api.tokens.* permission
}, 60_000);

afterAll(async () => {
  stopConsole?.();
  await server?.stop();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(path: string, o: { method?: string; bearer?: string; as?: string; form?: Record<string, string | string[]>; json?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { "user-agent": "tokens-test", ...o.headers };
  if (o.bearer !== undefined) headers.authorization = `Bearer ${o.bearer}`;
  if (o.as) {
    headers.cookie = users[o.as]!.cookie;
    headers["x-csrf-token"] = users[o.as]!.csrf;
  }
  let body: string | undefined;
  if (o.form) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o.form)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
    body = p.toString();
    headers["content-type"] = "application/x-www-form-urlencoded";
  } else if (o.json !== undefined) {
    body = JSON.stringify(o.json);
    headers["content-type"] = "application/json";
  }
  const res = await fetch(server.url + path, { method: o.method ?? (body === undefined ? "GET" : "POST"), headers, body, redirect: "manual", tls: { rejectUnauthorized: false } } as RequestInit);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** Creates a token through the console page as `as`; returns the secret (or the refusal). */
async function createToken(as: string, f: { name: string; permissions: string[]; scope_tags?: string; expires_days?: string; ai_client?: boolean; client_name?: string }) {
  // creating a token is a dangerous operation: the typed phrase and the owner's password
  const form: Record<string, string | string[]> = { name: f.name, permissions: f.permissions, expires_days: f.expires_days ?? "30", scope_tags: f.scope_tags ?? "", confirm: CREATE_TOKEN_PHRASE, reauth: "Correct-Horse-9-Battery" };
  if (f.ai_client) {
    form.ai_client = "on";
    form.client_name = f.client_name ?? "";
  }
  const r = await call("/account/tokens", { as, form });
  const secret = /smp_[A-Za-z0-9_-]{43}/.exec(r.text)?.[0] ?? "";
  return { ...r, secret };
}

async function tokenRow(secret: string) {
  const [r] = await db.sql`select * from api_tokens where token_hash = ${createHash("sha256").update(secret).digest()}`;
  return r!;
}

describe("API tokens", () => {
  test("created once, stored as a hash only, listed with a hint", async () => {
    const r = await createToken("alice", { name: "grafana", permissions: ["hosts.view", "metrics.view"] });
    expect(r.status).toBe(201);
    expect(r.secret).toMatch(/^smp_[A-Za-z0-9_-]{43}$/);
    const row = await tokenRow(r.secret);
    expect(row.name).toBe("grafana");
    expect(Number(row.user_id)).toBe(users.alice!.id);
    expect(row.permissions).toEqual(["hosts.view", "metrics.view"]);
    expect(row.hint).toBe(r.secret.slice(0, 10));
    // nothing in the table holds the secret itself
    const [dump] = await db.sql`select string_agg(t::text, ' ') as all from api_tokens t`;
    expect(String(dump!.all)).not.toContain(r.secret.slice(10));
    expect(Buffer.from(row.token_hash).equals(createHash("sha256").update(r.secret).digest())).toBe(true);
    // the list shows the token, never its secret again
    const list = await call("/account/tokens", { as: "alice" });
    expect(list.status).toBe(200);
    expect(list.text).toContain("grafana");
    expect(list.text).toContain(r.secret.slice(0, 10));
    expect(list.text).not.toContain(r.secret);
    const [a] = await db.sql`select actor_name, category, success, details from audit_log where action = 'api_token.create' order by id desc limit 1`;
    expect(a).toMatchObject({ actor_name: "alice", category: "user_management", success: true });
    expect(JSON.stringify(a!.details)).not.toContain(r.secret);
  });

  test("bearer works on /api/ routes, not on pages, never with a cookie", async () => {
    const { secret } = await createToken("alice", { name: "reader", permissions: ["hosts.view", "logs.view"] });
    const me = await call("/api/me", { bearer: secret });
    expect(me.status).toBe(200);
    expect(me.json()).toMatchObject({ user: { username: "alice" }, token: { name: "reader", ai_client: false }, permissions: ["hosts.view", "logs.view"] });
    const list = await call("/api/hosts", { bearer: secret });
    expect(list.status).toBe(200);
    expect(list.json().hosts.map((h: { hostname: string }) => h.hostname).sort()).toEqual(["db-secret-1", "web-1"]);
    const logs = await call(`/api/hosts/${hosts.web}/logs`, { bearer: secret });
    expect(logs.status).toBe(200);
    expect(logs.json().logs[0].message).toBe("log line of web-1");
    // a permission the token was not given, though the owner holds it
    const metrics = await call(`/api/hosts/${hosts.web}/metrics/latest`, { bearer: secret });
    expect(metrics.status).toBe(403);
    expect(metrics.json().error.code).toBe("forbidden");
    // HTML pages refuse tokens
    for (const path of ["/hosts", `/hosts/${hosts.web}`, "/account/tokens", "/users"]) {
      const page = await call(path, { bearer: secret });
      expect({ path, status: page.status, code: page.json().error.code }).toEqual({ path, status: 401, code: "token_not_accepted" });
    }
    // a NUL in the query string is a 400 naming the parameter, as in a form
    const nul = await call("/api/hosts?q=a%00b", { bearer: secret });
    expect(nul.status).toBe(400);
    expect(nul.json().error).toMatchObject({ code: "bad_request", message: 'The query parameter "q" contains a NUL character, which is not allowed.' });
    // a cookie and a token together are refused
    const both = await call("/api/hosts", { bearer: secret, as: "alice" });
    expect(both.status).toBe(400);
    expect(both.json().error.code).toBe("ambiguous_credentials");
  });

  test("a token's permissions and scope lie within the creator's", async () => {
    const before = (await db.sql`select count(*)::int as n from api_tokens`)[0]!.n;
    // bob is an operator scoped to group:web: no users.* permission, no group:db hosts
    const perm = await createToken("bob", { name: "too-much", permissions: ["hosts.view", "users.delete"] });
    expect(perm.status).toBe(422);
    expect(perm.text).toContain("permissions you do not hold: users.delete");
    const scope = await createToken("bob", { name: "wide", permissions: ["hosts.view"], scope_tags: "group:db" });
    expect(scope.status).toBe(422);
    expect(scope.text).toContain("outside your host scope for hosts.view");
    const expiry = await createToken("bob", { name: "forever", permissions: ["hosts.view"], expires_days: "3650" });
    expect(expiry.status).toBe(422);
    expect((await db.sql`select count(*)::int as n from api_tokens`)[0]!.n).toBe(before);
    // the create form offers only what bob holds
    const page = await call("/account/tokens", { as: "bob" });
    expect(page.text).toContain('value="hosts.view"');
    expect(page.text).not.toContain('value="users.delete"');
    // within bob's scope: fine, and the token sees only group:web hosts
    const ok = await createToken("bob", { name: "web-reader", permissions: ["hosts.view"], scope_tags: "group:web" });
    expect(ok.status).toBe(201);
    const list = await call("/api/hosts", { bearer: ok.secret });
    expect(list.json().hosts.map((h: { hostname: string }) => h.hostname)).toEqual(["web-1"]);
    expect(list.text).not.toContain("db-secret-1");
  });

  test("host scope: out-of-scope hosts answer 404, as missing ones", async () => {
    const { secret } = await createToken("alice", { name: "web-only", permissions: ["hosts.view", "logs.view", "metrics.view", "compliance.view"], scope_tags: "group:web" });
    expect((await call(`/api/hosts/${hosts.web}`, { bearer: secret })).status).toBe(200);
    for (const path of [`/api/hosts/${hosts.db}`, `/api/hosts/${hosts.db}/logs`, `/api/hosts/${hosts.db}/metrics/latest`, `/api/security/hosts/${hosts.db}/cis`, "/api/hosts/987654"]) {
      const r = await call(path, { bearer: secret });
      expect({ path, status: r.status }).toEqual({ path, status: 404 });
    }
    const latest = await call(`/api/hosts/${hosts.web}/metrics/latest`, { bearer: secret });
    expect(latest.json().values).toEqual({ "cpu.usage_pct": 12.5, "mem.used_pct": 40 });
    const scores = await call("/api/security/scores", { bearer: secret });
    expect(scores.status).toBe(200);
    expect(scores.text).not.toContain("db-secret-1");
  });

  test("demoting the owner demotes the token at once; disabling the owner kills it", async () => {
    const { secret } = await createToken("carol", { name: "ops", permissions: ["hosts.view", "logs.view"] });
    expect((await call(`/api/hosts/${hosts.db}/logs`, { bearer: secret })).status).toBe(200);
    // carol becomes an operator scoped to group:web: the db host leaves the token's scope
    await setUserRoles(db.sql, users.carol!.id, [roles.operatorWeb]);
    expect((await call(`/api/hosts/${hosts.db}/logs`, { bearer: secret })).status).toBe(404);
    expect((await call(`/api/hosts/${hosts.web}/logs`, { bearer: secret })).status).toBe(200);
    // then a role without logs.view: the token loses logs.view too
    const noLogs = await createRole(db.sql, "hosts-only", "", ["hosts.view"], []);
    await setUserRoles(db.sql, users.carol!.id, [noLogs]);
    const r = await call(`/api/hosts/${hosts.web}/logs`, { bearer: secret });
    expect(r.status).toBe(403);
    expect(r.json().error.code).toBe("forbidden");
    expect((await call("/api/me", { bearer: secret })).json().permissions).toEqual(["hosts.view"]);
    await setDisabled(db.sql, users.carol!.id, true);
    const dead = await call("/api/hosts", { bearer: secret });
    expect(dead.status).toBe(401);
    expect(dead.headers.get("www-authenticate")).toContain("Bearer");
    // deleting the owner deletes the token
    await deleteUser(db.sql, users.carol!.id);
    expect((await db.sql`select count(*)::int as n from api_tokens where user_id = ${users.carol!.id}`)[0]!.n).toBe(0);
    expect((await call("/api/me", { bearer: secret })).status).toBe(401);
  });

  test("expiry and revocation end a token; last use is recorded at most once a minute", async () => {
    const { secret } = await createToken("alice", { name: "short", permissions: ["hosts.view"] });
    const row = await tokenRow(secret);
    expect(row.last_used_at).toBeNull();
    expect((await call("/api/hosts", { bearer: secret })).status).toBe(200);
    const used = await tokenRow(secret);
    expect(used.last_used_at).not.toBeNull();
    expect(used.last_used_ip).toBe("127.0.0.1");
    expect((await call("/api/hosts", { bearer: secret })).status).toBe(200);
    expect((await tokenRow(secret)).last_used_at.getTime()).toBe(used.last_used_at.getTime());
    // the list shows the last use
    expect((await call("/account/tokens", { as: "alice" })).text).toMatch(/s ago from 127\.0\.0\.1|min ago from 127\.0\.0\.1/);
    // expired
    await db.sql`update api_tokens set expires_at = now() - interval '1 second' where id = ${row.id}`;
    const expired = await call("/api/hosts", { bearer: secret });
    expect(expired.status).toBe(401);
    expect(expired.json().error.message).toContain("expired");
    // revoked by its owner in the console
    const second = await createToken("alice", { name: "to-revoke", permissions: ["hosts.view"] });
    const id = Number((await tokenRow(second.secret)).id);
    expect((await call("/api/hosts", { bearer: second.secret })).status).toBe(200);
    expect((await call(`/account/tokens/${id}/revoke`, { as: "bob", form: {} })).status).toBe(404); // not bob's
    expect((await call(`/account/tokens/${id}/revoke`, { as: "alice", form: {} })).status).toBe(303);
    const revoked = await call("/api/hosts", { bearer: second.secret });
    expect(revoked.status).toBe(401);
    expect(revoked.json().error.message).toContain("revoked");
    const [a] = await db.sql`select actor_name, success from audit_log where action = 'api_token.revoke' and success order by id desc limit 1`;
    expect(a).toMatchObject({ actor_name: "alice", success: true });
  });

  test("administrators see every token and revoke only owners they cover", async () => {
    const { secret } = await createToken("alice", { name: "admin-tool", permissions: ["hosts.view"] });
    const id = Number((await tokenRow(secret)).id);
    const all = await call("/tokens", { as: "rita" });
    expect(all.status).toBe(200);
    expect(all.text).toContain("admin-tool");
    expect((await call("/tokens", { as: "vera" })).status).toBe(403);
    // vera may not create tokens either, but sees her (empty) list
    expect((await call("/account/tokens", { as: "vera" })).text).not.toContain('id="new-token"');
    expect((await createToken("vera", { name: "nope", permissions: ["hosts.view"] })).status).toBe(403);
    // rita holds api.tokens.revoke but not what alice (admin) holds
    const refused = await call(`/tokens/${id}/revoke`, { as: "rita", form: {} });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("which you do not hold");
    expect((await call("/api/hosts", { bearer: secret })).status).toBe(200);
    const { secret: bobs } = await createToken("bob", { name: "bob-tool", permissions: ["hosts.view"] });
    const bobId = Number((await tokenRow(bobs)).id);
    expect((await call(`/tokens/${bobId}/revoke`, { as: "alice", form: {} })).status).toBe(303);
    expect((await call("/api/hosts", { bearer: bobs })).status).toBe(401);
  });

  test("token requests need no CSRF token, are audited as the token, and cannot do dangerous operations", async () => {
    const perms = ["compliance.view", "compliance.exceptions.edit", "compliance.remediate"];
    const { secret } = await createToken("alice", { name: "automation", permissions: perms });
    const id = Number((await tokenRow(secret)).id);
    const ack = await call(`/api/security/posture/violations/${hosts.webViolation}/ack`, { bearer: secret, json: { note: "known, tracked" } });
    expect(ack.status).toBe(200);
    const [a] = await db.sql`select actor_type, actor_id, actor_name, details from audit_log where action = 'cis.violation.acknowledge' order by id desc limit 1`;
    expect(a).toMatchObject({ actor_type: "user", actor_id: `token:${id}`, actor_name: "alice", details: { token: { id, name: "automation" } } });
    // a dry run changes nothing and is allowed; the real thing needs a person
    const dry = await call(`/api/security/hosts/${hosts.web}/remediate`, { bearer: secret, json: { controls: ["smx.ssh.root-login"] } });
    expect(dry.status).not.toBe(403);
    const real = await call(`/api/security/hosts/${hosts.web}/remediate`, { bearer: secret, json: { controls: ["smx.ssh.root-login"], dryRun: false, confirm: "remediate web-1" } });
    expect(real.status).toBe(403);
    expect(real.json().error.code).toBe("dangerous_by_token");
    const [d] = await db.sql`select actor_id, success, details from audit_log where action = 'dangerous.refused' order by id desc limit 1`;
    expect(d).toMatchObject({ actor_id: `token:${id}`, success: false, details: { reason: "api token" } });
    const [{ n }] = await db.sql`select count(*)::int as n from security_commands where requested_by like '%alice%' and args::text like '%"dryRun":false%'`;
    expect(n).toBe(0);
  });

  test("an AI client's token is audited as an ai actor on behalf of its owner", async () => {
    const missingName = await createToken("alice", { name: "mcp", permissions: ["compliance.view", "compliance.exceptions.edit"], ai_client: true });
    expect(missingName.status).toBe(422);
    const { secret, status } = await createToken("alice", { name: "mcp", permissions: ["compliance.view", "compliance.exceptions.edit"], ai_client: true, client_name: "claude-desktop" });
    expect(status).toBe(201);
    const row = await tokenRow(secret);
    expect(row).toMatchObject({ ai_client: true, client_name: "claude-desktop" });
    expect((await call("/api/me", { bearer: secret })).json().token).toMatchObject({ ai_client: true, client_name: "claude-desktop" });
    expect((await call(`/api/security/posture/violations/${hosts.dbViolation}/ack`, { bearer: secret, json: { note: "by ai" } })).status).toBe(200);
    const [a] = await db.sql`select actor_type, actor_id, actor_name, on_behalf_of from audit_log where actor_id = ${`token:${row.id}`} order by id desc limit 1`;
    expect(a).toMatchObject({ actor_type: "ai", actor_name: "claude-desktop", on_behalf_of: "alice" });
  });

  test("wrong tokens are refused with WWW-Authenticate and throttled per address", async () => {
    const { secret } = await createToken("alice", { name: "victim", permissions: ["hosts.view"] });
    await db.sql`delete from signin_throttle where key like 'tokip:%'`;
    const wrong = ["smp_" + "A".repeat(43), "not-a-token", ""];
    for (let i = 0; i < BEARER_FAILURE_LIMIT; i++) {
      const r = await call("/api/hosts", { bearer: wrong[i % wrong.length] });
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toStartWith("Bearer");
      expect(r.json().error.code).toBe("invalid_token");
    }
    // the window is open: even a valid token from this address waits
    const blocked = await call("/api/hosts", { bearer: secret });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    const [{ n }] = await db.sql`select count(*)::int as n from audit_log where action = 'api_token.rejected'`;
    expect(n).toBeGreaterThanOrEqual(BEARER_FAILURE_LIMIT);
    // session users are not affected by the token throttle
    expect((await call("/api/hosts", { as: "alice" })).status).toBe(200);
    await db.sql`delete from signin_throttle where key like 'tokip:%'`;
    expect((await call("/api/hosts", { bearer: secret })).status).toBe(200);
  });
});

describe("tokenGrants", () => {
  test("per role: permissions both hold, tags both allow", () => {
    const owner = {
      roles: ["a", "b"], permissions: new Set(["hosts.view", "logs.view", "users.view"]), scopeTags: null,
      roleScopes: [{ permissions: ["hosts.view", "users.view"], tags: [] }, { permissions: ["logs.view"], tags: ["group:web", "group:db"] }],
    };
    const g = tokenGrants(owner, { permissions: ["hosts.view", "logs.view"], scope_tags: ["group:web"] });
    expect([...g.permissions].sort()).toEqual(["hosts.view", "logs.view"]);
    expect(HostScope.forPermission(g.roleScopes, "hosts.view").tags).toEqual(["group:web"]);
    expect(HostScope.forPermission(g.roleScopes, "logs.view").tags).toEqual(["group:web"]);
    // a token scope with no tag in common with the granting role: the permission stays, no host
    const none = tokenGrants(owner, { permissions: ["logs.view"], scope_tags: ["env=prod"] });
    expect(none.permissions.has("logs.view")).toBe(true);
    expect(HostScope.forPermission(none.roleScopes, "logs.view").covers(["group:web", "group:db", "env=prod"])).toBe(false);
    // no token tags: the owner's scope
    const same = tokenGrants(owner, { permissions: ["logs.view"], scope_tags: [] });
    expect(HostScope.forPermission(same.roleScopes, "logs.view").tags).toEqual(["group:db", "group:web"]);
  });
});

describe("OpenAPI", () => {
  test("served publicly, valid 3.1 JSON, every /api/ route in it with its permission", async () => {
    const r = await call("/api/openapi.json");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("application/json");
    const doc = r.json();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info).toMatchObject({ title: "ServerMind API" });
    expect(doc.components.securitySchemes.bearerToken).toMatchObject({ type: "http", scheme: "bearer" });
    const api = routes.filter((x) => x.path.startsWith("/api/"));
    expect(api.length).toBeGreaterThan(20);
    for (const route of api) {
      const path = route.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
      const op = doc.paths[path]?.[route.method.toLowerCase()];
      expect({ route: `${route.method} ${route.path}`, present: Boolean(op) }).toEqual({ route: `${route.method} ${route.path}`, present: true });
      expect(op["x-permission"]).toBe(route.access);
      expect(op["x-host-data"]).toBe(route.hostData ?? "none");
      expect(typeof op.operationId).toBe("string");
      for (const m of route.path.matchAll(/:([A-Za-z0-9_]+)/g)) {
        expect(op.parameters.some((p: { name: string; in: string }) => p.name === m[1] && p.in === "path")).toBe(true);
      }
      if (route.hostData === "host") expect(op.responses["404"]).toBeDefined();
      if (route.dangerous) expect(op["x-dangerous"]).toBe(true);
    }
    // nothing but /api/ routes, and every operationId unique
    expect(Object.keys(doc.paths).every((p) => p.startsWith("/api/"))).toBe(true);
    const ids = Object.values(doc.paths).flatMap((p: any) => Object.values(p).map((o: any) => o.operationId));
    expect(new Set(ids).size).toBe(ids.length);
    // every permission used by an API route is a catalog permission
    const catalog = new Set(PERMISSIONS.map((p) => p.id));
    for (const route of api) if (route.access !== "public" && route.access !== "signed-in") expect(catalog.has(route.access)).toBe(true);
  });
});
