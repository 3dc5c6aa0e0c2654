/**
 * One AI-client token keeps at most MAX_SESSIONS_PER_TOKEN MCP sessions, so it cannot fill the
 * server-wide maximum (MAX_SESSIONS) and lock other users' assistants out. A new session of a
 * token at its cap closes that token's least recently used session, which then answers 404 (the
 * transport's "initialize again"); other tokens' sessions are untouched. Over the real TLS port
 * with the SDK's client.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { testDatabase, type TestDb } from "../support/db.ts";
import { commandsWithoutAgents } from "../support/security-views.ts";
import { MAX_SESSIONS, MAX_SESSIONS_PER_TOKEN } from "../../src/web/mcp/http.ts";
import { insecureFetch, mcpClient, person, startMcpServer, textOf, token, type McpTestServer } from "./support.ts";

let db: TestDb;
let srv: McpTestServer;

beforeAll(async () => {
  db = await testDatabase(4);
  srv = await startMcpServer(db, commandsWithoutAgents());
  await db.sql`insert into agents (hostname, public_key, tags, last_seen) values ('web-1', ${Buffer.alloc(32, 3)}, ${["group:web"]}, now())`;
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  await db?.drop();
});

/** The HTTP status of a tools/list on the client's session, sent raw. */
async function status(client: Client, secret: string): Promise<number> {
  const res = await insecureFetch(`${srv.url}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${secret}`, "mcp-session-id": (client.transport as StreamableHTTPClientTransport).sessionId!, "mcp-protocol-version": "2025-06-18",
      "content-type": "application/json", accept: "application/json, text/event-stream",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list", params: {} }),
  });
  await res.text();
  return res.status;
}

test("a token holds at most MAX_SESSIONS_PER_TOKEN sessions; its least recently used ones are closed, other tokens' are not", async () => {
  expect(MAX_SESSIONS_PER_TOKEN).toBeLessThan(MAX_SESSIONS / 100);
  const mallory = await person(db, "mallory", ["ai.assistant.use", "hosts.view"]);
  const alice = await person(db, "alice", ["ai.assistant.use", "hosts.view"]);
  const greedy = await token(db, mallory.id, ["ai.assistant.use", "hosts.view"]);
  const other = await token(db, alice.id, ["ai.assistant.use", "hosts.view"]);
  const aliceClient = await mcpClient(srv.url, other);
  const extra = 3;
  const clients: Client[] = [];
  for (let i = 0; i < MAX_SESSIONS_PER_TOKEN + extra; i++) clients.push(await mcpClient(srv.url, greedy));
  // the first `extra` sessions were closed, oldest first: 404, as an unknown session
  expect(await Promise.all(clients.map((c) => status(c, greedy)))).toEqual([
    ...Array<number>(extra).fill(404), ...Array<number>(MAX_SESSIONS_PER_TOKEN).fill(200),
  ]);
  await expect(clients[0]!.callTool({ name: "list_hosts", arguments: {} })).rejects.toThrow();
  expect(textOf(await clients.at(-1)!.callTool({ name: "list_hosts", arguments: {} }))).toContain("web-1");
  // another user's assistant is untouched and can still open sessions
  expect(await status(aliceClient, other)).toBe(200);
  const second = await mcpClient(srv.url, other);
  expect(textOf(await second.callTool({ name: "list_hosts", arguments: {} }))).toContain("web-1");
  // it is the least recently used session that goes, not the oldest: use them all in order, but
  // the second survivor first
  await Bun.sleep(5);
  expect(await status(clients[extra + 1]!, greedy)).toBe(200);
  for (const c of [clients[extra]!, ...clients.slice(extra + 2)]) {
    await Bun.sleep(2);
    expect(await status(c, greedy)).toBe(200);
  }
  clients.push(await mcpClient(srv.url, greedy));
  expect(await status(clients[extra + 1]!, greedy)).toBe(404);
  expect(await Promise.all([clients[extra]!, ...clients.slice(extra + 2)].map((c) => status(c, greedy)))).toEqual(Array<number>(MAX_SESSIONS_PER_TOKEN).fill(200));
  for (const c of [...clients, aliceClient, second]) await c.close().catch(() => {});
});
