/**
 * The MCP endpoint (`/mcp`, Streamable HTTP transport of the official SDK) on the server's TLS
 * port, as a plain `(Request) => Response` function; ./plugin.ts mounts it. The tools and the
 * approval queue are framework-free, in src/mcp/.
 *
 * Authentication, on every request: `Authorization: Bearer smp_...` of a live API token marked
 * as an AI client, resolved by the same code as the JSON API's tokens (src/web/bearer.ts
 * tokenPrincipal: same throttle, same audit of bad tokens, same grants). No token: 401 with
 * `WWW-Authenticate: Bearer`; a token that is not an AI client's: 403.
 *
 * Sessions (stateful mode): `initialize` opens a session (Mcp-Session-Id) that remembers the
 * client's name and version for the audit trail. A session belongs to the token that opened it:
 * another token presenting its id gets 404, as for an unknown session. At most MAX_SESSIONS are
 * kept; sessions idle for SESSION_IDLE_MS are closed. One token keeps at most
 * MAX_SESSIONS_PER_TOKEN: a new session of a token at its cap closes that token's least recently
 * used one (which then answers 404, on which the transport tells the client to initialize
 * again), so one token cannot fill the server-wide maximum and lock other users' assistants out,
 * and a client that restarted without DELETE is not locked out by its own abandoned sessions.
 * Grants are NOT cached in the session: each request re-resolves the token, so revoking it or
 * demoting its owner takes effect at once.
 */
import { randomUUID } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Sql } from "postgres";
import type { SettingsStore } from "../../settings/console-settings.ts";
import { bearerSecret, tokenPrincipal, type BearerPrincipal } from "../bearer.ts";
import { securityHeaders } from "../respond.ts";
import { audit } from "../../audit/audit.ts";
import { parseCookies } from "../guard.ts";
import { SESSION_COOKIE } from "../../auth/session.ts";
import { registerTools, type CallContext, type McpDeps } from "../../mcp/tools.ts";

export const MCP_PATH = "/mcp";
export const MAX_SESSIONS = 1000;
export const MAX_SESSIONS_PER_TOKEN = 8;
export const SESSION_IDLE_MS = 30 * 60_000;

export interface McpHttpDeps extends McpDeps {
  settings: SettingsStore;
  /** The server version announced to clients (default: package.json's). */
  version?: string;
}

const PACKAGE_VERSION = "0.1.0";

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  server: McpServer;
  tokenId: number;
  lastUsed: number;
}

const refusal = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ error: { code, message } }), { status, headers: securityHeaders(new Headers({ "content-type": "application/json", ...headers })) });

export function createMcpHandler(deps: McpHttpDeps) {
  const sessions = new Map<string, Session>();

  function sweep(now: number) {
    for (const [id, s] of sessions) if (now - s.lastUsed > SESSION_IDLE_MS) close(id, s);
  }
  function close(id: string, s: Session) {
    sessions.delete(id);
    void s.transport.close().catch(() => {});
  }

  /** Closes the token's least recently used sessions, never `keep` (the new one), while it holds more than its cap. */
  function evictBeyondTokenCap(keep: Session) {
    const others = [...sessions].filter(([, s]) => s.tokenId === keep.tokenId && s !== keep).sort(([, a], [, b]) => a.lastUsed - b.lastUsed);
    for (const [id, s] of others.slice(0, Math.max(0, others.length + 1 - MAX_SESSIONS_PER_TOKEN))) close(id, s);
  }

  function newSession(tokenId: number): Session {
    const server = new McpServer({ name: "servermind", version: deps.version ?? PACKAGE_VERSION }, { capabilities: { tools: {} } });
    const session: Session = { server, tokenId, lastUsed: Date.now(), transport: null as never };
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, session);
        evictBeyondTokenCap(session);
      },
      onsessionclosed: (id) => void sessions.delete(id),
    });
    session.transport = transport;
    registerTools(server, deps, (extra) => {
      const call = (extra as { authInfo?: { extra?: { call?: Omit<CallContext, "client"> } } }).authInfo?.extra?.call;
      if (!call) throw new Error("MCP call without its request context");
      const info = server.server.getClientVersion();
      return { ...call, client: { name: info?.name ?? "", version: info?.version ?? "" } };
    });
    void server.connect(transport);
    return session;
  }

  return async function handle(request: Request, ip: string): Promise<Response> {
    const url = new URL(request.url);
    const secret = bearerSecret(request);
    if (secret === null) return refusal(401, "unauthenticated", "The MCP endpoint needs an API token marked as an AI client: Authorization: Bearer smp_...", { "www-authenticate": `Bearer realm="servermind"` });
    const hasCookie = Boolean(parseCookies(request.headers.get("cookie"))[SESSION_COOKIE]);
    const p: BearerPrincipal | Response = await tokenPrincipal(deps, request, url, secret, ip, hasCookie);
    if (p instanceof Response) return p;
    const userAgent = request.headers.get("user-agent") ?? "";
    if (!p.token.aiClient) {
      await audit(deps.sql, {
        actor: { type: "user", id: `token:${p.token.id}`, name: p.user.username }, ip, userAgent,
        category: "security_event", action: "mcp.refused", target: `${request.method} ${url.pathname}`, success: false, details: { reason: "not an AI client token", token: { id: p.token.id, name: p.token.name } },
      });
      return refusal(403, "not_ai_client", "This API token is not marked as an AI client; create one with \"AI client\" checked to use the MCP endpoint.");
    }
    const now = Date.now();
    const sid = request.headers.get("mcp-session-id");
    let session: Session | undefined;
    if (sid) {
      session = sessions.get(sid);
      if (!session || session.tokenId !== p.token.id) return refusal(404, "unknown_session", "No such MCP session; initialize a new one.");
    } else {
      if (request.method !== "POST") return refusal(400, "no_session", "Send initialize (POST) first; GET and DELETE need an Mcp-Session-Id.");
      sweep(now);
      if (sessions.size >= MAX_SESSIONS) return refusal(503, "too_many_sessions", "Too many open MCP sessions; try again later.", { "retry-after": "60" });
      session = newSession(p.token.id);
    }
    session.lastUsed = now;
    const call: Omit<CallContext, "client"> = { principal: p, ip, userAgent };
    const res = await session.transport.handleRequest(request, { authInfo: { token: "", clientId: `token:${p.token.id}`, scopes: [], extra: { call } } });
    // a new transport that did not initialize a session (e.g. a first request that is not initialize)
    if (!sid && !session.transport.sessionId) void session.transport.close().catch(() => {});
    return res;
  };
}
