/**
 * A stolen console session must not outlast the account's recovery. Creating an API token is a
 * dangerous operation (typed phrase + fresh re-authentication), so the session alone cannot mint
 * a lasting credential; and an administrator's password reset or MFA reset of a user (the
 * recovery after a suspected compromise) revokes the user's API tokens, which ends their AI
 * clients' MCP sessions. A user changing their own password keeps their tokens. Over the real
 * TLS port, with the SDK's MCP client.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { testDatabase, type TestDb } from "../support/db.ts";
import { commandsWithoutAgents } from "../support/security-views.ts";
import { CREATE_TOKEN_PHRASE } from "../../src/web/tokens/routes.ts";
import { consolePost, insecureFetch, mcpClient, PASSWORD, person, startMcpServer, textOf, token, type McpTestServer, type Person } from "./support.ts";

let db: TestDb;
let srv: McpTestServer;
let admin: Person;

const OWN = ["ai.assistant.use", "hosts.view", "api.tokens.create"];
const ADMIN = [...OWN, "users.view", "users.password.reset", "users.mfa.reset"];

beforeAll(async () => {
  db = await testDatabase(4);
  srv = await startMcpServer(db, commandsWithoutAgents());
  await db.sql`insert into agents (hostname, public_key, tags, last_seen) values ('web-1', ${Buffer.alloc(32, 7)}, ${["group:web"]}, now())`;
  admin = await person(db, "recoverer", ADMIN);
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  await db?.drop();
});

const tokenForm = { name: "laptop-assistant", permissions: "ai.assistant.use,hosts.view", expires_days: "90", scope_tags: "", ai_client: "on", client_name: "claude-test" };
const tokenCount = async (userId: number) => Number((await db.sql`select count(*)::int as n from api_tokens where user_id = ${userId}`)[0]!.n);
const liveTokens = async (userId: number) => Number((await db.sql`select count(*)::int as n from api_tokens where user_id = ${userId} and revoked_at is null`)[0]!.n);

/** A raw MCP request on the client's session: its HTTP status. */
async function sessionStatus(client: Client, secret: string): Promise<number> {
  const sid = (client.transport as StreamableHTTPClientTransport).sessionId!;
  const res = await insecureFetch(`${srv.url}/mcp`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18", "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/list", params: {} }),
  });
  await res.text();
  return res.status;
}

test("a console session alone cannot create an API token: the typed phrase and a fresh re-authentication are needed", async () => {
  const victim = await person(db, "victim-create", OWN);
  // a session signed in more than five minutes ago (a sign-in counts as a re-authentication for
  // that long): what a thief holding only its cookie can send
  await db.sql`update console_sessions set reauth_at = now() - interval '10 minutes' where id = ${victim.sessionId}`;
  const bare = await consolePost(srv.url, victim, "/account/tokens", tokenForm);
  expect(bare.status).toBe(403);
  expect(await bare.text()).toContain(`Type ${CREATE_TOKEN_PHRASE} exactly`);
  const phraseOnly = await consolePost(srv.url, victim, "/account/tokens", { ...tokenForm, confirm: CREATE_TOKEN_PHRASE });
  expect(phraseOnly.status).toBe(403);
  expect(await phraseOnly.text()).toContain("confirm your identity");
  const wrong = await consolePost(srv.url, victim, "/account/tokens", { ...tokenForm, confirm: CREATE_TOKEN_PHRASE, reauth: "not-the-password" });
  expect(wrong.status).toBe(403);
  expect(await tokenCount(victim.id)).toBe(0);
  const refused = await db.sql`select details from audit_log where action = 'dangerous.refused' and target = 'POST /account/tokens' and actor_name = 'victim-create'`;
  expect(refused.length).toBe(3);
  // the owner, who knows the password: created, shown once
  const page = await (await insecureFetch(`${srv.url}/account/tokens`, { headers: { cookie: victim.cookie } })).text();
  expect(page).toContain(`<strong class="phrase">${CREATE_TOKEN_PHRASE}</strong>`);
  const ok = await consolePost(srv.url, victim, "/account/tokens", { ...tokenForm, confirm: CREATE_TOKEN_PHRASE, reauth: PASSWORD });
  expect(ok.status).toBe(201);
  expect(await ok.text()).toMatch(/smp_[A-Za-z0-9_-]{43}/);
  expect(await tokenCount(victim.id)).toBe(1);
  const [created] = await db.sql`select details from audit_log where action = 'api_token.create' and actor_name = 'victim-create' and success`;
  expect(created!.details).toMatchObject({ dangerous: true, confirmed: true, reauth: "password" });
});

test("changing one's own password keeps one's tokens and MCP sessions", async () => {
  const u = await person(db, "victim-own", OWN);
  const secret = await token(db, u.id, ["ai.assistant.use", "hosts.view"]);
  const client = await mcpClient(srv.url, secret);
  const changed = await consolePost(srv.url, u, "/account/password", { current: PASSWORD, password: "Quiet-River-Lantern-4", password2: "Quiet-River-Lantern-4" });
  expect(changed.status).toBe(303);
  expect(await liveTokens(u.id)).toBe(1);
  expect(textOf(await client.callTool({ name: "list_hosts", arguments: {} }))).toContain("web-1");
  await client.close();
});

for (const reset of ["password", "mfa"] as const) {
  test(`an administrator's ${reset} reset revokes the user's API tokens and ends their MCP sessions`, async () => {
    const u = await person(db, `victim-${reset}`, OWN);
    const secrets = [await token(db, u.id, ["ai.assistant.use", "hosts.view"]), await token(db, u.id, ["hosts.view"], { ai: false })];
    const client = await mcpClient(srv.url, secrets[0]!);
    expect(textOf(await client.callTool({ name: "list_hosts", arguments: {} }))).toContain("web-1");
    // the administrator is told before confirming (the MFA reset is offered once MFA is on)
    if (reset === "mfa") await db.sql`update console_users set totp_enabled_at = now() where id = ${u.id}`;
    const userPage = await (await insecureFetch(`${srv.url}/users/${u.id}`, { headers: { cookie: admin.cookie } })).text();
    const form = /<details class="danger-zone" id="(reset-password|reset-mfa)">[\s\S]*?<\/details>/.exec(userPage)?.[0] ?? "";
    expect(form).toContain("revokes all their API tokens, which ends their AI clients' MCP sessions");
    const path = reset === "password" ? `/users/${u.id}/password` : `/users/${u.id}/mfa/reset`;
    const fields = { confirm: u.username, reauth: PASSWORD, ...(reset === "password" ? { password: "Fresh-Meadow-Stone-5", password2: "Fresh-Meadow-Stone-5" } : {}) };
    expect((await consolePost(srv.url, admin, path, fields)).status).toBe(303);
    expect(await liveTokens(u.id)).toBe(0);
    // the open MCP session ends: its next request is refused, through the SDK and raw
    expect(await sessionStatus(client, secrets[0]!)).toBe(401);
    await expect(client.callTool({ name: "list_hosts", arguments: {} })).rejects.toThrow();
    const me = await insecureFetch(`${srv.url}/api/me`, { headers: { authorization: `Bearer ${secrets[1]}` } });
    expect(me.status).toBe(401);
    const ids = (await db.sql`select id from api_tokens where user_id = ${u.id} order by id`).map((r) => Number(r.id));
    const [a] = await db.sql`select details from audit_log where action = ${reset === "password" ? "users.password.reset" : "users.mfa.reset"} and target = ${u.username} and success`;
    expect(a!.details).toMatchObject({ api_tokens_revoked: ids });
    const revokedBy = (await db.sql`select distinct revoked_by from api_tokens where user_id = ${u.id}`).map((r) => r.revoked_by);
    expect(revokedBy).toEqual(["recoverer"]);
    await client.close().catch(() => {});
  });
}
