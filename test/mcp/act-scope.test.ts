/**
 * Where an AI client may act: ai.assistant.act has a host scope like every permission, so an
 * acting tool (service_action, service_action_group, write_file) reaches only hosts within BOTH
 * that scope and the operation's permission's. A user who lets the assistant act on group:web
 * while holding services.restart over every host (another role) must not find the assistant
 * restarting a group:db host. Over the real TLS port with the SDK's client.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { testDatabase, type TestDb } from "../support/db.ts";
import { commandsWithoutAgents } from "../support/security-views.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { mcpClient, PASSWORD, startMcpServer, textOf, token, type McpTestServer } from "./support.ts";

let db: TestDb;
let srv: McpTestServer;
const sent: number[] = [];
const hosts = { web: 0, db: 0 };
let owner = 0;

const SERVICES = ["hosts.view", "services.view", "services.restart", "services.stop", "files.view", "files.write"];

beforeAll(async () => {
  db = await testDatabase(4);
  srv = await startMcpServer(db, {
    ...commandsWithoutAgents(),
    dispatch: async (agentId: number) => {
      sent.push(agentId);
      return { ok: true, manager: "systemd", exitCode: 0, output: "" };
    },
  });
  for (const [k, tag] of [["web", "group:web"], ["db", "group:db"]] as const) {
    const [a] = await db.sql`insert into agents (hostname, public_key, tags, last_seen) values (${`${k}-1`}, ${Buffer.alloc(32, k.length)}, ${[tag]}, now()) returning id`;
    hosts[k] = Number(a!.id);
  }
  // the assistant may act on group:web only; the person runs services everywhere
  const ai = await createRole(db.sql, "ai-on-web", "", ["ai.assistant.use", "ai.assistant.act"], ["group:web"]);
  const ops = await createRole(db.sql, "ops-everywhere", "", SERVICES, []);
  owner = await createUser(db.sql, { username: "owner", password: PASSWORD, roleIds: [ai, ops] }, DEFAULT_SETTINGS.password);
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  await db?.drop();
});

test("acting tools reach only hosts within the ai.assistant.act scope", async () => {
  const client = await mcpClient(srv.url, await token(db, owner, ["ai.assistant.use", "ai.assistant.act", ...SERVICES]));
  const queued = async () => Number((await db.sql`select count(*)::int as n from ai_approvals`)[0]!.n);
  const before = await queued();
  const run = await client.callTool({ name: "service_action", arguments: { host_id: hosts.db, unit: "nginx", op: "restart", reason: "it looks stuck" } });
  expect([run.isError, textOf(run)]).toEqual([true, `no such host: ${hosts.db}`]);
  const stop = await client.callTool({ name: "service_action", arguments: { host_id: hosts.db, unit: "sshd", op: "stop", reason: "it looks stuck" } });
  expect(stop.isError).toBe(true);
  const write = await client.callTool({ name: "write_file", arguments: { host_id: hosts.db, path: "/etc/motd", content: "hi", expected_sha256: "absent", reason: "a greeting" } });
  expect(write.isError).toBe(true);
  const group = await client.callTool({ name: "service_action_group", arguments: { group: "group:db", unit: "nginx", op: "restart", reason: "all of them" } });
  expect(group.isError).toBe(true);
  // every host in scope of services.restart, but only group:web within ai.assistant.act: the request lists web-1 alone
  const everyHost = await client.callTool({ name: "service_action_group", arguments: { group: "*", unit: "nginx", op: "restart", reason: "all of them" } });
  expect(textOf(everyHost)).toContain("(1 host: web-1)");
  expect(sent).toEqual([]);
  expect(await queued()).toBe(before + 1);
  // within the scope: runs
  const ok = await client.callTool({ name: "service_action", arguments: { host_id: hosts.web, unit: "nginx", op: "restart", reason: "it looks stuck" } });
  expect(ok.isError).toBeFalsy();
  expect(sent).toEqual([hosts.web]);
  await client.close();
});
