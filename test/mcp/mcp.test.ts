/**
 * The MCP endpoint over the real TLS port, driven by the SDK's own client: authentication
 * (no token 401, a token that is not an AI client's 403), the tool list, read tools within the
 * token's permissions and host scope (an out-of-scope host is "not found", a missing permission
 * is a tool error naming it), acting tools queued and never run, the console's approval queue
 * (shown with the client's reason; rejection; approval refused to a person lacking the
 * operation's permission), and the `ai_operation` audit rows. Agents here answer every command
 * with ok through a recording dispatch, so that "nothing was sent" is checked exactly; the
 * approved operation really running on a host is test/mcp/approval.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { testDatabase, type TestDb } from "../support/db.ts";
import { commandsWithoutAgents } from "../support/security-views.ts";
import { recordScan } from "../../src/security/posture.ts";
import { consolePost, insecureFetch, mcpClient, person, startMcpServer, textOf, token, type McpTestServer, type Person } from "./support.ts";

let db: TestDb;
let srv: McpTestServer;
const sent: Array<{ agentId: number; action: string }> = [];
const hosts: Record<"web" | "db", number> = { web: 0, db: 0 };
let owner: Person;
let approver: Person;
let weakApprover: Person;

const ALL = ["ai.assistant.use", "ai.assistant.act", "hosts.view", "metrics.view", "logs.view", "compliance.view", "services.view", "services.stop", "services.restart", "files.view", "files.read", "files.write"];

async function host(hostname: string, tags: string[], fill: number) {
  const [a] = await db.sql`insert into agents (hostname, public_key, tags, last_seen) values (${hostname}, ${Buffer.alloc(32, fill)}, ${tags}, now()) returning id`;
  const id = Number(a!.id);
  await recordScan(db.sql, id, new Date(Date.now() - 60_000), { results: [{ id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "yes" }] });
  await db.sql`insert into logs (agent_id, batch_id, ts, severity, source, message) values (${id}, 1, now(), 3, 'sshd', ${`log line of ${hostname}`})`;
  return id;
}

beforeAll(async () => {
  db = await testDatabase(4);
  const base = commandsWithoutAgents();
  srv = await startMcpServer(db, {
    ...base,
    dispatch: async (agentId: number, cmd: unknown) => {
      sent.push({ agentId, action: String((cmd as { action?: string }).action ?? JSON.stringify(cmd).match(/"action":"([^"]+)"/)?.[1]) });
      return { ok: true, manager: "systemd", units: [{ unit: "sshd.service", load: "loaded", active: "active", sub: "running", description: "OpenSSH" }] };
    },
  });
  hosts.web = await host("web-1", ["group:web"], 1);
  hosts.db = await host("db-1", ["group:db"], 2);
  owner = await person(db, "owner", ALL, ["group:web"]);
  approver = await person(db, "approver", ALL);
  weakApprover = await person(db, "weak", ["ai.assistant.act", "hosts.view"]);
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  await db?.drop();
});

describe("the MCP endpoint", () => {
  test("no token: 401 with a Bearer challenge; a token that is not an AI client's: 403; a bad token: 401", async () => {
    const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } } };
    const post = (headers: Record<string, string>) => insecureFetch(`${srv.url}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(init) });
    const none = await post({});
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toStartWith("Bearer");
    const plain = await token(db, owner.id, ALL, { ai: false });
    const refused = await post({ authorization: `Bearer ${plain}` });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as any).error.code).toBe("not_ai_client");
    const bad = await post({ authorization: `Bearer smp_${"A".repeat(43)}` });
    expect(bad.status).toBe(401);
    // the SDK client gets the refusal too
    await expect(mcpClient(srv.url, plain)).rejects.toThrow();
    const [row] = await db.sql`select count(*)::int as n from audit_log where action = 'mcp.refused'`;
    expect(row!.n).toBeGreaterThanOrEqual(2);
  });

  test("tools: listed with schemas; read tools within the token's permissions and scope; acting tools queued", async () => {
    const client = await mcpClient(srv.url, await token(db, owner.id, ALL, { clientName: "claude-test" }), "claude-test", "1.2.3");
    try {
      const tools = (await client.listTools()).tools;
      expect(tools.map((t) => t.name).sort()).toEqual([
        "get_host", "host_logs", "host_metrics", "list_files", "list_hosts", "list_services", "read_file", "security_posture", "service_action", "service_action_group", "service_status", "write_file",
      ]);
      const action = tools.find((t) => t.name === "service_action")!;
      expect(action.inputSchema.required).toEqual(expect.arrayContaining(["host_id", "unit", "op", "reason"]));

      // the fleet: only the in-scope host
      const list = JSON.parse(textOf(await client.callTool({ name: "list_hosts", arguments: {} })));
      expect(list.hosts.map((h: any) => h.hostname)).toEqual(["web-1"]);
      // 50 calls in a row over the one session: each authenticated and scoped anew
      const t0 = performance.now();
      for (let i = 0; i < 50; i++) expect(JSON.parse(textOf(await client.callTool({ name: "list_hosts", arguments: {} }))).hosts.length).toBe(1);
      console.log(`mcp: 50 list_hosts calls in ${(performance.now() - t0).toFixed(0)} ms`);
      // one host: in scope found, out of scope "not found" (exactly as a missing one)
      expect(JSON.parse(textOf(await client.callTool({ name: "get_host", arguments: { host_id: hosts.web } }))).hostname).toBe("web-1");
      const out = await client.callTool({ name: "get_host", arguments: { host_id: hosts.db } });
      expect(out.isError).toBe(true);
      expect(textOf(out)).toBe(`no such host: ${hosts.db}`);
      expect(textOf(await client.callTool({ name: "get_host", arguments: { host_id: 999999 } }))).toBe("no such host: 999999");
      // logs and posture
      const logs = JSON.parse(textOf(await client.callTool({ name: "host_logs", arguments: { host_id: hosts.web } })));
      expect(logs.logs.map((l: any) => l.message)).toEqual(["log line of web-1"]);
      expect(textOf(await client.callTool({ name: "host_logs", arguments: { host_id: hosts.db } }))).toBe(`no such host: ${hosts.db}`);
      const posture = JSON.parse(textOf(await client.callTool({ name: "security_posture", arguments: {} })));
      expect(posture.violations.map((v: any) => [v.hostname, v.control_id])).toEqual([["web-1", "smx.ssh.root-login"]]);
      const metrics = JSON.parse(textOf(await client.callTool({ name: "host_metrics", arguments: { host_id: hosts.web } })));
      expect(metrics).toMatchObject({ host: hosts.web, names: [] });
      // a service list goes to the agent (the recording dispatch answers)
      const before = sent.length;
      const units = JSON.parse(textOf(await client.callTool({ name: "list_services", arguments: { host_id: hosts.web } })));
      expect(units.units.map((u: any) => u.unit)).toEqual(["sshd.service"]);
      expect(sent.length).toBe(before + 1);

      // acting: queued, nothing sent to the agent
      const n = sent.length;
      const stop = await client.callTool({ name: "service_action", arguments: { host_id: hosts.web, unit: "sshd", op: "stop", reason: "sshd is using 100% CPU; stop it until investigated" } });
      expect(stop.isError).toBeFalsy();
      const stopId = Number(/queued for approval, id (\d+)/.exec(textOf(stop))![1]);
      const write = await client.callTool({ name: "write_file", arguments: { host_id: hosts.web, path: "/srv/app.conf", content: "port = 443\n", expected_sha256: "absent", reason: "switch the app to TLS" } });
      const writeId = Number(/queued for approval, id (\d+)/.exec(textOf(write))![1]);
      expect(sent.length).toBe(n);
      // an acting tool on an out-of-scope host: not found, nothing queued
      expect(textOf(await client.callTool({ name: "service_action", arguments: { host_id: hosts.db, unit: "sshd", op: "stop", reason: "try the other one" } }))).toBe(`no such host: ${hosts.db}`);
      // a reason is required
      const noReason = await client.callTool({ name: "service_action", arguments: { host_id: hosts.web, unit: "sshd", op: "stop" } });
      expect(noReason.isError).toBe(true);
      const rows = await db.sql`select id, tool, status, reason, client_name, client_version, args, payload from ai_approvals order by id`;
      expect(rows.map((r) => [Number(r.id), r.tool, r.status, r.client_name, r.client_version])).toEqual([
        [stopId, "service_action", "pending", "claude-test", "1.2.3"],
        [writeId, "write_file", "pending", "claude-test", "1.2.3"],
      ]);
      const sha = createHash("sha256").update("port = 443\n").digest("hex");
      expect(rows[1]!.args).toEqual({ host_id: hosts.web, path: "/srv/app.conf", content: { bytes: 11, sha256: sha }, expected_sha256: "absent" });
      expect(Buffer.from(rows[1]!.payload).toString()).toBe("port = 443\n");

      // the console: the queue shows the client's reason; a person lacking services.stop cannot approve
      const page = await insecureFetch(`${srv.url}/ai/approvals`, { headers: { cookie: approver.cookie } });
      const html = await page.text();
      expect(page.status).toBe(200);
      expect(html).toContain("sshd is using 100% CPU; stop it until investigated");
      expect(html).toContain(`approve request ${stopId}`);
      await db.sql`update console_sessions set reauth_at = now() where id = ${weakApprover.sessionId}`;
      const weak = await consolePost(srv.url, weakApprover, `/ai/approvals/${stopId}/approve`, { confirm: `approve request ${stopId}` });
      expect(weak.status).toBe(403);
      expect(await weak.text()).toContain("needs the services.stop permission");
      // the approver without the typed phrase: refused (dangerous route)
      const unconfirmed = await consolePost(srv.url, approver, `/ai/approvals/${stopId}/approve`, {});
      expect(unconfirmed.status).toBe(403);
      expect((await db.sql`select status from ai_approvals where id = ${stopId}`)[0]!.status).toBe("pending");
      expect(sent.length).toBe(n);
      // rejected: never runs, cannot then be approved, payload gone
      const rejected = await consolePost(srv.url, approver, `/ai/approvals/${writeId}/reject`, { note: "not now" });
      expect(rejected.status).toBe(200);
      const [w] = await db.sql`select status, decided_by, payload from ai_approvals where id = ${writeId}`;
      expect([w!.status, w!.decided_by, w!.payload]).toEqual(["rejected", "approver", null]);
      await db.sql`update console_sessions set reauth_at = now() where id = ${approver.sessionId}`;
      const late = await consolePost(srv.url, approver, `/ai/approvals/${writeId}/approve`, { confirm: `approve request ${writeId}` });
      expect(late.status).toBe(409);
      expect(sent.length).toBe(n);
      // approved with the phrase (recent re-authentication): runs within both, through the agent
      const ok = await consolePost(srv.url, approver, `/ai/approvals/${stopId}/approve`, { confirm: `approve request ${stopId}` });
      expect(ok.status).toBe(200);
      expect(sent.slice(n).map((x) => x.agentId)).toEqual([hosts.web]);
      const [s] = await db.sql`select status, decided_by, outcome from ai_approvals where id = ${stopId}`;
      expect([s!.status, s!.decided_by, s!.outcome]).toEqual(["approved", "approver", "ok"]);

      // an ordinary service operation is not queued: it runs at once (one service.action sent)
      const m = sent.length;
      const restart = await client.callTool({ name: "service_action", arguments: { host_id: hosts.web, unit: "nginx", op: "restart", reason: "reload the new config" } });
      expect(JSON.parse(textOf(restart))).toMatchObject({ ran: true, unit: "nginx.service", op: "restart", ok: true });
      expect(sent.slice(m)).toEqual([{ agentId: hosts.web, action: "service.action" }]);
      expect((await db.sql`select count(*)::int as n from ai_approvals`)[0]!.n).toBe(2);

      // audit: every tool call, with the client and version; the decisions with the person
      const audit = await db.sql`select actor_type, actor_name, on_behalf_of, action, success, details from audit_log where category = 'ai_operation' order by id`;
      const calls = audit.filter((a) => String(a.action).startsWith("mcp."));
      expect(calls.every((a) => a.actor_type === "ai" && a.actor_name === "claude-test" && a.on_behalf_of === "owner")).toBe(true);
      expect(calls.find((a) => a.action === "mcp.write_file")!.details).toMatchObject({ client: { name: "claude-test", version: "1.2.3" }, tool: "write_file", arguments: { content: { bytes: 11, sha256: sha } }, outcome: `queued:${writeId}` });
      expect(JSON.stringify(audit)).not.toContain("port = 443");
      expect(calls.find((a) => a.action === "mcp.get_host" && a.success === false)!.details).toMatchObject({ outcome: "refused", error: `no such host: ${hosts.db}` });
      const decisions = audit.filter((a) => String(a.action).startsWith("ai."));
      expect(decisions.map((a) => [a.action, a.actor_name, a.success, a.details.outcome])).toEqual([
        ["ai.approve", "weak", false, "refused"], ["ai.reject", "approver", true, "rejected"], ["ai.approve", "approver", true, "ok"],
      ]);
      expect(decisions[2]!.details).toMatchObject({ client: { name: "claude-test", version: "1.2.3" }, tool: "service_action", approvedBy: "approver", reason: "sshd is using 100% CPU; stop it until investigated" });
    } finally {
      await client.close();
    }
  });

  test("permissions: without ai.assistant.use every tool is refused; without ai.assistant.act acting tools are; a missing tool permission is named", async () => {
    const noUse = await mcpClient(srv.url, await token(db, owner.id, ALL.filter((p) => p !== "ai.assistant.use")));
    const a = await noUse.callTool({ name: "list_hosts", arguments: {} });
    expect([a.isError, textOf(a)]).toEqual([true, "this needs the ai.assistant.use permission, which this token does not have"]);
    await noUse.close();
    const noAct = await mcpClient(srv.url, await token(db, owner.id, ALL.filter((p) => p !== "ai.assistant.act")));
    const b = await noAct.callTool({ name: "write_file", arguments: { host_id: hosts.web, path: "/srv/x", content: "x", expected_sha256: "absent", reason: "because" } });
    expect([b.isError, textOf(b)]).toEqual([true, "this needs the ai.assistant.act permission, which this token does not have"]);
    await noAct.close();
    const noLogs = await mcpClient(srv.url, await token(db, owner.id, ALL.filter((p) => p !== "logs.view")));
    const c = await noLogs.callTool({ name: "host_logs", arguments: { host_id: hosts.web } });
    expect([c.isError, textOf(c)]).toEqual([true, "this needs the logs.view permission, which this token does not have"]);
    await noLogs.close();
  });

  test("an approval runs within the requester too: a request whose token was revoked meanwhile is refused, nothing sent", async () => {
    const secret = await token(db, owner.id, ALL);
    const client = await mcpClient(srv.url, secret);
    const r = await client.callTool({ name: "service_action", arguments: { host_id: hosts.web, unit: "sshd", op: "stop", reason: "stop it until investigated" } });
    const id = Number(/queued for approval, id (\d+)/.exec(textOf(r))![1]);
    await client.close();
    await db.sql`update api_tokens set revoked_at = now(), revoked_by = 'test' where token_hash = ${createHash("sha256").update(secret).digest()}`;
    const n = sent.length;
    await db.sql`update console_sessions set reauth_at = now() where id = ${approver.sessionId}`;
    const res = await consolePost(srv.url, approver, `/ai/approvals/${id}/approve`, { confirm: `approve request ${id}` });
    expect(await res.text()).toContain("the requesting token has been revoked");
    expect(sent.length).toBe(n);
    const [row] = await db.sql`select status, outcome from ai_approvals where id = ${id}`;
    expect([row!.status, row!.outcome]).toEqual(["approved", "refused"]);
  });

  test("a session belongs to its token: another AI token presenting its id gets 404", async () => {
    const first = await mcpClient(srv.url, await token(db, owner.id, ALL));
    const sid = (first.transport as unknown as { sessionId: string }).sessionId;
    expect(sid).toBeTruthy();
    const other = await token(db, owner.id, ALL);
    const res = await insecureFetch(`${srv.url}/mcp`, {
      method: "POST",
      headers: { authorization: `Bearer ${other}`, "mcp-session-id": sid, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list", params: {} }),
    });
    expect(res.status).toBe(404);
    await first.close();
  });
});
