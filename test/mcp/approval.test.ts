/**
 * An AI-requested file write end to end: the compiled agent (Control as root) on a prepared root,
 * the real server and command channel, the MCP endpoint driven by the SDK client. The write is
 * queued, nothing changes on disk; a person approves it in the console (typed phrase, fresh
 * re-authentication) and the agent writes the exact bytes. The approved write runs within BOTH
 * the requester's and the approver's path policy: a path only the approver may write is refused
 * by the agent. A write whose expected SHA-256 no longer matches is refused (conflict).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueCommand } from "../../src/security/issue.ts";
import { roleIdByName } from "../../src/auth/roles.ts";
import { setRolePolicy } from "../../src/operations/files.ts";
import { agentBinary, agentDirs, enrollAgent, runAgent, startE2eServer, until, type AgentRun, type E2eServer } from "../support/agent-harness.ts";
import { consolePost, mcpClient, person, PASSWORD, startMcpServer, textOf, token, type McpTestServer, type Person } from "./support.ts";

setDefaultTimeout(180_000);

let server: E2eServer;
let agent: AgentRun;
let agentId: number;
let root: string;
let srv: McpTestServer;
let owner: Person;
let approver: Person;
const sha = (b: string) => createHash("sha256").update(b).digest("hex");
const FILES = ["ai.assistant.use", "ai.assistant.act", "hosts.view", "files.view", "files.read", "files.write"];

beforeAll(async () => {
  const bin = await agentBinary();
  server = await startE2eServer();
  root = mkdtempSync(join(tmpdir(), "sm-mcp-e2e-root-"));
  chmodSync(root, 0o755);
  for (const d of ["etc", "srv/app", "tmp"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "srv/app/app.conf"), "port = 80\n", { mode: 0o644 });
  writeFileSync(join(root, "etc/motd"), "hello\n", { mode: 0o644 });
  const { dir, env } = agentDirs();
  Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "2000", SERVERMIND_AGENT_ROOT: root });
  agentId = await enrollAgent(bin, env, server);
  agent = runAgent(bin, dir, env);
  srv = await startMcpServer(server.db, { commandKey: server.commandKey, dispatch: server.dispatch });
  owner = await person(server.db, "aiowner", FILES);
  await setRolePolicy(server.db.sql, (await roleIdByName(server.db.sql, "r-aiowner"))!, { roots: ["/srv"], denied: [] }, "test");
  approver = await person(server.db, "human", FILES);
  await setRolePolicy(server.db.sql, (await roleIdByName(server.db.sql, "r-human"))!, { roots: ["/"], denied: [] }, "test");
});

afterAll(async () => {
  await srv?.stop();
  await agent?.stop();
  await server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("an AI-requested write with the compiled agent", () => {
  test("queued, approved in the console with confirmation, written; within both policies; expected SHA-256 checked", async () => {
    await until("command channel up", async () => ((await issueCommand({ sql: server.db.sql, commandKey: server.commandKey, dispatch: server.dispatch, audit: () => {} }, { type: "user", id: 1, name: "t" }, agentId, "ping", {})).result as { ok?: boolean })?.ok, 90_000, 500);
    const client = await mcpClient(srv.url, await token(server.db, owner.id, FILES, { clientName: "ops-bot" }), "ops-bot", "0.4.0");
    try {
      // read (runs directly) gives the SHA-256 to pass back
      const read = JSON.parse(textOf(await client.callTool({ name: "read_file", arguments: { host_id: agentId, path: "/srv/app/app.conf" } })));
      expect(read).toMatchObject({ content: "port = 80\n", sha256: sha("port = 80\n") });
      const ask = async (path: string, content: string, expected: string) => {
        const r = await client.callTool({ name: "write_file", arguments: { host_id: agentId, path, content, reason: `set ${path}`, expected_sha256: expected } });
        return Number(/queued for approval, id (\d+)/.exec(textOf(r))![1]);
      };
      const id = await ask("/srv/app/app.conf", "port = 443\n", read.sha256);
      expect(readFileSync(join(root, "srv/app/app.conf"), "utf8")).toBe("port = 80\n"); // queued, not run

      // approval needs the phrase and a fresh re-authentication (password)
      const noPhrase = await consolePost(srv.url, approver, `/ai/approvals/${id}/approve`, { reauth: PASSWORD });
      expect(noPhrase.status).toBe(403);
      const ok = await consolePost(srv.url, approver, `/ai/approvals/${id}/approve`, { confirm: `approve request ${id}`, reauth: PASSWORD });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain(`Request ${id} approved and run: ok`);
      expect(readFileSync(join(root, "srv/app/app.conf"), "utf8")).toBe("port = 443\n");
      const [row] = await server.db.sql`select status, outcome, result, payload from ai_approvals where id = ${id}`;
      expect([row!.status, row!.outcome, row!.payload, row!.result.after]).toEqual(["approved", "ok", null, sha("port = 443\n")]);

      // the owner may write only under /srv: a write to /etc/motd approved by a person who may
      // write anywhere is still refused by the agent (the command carries the intersection)
      const etc = await ask("/etc/motd", "owned\n", sha("hello\n"));
      const r2 = await consolePost(srv.url, approver, `/ai/approvals/${etc}/approve`, { confirm: `approve request ${etc}` });
      expect(r2.status).toBe(200);
      expect(await r2.text()).toContain("did not succeed");
      expect(readFileSync(join(root, "etc/motd"), "utf8")).toBe("hello\n");
      const denied = (await server.db.sql`select outcome, result from ai_approvals where id = ${etc}`)[0]!;
      expect(denied.outcome).toBe("denied");

      // the file changed after the AI read it: the write is refused, the other change stays
      const stale = await ask("/srv/app/app.conf", "port = 8443\n", read.sha256);
      const r3 = await consolePost(srv.url, approver, `/ai/approvals/${stale}/approve`, { confirm: `approve request ${stale}` });
      expect(await r3.text()).toContain("did not succeed");
      expect(readFileSync(join(root, "srv/app/app.conf"), "utf8")).toBe("port = 443\n");
      expect((await server.db.sql`select outcome from ai_approvals where id = ${stale}`)[0]!.outcome).toBe("conflict");

      const audit = await server.db.sql`select action, actor_name, success, details from audit_log where category = 'ai_operation' and action = 'ai.approve' order by id`;
      expect(audit.map((a) => [a.actor_name, a.success, a.details.client.name, a.details.client.version, a.details.tool])).toEqual([
        ["human", true, "ops-bot", "0.4.0", "write_file"], ["human", false, "ops-bot", "0.4.0", "write_file"], ["human", false, "ops-bot", "0.4.0", "write_file"],
      ]);
      expect(JSON.stringify(audit)).not.toContain("port = 443");
    } finally {
      await client.close();
    }
  });
});
