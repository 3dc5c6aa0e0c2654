/**
 * A real TLS server with the console and the MCP endpoint mounted (as src/main.ts does), over a
 * test database; MCP clients are the SDK's own Client + StreamableHTTPClientTransport.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { consolePlugin, createServices, startConsole } from "../../src/web/plugin.ts";
import { mcpPlugin } from "../../src/web/mcp/plugin.ts";
import type { SecurityCommandDeps } from "../../src/web/deps.ts";
import type { TestDb } from "../support/db.ts";
import { createApiToken } from "../../src/auth/api-tokens.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { createSession } from "../../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { SESSION_COOKIE } from "../../src/auth/session.ts";

export const PASSWORD = "Correct-Horse-9-Battery";

/** fetch that accepts the test server's self-signed certificate. */
export const insecureFetch = ((url: string | URL | Request, init?: RequestInit) => fetch(url, { ...init, tls: { rejectUnauthorized: false } } as RequestInit)) as typeof fetch;

export interface McpTestServer {
  url: string;
  server: RunningServer;
  stop(): Promise<void>;
}

export async function startMcpServer(db: TestDb, security: SecurityCommandDeps): Promise<McpTestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "servermind-mcp-"));
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir });
  const deps = { sql: db.sql, config, dataDir, serverFingerprint: cert.fingerprint, security };
  const started = await startConsole(deps, () => {});
  const services = createServices(deps);
  const server = startServer({
    config, sql: db.sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
    plugins: [consolePlugin(deps, services), mcpPlugin(services)],
  });
  return {
    url: `https://127.0.0.1:${server.port}`,
    server,
    async stop() {
      started.stop();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Person {
  id: number;
  username: string;
  cookie: string;
  csrf: string;
  sessionId: number;
}

/** A user with one role of these permissions (scoped to `tags`), signed in with a full session. */
export async function person(db: TestDb, name: string, permissions: string[], tags: string[] = []): Promise<Person> {
  const roleId = await createRole(db.sql, `r-${name}`, "", permissions, tags);
  const id = await createUser(db.sql, { username: name, password: PASSWORD, roleIds: [roleId] }, DEFAULT_SETTINGS.password);
  const { token, session } = await createSession(db.sql, id, "full", "127.0.0.1", "test", DEFAULT_SETTINGS.session);
  return { id, username: name, cookie: `${SESSION_COOKIE}=${token}`, csrf: session.csrf_token, sessionId: session.id };
}

export async function token(db: TestDb, userId: number, permissions: string[], o: { ai?: boolean; clientName?: string; tags?: string[] } = {}): Promise<string> {
  return (await createApiToken(db.sql, userId, { name: `t${Date.now() % 100000}${Math.random().toString(36).slice(2, 6)}`, permissions, scopeTags: o.tags ?? [], expiresInDays: 1, aiClient: o.ai ?? true, clientName: o.clientName ?? "test-assistant" })).token;
}

/** An SDK client connected to /mcp with this bearer token. */
export async function mcpClient(url: string, bearer: string, name = "test-assistant", version = "9.8.7"): Promise<Client> {
  const client = new Client({ name, version });
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { fetch: insecureFetch, requestInit: { headers: { authorization: `Bearer ${bearer}` } } });
  await client.connect(transport);
  return client;
}

/** A console form POST over the real port, with the person's cookie and CSRF token. */
export function consolePost(url: string, p: Person, path: string, form: Record<string, string>) {
  return insecureFetch(`${url}${path}`, {
    method: "POST", redirect: "manual",
    headers: { cookie: p.cookie, "x-csrf-token": p.csrf, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
}

/** The text of a tool result. */
export const textOf = (r: unknown) => ((r as { content: Array<{ type: string; text: string }> }).content[0]?.text ?? "");
