/** Issue 12, finding 6: agent enrollment with a token is audited, with IP, user agent and category. */
import { test, expect, afterAll, beforeAll } from "bun:test";
import { startTestServer, type TestServer } from "../support/server.ts";
import { newKeys } from "../support/sim-agent.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

const enroll = (body: unknown) =>
  fetch(`${s.url}/api/v1/enroll`, {
    method: "POST", body: JSON.stringify(body),
    headers: { "content-type": "application/json", "user-agent": "servermind-agent/9.9 (test)" },
    tls: { rejectUnauthorized: false },
  } as RequestInit);

test("a successful enrollment and a refused one are both in the audit trail, with IP, user agent and category", async () => {
  const token = await s.token();
  const [t] = await s.db.sql`select id from activation_tokens order by id desc limit 1`;
  const ok = await enroll({ token, publicKey: newKeys().publicKeyB64, hostname: "web-7" });
  expect(ok.status).toBe(200);
  const { agentId } = (await ok.json()) as { agentId: number };
  const reuse = await enroll({ token, publicKey: newKeys().publicKeyB64, hostname: "web-8" });
  expect(reuse.status).toBe(401);
  const rows = await s.db.sql`select actor_type, actor_id, actor_name, ip, user_agent, category, action, target, success, details
    from audit_log where action = 'agents.enroll' order by id`;
  expect([...rows]).toEqual([
    { actor_type: "agent", actor_id: String(agentId), actor_name: "web-7", ip: "127.0.0.1", user_agent: "servermind-agent/9.9 (test)",
      category: "security_event", action: "agents.enroll", target: `agent ${agentId}`, success: true, details: { token: Number(t!.id) } },
    { actor_type: "anonymous", actor_id: "", actor_name: "web-8", ip: "127.0.0.1", user_agent: "servermind-agent/9.9 (test)",
      category: "security_event", action: "agents.enroll", target: "", success: false, details: { error: "bad_token" } },
  ]);
  // the token itself is never recorded
  expect(JSON.stringify(rows)).not.toContain(token);
});
