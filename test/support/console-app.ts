/**
 * The console plugin mounted on a bare Elysia app over a fresh test database, driven in-process
 * through `app.handle()`. Helpers create users with given permissions and signed-in sessions.
 */
import { Elysia } from "elysia";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandsWithoutAgents } from "./security-views.ts";
import { testDatabase, type TestDb } from "./db.ts";
import { loadConfig } from "../../src/config.ts";
import { consolePlugin, createServices, startConsole } from "../../src/web/plugin.ts";
import type { ConsoleServices, SecurityCommandDeps } from "../../src/web/deps.ts";
import { createUser } from "../../src/auth/users.ts";
import { createRole, roleIdByName } from "../../src/auth/roles.ts";
import { createSession, SESSION_COOKIE } from "../../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { createLicenseService } from "../../src/license/service.ts";

export const TEST_IP_HEADER = "x-test-client-ip";

export interface ConsoleHarness {
  db: TestDb;
  services: ConsoleServices;
  app: { handle(req: Request): Promise<Response> };
  setupCode: string | null;
  dataDir: string;
  /**
   * Sends a request; `session` adds the cookie, and the session's CSRF token on non-GET. `json`
   * sends a JSON body (as API clients do) instead of a form.
   */
  send(path: string, o?: { method?: string; form?: Record<string, string | string[]>; json?: unknown; session?: TestSession; headers?: Record<string, string>; csrf?: string | null }): Promise<Response>;
  /** A JSON call as `session` (POST sends `body` as JSON; `htmx` adds hx-request): status, parsed JSON (null if none) and text. */
  call(method: "GET" | "POST", path: string, session: TestSession, body?: Record<string, unknown>, o?: { htmx?: boolean }): Promise<{ status: number; json: any; text: string }>;
  /** A user holding a role with exactly these permissions (scoped to `tags` when given), signed in. */
  userWith(permissions: string[], name?: string, tags?: string[]): Promise<TestSession>;
  /** Marks the session as re-authenticated just now (dangerous operations then need only the phrase). */
  reauth(session: TestSession): Promise<void>;
  /** A user holding a built-in role, signed in. */
  userWithRole(role: string, name?: string): Promise<TestSession>;
  close(): Promise<void>;
}

export interface TestSession {
  userId: number;
  username: string;
  token: string;
  csrf: string;
  sessionId: number;
}

export const TEST_PASSWORD = "Correct-Horse-9-Battery";
let n = 0;

/**
 * `shared`: mount the console over another test's database (which that test keeps and drops).
 * `security`: the command channel of the security routes (default: signed, no agent answers).
 */
export async function consoleHarness(shared?: TestDb, o: { security?: SecurityCommandDeps; licenseEnv?: Record<string, string> } = {}): Promise<ConsoleHarness> {
  const db = shared ?? (await testDatabase(4));
  const dataDir = mkdtempSync(join(tmpdir(), "servermind-console-"));
  const deps = {
    sql: db.sql,
    config: loadConfig({}),
    dataDir,
    serverFingerprint: "ab".repeat(32),
    clientIp: (r: Request) => r.headers.get(TEST_IP_HEADER) ?? "192.0.2.10",
    // commands of the security routes are signed but no agent answers them here
    security: o.security ?? commandsWithoutAgents(),
    // licenses verified against a test vendor key (src/license/key.ts) when given
    ...(o.licenseEnv ? { license: createLicenseService({ sql: db.sql, dataDir, env: o.licenseEnv, log: () => {} }) } : {}),
  };
  const started = await startConsole(deps, () => {});
  const services = createServices(deps);
  const app = new Elysia().use(consolePlugin(deps, services));

  async function session(userId: number, username: string): Promise<TestSession> {
    const { token, session } = await createSession(db.sql, userId, "full", "192.0.2.10", "test", DEFAULT_SETTINGS.session);
    return { userId, username, token, csrf: session.csrf_token, sessionId: session.id };
  }

  const h: ConsoleHarness = {
    db, services, app, setupCode: started.setupCode, dataDir,
    async send(path, o = {}) {
      const method = o.method ?? (o.form || o.json !== undefined ? "POST" : "GET");
      const headers = new Headers(o.headers ?? {});
      if (o.session) headers.append("cookie", `${SESSION_COOKIE}=${o.session.token}`);
      if (method !== "GET" && o.session && o.csrf !== null) headers.set("x-csrf-token", o.csrf ?? o.session.csrf);
      let body: string | undefined;
      if (o.json !== undefined) {
        body = JSON.stringify(o.json);
        headers.set("content-type", "application/json");
      } else if (o.form) {
        const p = new URLSearchParams();
        for (const [k, v] of Object.entries(o.form)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
        body = p.toString();
        headers.set("content-type", "application/x-www-form-urlencoded");
      }
      return app.handle(new Request(`http://console.test${path}`, { method, headers, body }));
    },
    async call(method, path, session, body, o = {}) {
      const res = await this.send(path, { method, session, json: method === "POST" ? body ?? {} : undefined, headers: o.htmx ? { "hx-request": "true" } : {} });
      const text = await res.text();
      let json: any = null;
      try {
        json = JSON.parse(text);
      } catch {
        /* not JSON: a page or a partial */
      }
      return { status: res.status, json, text };
    },
    async userWith(permissions, name = `u${n++}x${Date.now() % 100000}`, tags = []) {
      const roleId = await createRole(db.sql, `r-${name}`, "", permissions, tags);
      const id = await createUser(db.sql, { username: name, password: TEST_PASSWORD, roleIds: [roleId] }, DEFAULT_SETTINGS.password);
      return session(id, name);
    },
    async userWithRole(role, name = `u${n++}x${Date.now() % 100000}`) {
      const id = await createUser(db.sql, { username: name, password: TEST_PASSWORD, roleIds: [(await roleIdByName(db.sql, role))!] }, DEFAULT_SETTINGS.password);
      return session(id, name);
    },
    async reauth(session) {
      await db.sql`update console_sessions set reauth_at = now() where id = ${session.sessionId}`;
    },
    async close() {
      started.stop();
      if (!shared) await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}
