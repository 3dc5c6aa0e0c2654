/**
 * AI-initiated service operations end to end: the SDK's own MCP client over the real port with an
 * AI-client token, the compiled agent's Control process and a real `systemd --user` (with a real
 * journald, test/support/systemd-user.ts). An ordinary restart runs at once and its result (with
 * the unit's journal lines) comes back to the AI client; stopping sshd, or any operation on a
 * group of hosts, is queued, approved by a person in the console with the typed phrase and the
 * password, and only then runs against the real unit; stopping the agent's own unit is queued and
 * rejected, and never runs. Audit: `ai_operation` rows carry the client's name and version, the
 * tool, the arguments, the approver and the outcome; `service_operation` rows the host, unit and
 * result.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { issueCommand } from "../../src/security/issue.ts";
import { until, type E2eServer } from "../support/agent-harness.ts";
import { serviceFleetAvailable, startServiceFleet, type ServiceFleet } from "../support/service-fleet.ts";
import type { SystemdUser } from "../support/systemd-user.ts";
import { consolePost, mcpClient, person, PASSWORD, startMcpServer, textOf, token, type McpTestServer, type Person } from "./support.ts";

setDefaultTimeout(180_000);

const run = serviceFleetAvailable({ journal: true });

let fleet: ServiceFleet;
let server: E2eServer;
let sd: SystemdUser;
let agentId: number;
let idleId: number;
let hostname: string;
let srv: McpTestServer;
let owner: Person;
let approver: Person;
const APP = "sm-mcp-app.service";
const PERMS = ["ai.assistant.use", "ai.assistant.act", "hosts.view", "services.view", "services.start", "services.stop", "services.restart", "services.enable"];

beforeAll(async () => {
  if (!run) return;
  const unit = (d: string, start = "") => `[Unit]\nDescription=${d}\n[Service]\n${start}ExecStart=/bin/sh -c 'echo "${d} up"; exec sleep 600'\n`;
  // the "up" line comes from ExecStartPost, which the restart waits for (ExecStart's own echo
  // runs after systemctl has returned, so whether the result holds it was a race)
  const units = {
    [APP]: unit("ServerMind MCP app", "ExecStartPre=/bin/sh -c 'echo starting; sleep 1'\nExecStartPost=/bin/sh -c 'echo \"ServerMind MCP app up\"; sleep 1'\n"),
    "sshd.service": unit("stand-in for the SSH daemon"),
    "servermind-agent.service": unit("stand-in for the agent unit"),
  };
  fleet = await startServiceFleet({ journal: true, units, started: ["sshd.service", "servermind-agent.service"], tag: "group:web" });
  ({ server, sd, agentId, idleId, hostname } = fleet);
  srv = await startMcpServer(server.db, { commandKey: server.commandKey, dispatch: server.dispatch });
  owner = await person(server.db, "aiowner", PERMS, ["group:web"]);
  approver = await person(server.db, "human", PERMS);
  await until("command channel up", async () => ((await issueCommand({ sql: server.db.sql, commandKey: server.commandKey, dispatch: server.dispatch, audit: () => {} }, { type: "user", id: 1, name: "t" }, agentId, "ping", {})).result as { ok?: boolean })?.ok, 90_000, 500);
});

afterAll(async () => {
  await srv?.stop();
  await fleet?.stop();
});

const active = async (unit: string) => (await sd.ctl("show", "--property=ActiveState", "--value", "--", unit)).out.trim();
const queuedId = (r: unknown) => Number(/queued for approval, id (\d+)/.exec(textOf(r))?.[1] ?? NaN);

describe.if(run)("AI-initiated service operations with the compiled agent and a real systemd", () => {
  test("an ordinary restart runs at once; its result and the unit's journal lines come back to the AI client; audited", async () => {
    const client = await mcpClient(srv.url, await token(server.db, owner.id, PERMS, { clientName: "ops-bot" }), "ops-bot", "0.4.0");
    try {
      const t0 = performance.now();
      const r = await client.callTool({ name: "service_action", arguments: { host_id: agentId, unit: APP, op: "restart", reason: "pick up the new configuration" } });
      const ms = performance.now() - t0;
      expect(r.isError).toBeFalsy();
      const body = JSON.parse(textOf(r));
      expect(body).toMatchObject({ ran: true, ok: true, unit: APP, op: "restart", host: { id: agentId, hostname }, after: { active: "active", sub: "running" } });
      expect(body.lines.some((l: string) => l.endsWith("journal: starting"))).toBe(true);
      expect(body.lines.some((l: string) => l.endsWith("journal: ServerMind MCP app up"))).toBe(true);
      expect(await active(APP)).toBe("active");
      console.log(`MCP service_action restart (ran at once): ${ms.toFixed(0)} ms, ${body.lines.length} output lines`);

      const [call] = await server.db.sql`select actor_type, actor_name, on_behalf_of, success, details from audit_log where category = 'ai_operation' and action = 'mcp.service_action' order by id desc limit 1`;
      expect(call).toMatchObject({ actor_type: "ai", actor_name: "ops-bot", on_behalf_of: "aiowner", success: true });
      expect(call!.details).toMatchObject({ client: { name: "ops-bot", version: "0.4.0" }, tool: "service_action", arguments: { host_id: agentId, unit: APP, op: "restart", reason: "pick up the new configuration" }, outcome: "ok" });
      const [op] = await server.db.sql`select details from audit_log where category = 'service_operation' and action = 'service.restart' order by id desc limit 1`;
      expect(op!.details).toMatchObject({ host: hostname, agentId, unit: APP, op: "restart", result: "ok" });
      expect((await server.db.sql`select count(*)::int as n from ai_approvals`)[0]!.n).toBe(0);
    } finally {
      await client.close();
    }
  });

  test("stopping sshd is queued, runs only after a person approves with the phrase and the password, and then really stops the unit", async () => {
    const client = await mcpClient(srv.url, await token(server.db, owner.id, PERMS, { clientName: "ops-bot" }), "ops-bot", "0.4.0");
    try {
      const r = await client.callTool({ name: "service_action", arguments: { host_id: agentId, unit: "sshd", op: "stop", reason: "sshd is spinning at 100% CPU" } });
      const id = queuedId(r);
      expect(id).toBeGreaterThan(0);
      expect(textOf(r)).toContain("a dangerous operation");
      await Bun.sleep(500);
      expect(await active("sshd.service")).toBe("active"); // queued, not run

      await server.db.sql`update console_sessions set reauth_at = null where id = ${approver.sessionId}`;
      const noReauth = await consolePost(srv.url, approver, `/ai/approvals/${id}/approve`, { confirm: `approve request ${id}` });
      expect(noReauth.status).toBe(403);
      const wrongPhrase = await consolePost(srv.url, approver, `/ai/approvals/${id}/approve`, { confirm: "approve it", reauth: PASSWORD });
      expect(wrongPhrase.status).toBe(403);
      expect(await active("sshd.service")).toBe("active");
      const ok = await consolePost(srv.url, approver, `/ai/approvals/${id}/approve`, { confirm: `approve request ${id}`, reauth: PASSWORD });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain(`Request ${id} approved and run: ok`);
      expect(await active("sshd.service")).toBe("inactive");

      const [row] = await server.db.sql`select status, decided_by, outcome, result from ai_approvals where id = ${id}`;
      expect(row).toMatchObject({ status: "approved", decided_by: "human", outcome: "ok", result: { unit: "sshd.service", op: "stop", ok: true, after: { active: "inactive" } } });
      const [decision] = await server.db.sql`select actor_name, success, details from audit_log where category = 'ai_operation' and action = 'ai.approve' order by id desc limit 1`;
      expect(decision).toMatchObject({ actor_name: "human", success: true });
      expect(decision!.details).toMatchObject({
        client: { name: "ops-bot", version: "0.4.0" }, tool: "service_action", arguments: { host_id: agentId, unit: "sshd.service", op: "stop" },
        reason: "sshd is spinning at 100% CPU", approvedBy: "human", outcome: "ok", dangerous: true, confirmed: true, reauth: "password",
      });
      const [op] = await server.db.sql`select actor_name, details from audit_log where category = 'service_operation' and action = 'service.stop' and details->>'unit' = 'sshd.service' order by id desc limit 1`;
      expect(op).toMatchObject({ actor_name: "human" });
      expect(op!.details).toMatchObject({ host: hostname, unit: "sshd.service", op: "stop", result: "ok", aiRequest: id });
      const [sop] = await server.db.sql`select status, requested_by from service_operations where unit = 'sshd.service' and op = 'stop' order by id desc limit 1`;
      expect(sop).toMatchObject({ status: "ok", requested_by: expect.stringContaining(`human approving AI request ${id}`) });
    } finally {
      await client.close();
    }
  });

  test("stopping the agent's own unit is queued; rejected, it never runs", async () => {
    const client = await mcpClient(srv.url, await token(server.db, owner.id, PERMS, { clientName: "ops-bot" }), "ops-bot", "0.4.0");
    try {
      const id = queuedId(await client.callTool({ name: "service_action", arguments: { host_id: agentId, unit: "servermind-agent", op: "stop", reason: "restart the agent cleanly" } }));
      expect(id).toBeGreaterThan(0);
      const res = await consolePost(srv.url, approver, `/ai/approvals/${id}/reject`, { note: "never stop the agent from an AI client" });
      expect(res.status).toBe(200);
      expect(await active("servermind-agent.service")).toBe("active");
      const [row] = await server.db.sql`select status, outcome from ai_approvals where id = ${id}`;
      expect(row).toMatchObject({ status: "rejected", outcome: "rejected" });
      const [decision] = await server.db.sql`select details from audit_log where category = 'ai_operation' and action = 'ai.reject' order by id desc limit 1`;
      expect(decision!.details).toMatchObject({ client: { name: "ops-bot", version: "0.4.0" }, tool: "service_action", rejectedBy: "human", outcome: "rejected", note: "never stop the agent from an AI client" });
      expect((await server.db.sql`select count(*)::int as n from service_operations where unit = 'servermind-agent.service'`)[0]!.n).toBe(0);
    } finally {
      await client.close();
    }
  });

  test("an operation on a group of hosts is queued; approved, it runs on each listed host: the live one done, the offline one failed", async () => {
    expect((await sd.ctl("stop", "--", APP)).code).toBe(0);
    const client = await mcpClient(srv.url, await token(server.db, owner.id, PERMS, { clientName: "ops-bot" }), "ops-bot", "0.4.0");
    try {
      const r = await client.callTool({ name: "service_action_group", arguments: { group: "group:web", unit: APP, op: "start", reason: "bring the app back on the web tier" } });
      const id = queuedId(r);
      expect(id).toBeGreaterThan(0);
      expect(textOf(r)).toContain("2 hosts");
      expect(await active(APP)).toBe("inactive");
      await server.db.sql`update console_sessions set reauth_at = now() where id = ${approver.sessionId}`;
      const page = await (await fetch(`${srv.url}/ai/approvals`, { headers: { cookie: approver.cookie }, tls: { rejectUnauthorized: false } } as RequestInit)).text();
      expect(page).toContain("group:web (2 hosts)");
      expect(page).toContain("bring the app back on the web tier");
      const ok = await consolePost(srv.url, approver, `/ai/approvals/${id}/approve`, { confirm: `approve request ${id}` });
      expect(ok.status).toBe(200);
      expect(await active(APP)).toBe("active");
      const [row] = await server.db.sql`select outcome, result from ai_approvals where id = ${id}`;
      expect(row!.outcome).toBe("failed on 1 of 2 hosts");
      const byHost = Object.fromEntries(row!.result.results.map((x: any) => [x.host.id, x]));
      expect(byHost[agentId]).toMatchObject({ ok: true, after: { active: "active" } });
      expect(byHost[idleId]).toMatchObject({ ok: false, error: expect.stringMatching(/offline/) });
      const ops = await server.db.sql`select agent_id, status from service_operations where run_id = ${row!.result.run} order by agent_id`;
      expect(ops.map((o) => [Number(o.agent_id), o.status]).sort()).toEqual([[agentId, "ok"], [idleId, "failed"]].sort());
      const [decision] = await server.db.sql`select details from audit_log where category = 'ai_operation' and action = 'ai.approve' order by id desc limit 1`;
      expect(decision!.details).toMatchObject({ tool: "service_action_group", arguments: { group: "group:web", unit: APP, op: "start" }, approvedBy: "human", outcome: "failed on 1 of 2 hosts" });
    } finally {
      await client.close();
    }
  });
});
