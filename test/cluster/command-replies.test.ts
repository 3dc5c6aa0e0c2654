/**
 * Commands down the agent's stream and their answers back, with the real server, the real
 * cluster bus and PostgreSQL: the path src/main.ts wires for the security feature.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { generateKeyPairSync, createPublicKey } from "node:crypto";
import { startTestServer, type TestServer } from "../support/server.ts";
import { enroll, openStream } from "../support/sim-agent.ts";
import { startClusterBus, type ClusterBus } from "../../src/cluster/bus.ts";
import { commandDispatcher, startCommandReplies, type CommandReplies } from "../../src/cluster/command-replies.ts";
import { issueCommand, type CommandDeps } from "../../src/security/issue.ts";
import { verifyCommand, type SignedCommand } from "../../src/ingest/frame/commands.ts";
import { audit } from "../../src/audit/audit.ts";

let s: TestServer;
let bus: ClusterBus;
let replies: CommandReplies;
const { privateKey } = generateKeyPairSync("ed25519");
const publicKey = createPublicKey(privateKey);

beforeAll(async () => {
  s = await startTestServer();
  bus = await startClusterBus({ sql: s.db.sql, streams: s.ingest.deps.streams!, directory: s.ingest.deps.directory });
  replies = await startCommandReplies(s.db.sql);
  s.ingest.deps.onCommandResult = (agentId, id, result) => replies.deliver(agentId, id, result);
});
afterAll(async () => {
  await replies?.stop();
  await bus?.stop();
  await s?.close();
});

function deps(timeoutMs = 5000): CommandDeps {
  return { sql: s.db.sql, commandKey: privateKey, audit: (e) => audit(s.db.sql, e).then(() => {}), dispatch: commandDispatcher(bus, replies, timeoutMs) };
}

test("a signed command reaches the agent's stream and its answer completes the command, audited", async () => {
  const a = await enroll(s.url, await s.token(), "cmd-1");
  const stream = await openStream(s.url, a);
  const seen: SignedCommand[] = [];
  stream.onCommand = (m) => {
    seen.push(m.command);
    const v = verifyCommand(m.command, { publicKey, agentId: a.id, allow: new Set(["cis.scan"]) });
    stream.sendText(JSON.stringify({ type: "command-result", id: m.id, result: v.ok ? { ok: true, action: m.command.action } : { ok: false, error: v.reason } }));
  };
  const who = { type: "user" as const, id: 1, name: "alice" };
  const { cmd, result } = await issueCommand(deps(), who, a.id, "cis.scan", {});
  expect(result).toEqual({ ok: true, action: "cis.scan" });
  expect(seen[0]!.id).toBe(cmd.id);
  const [row] = await s.db.sql`select status, result from security_commands where id = ${cmd.id}`;
  expect(row).toMatchObject({ status: "ok", result: { ok: true } });
  const [log] = await s.db.sql`select action, success, actor_name from audit_log where target = ${`agent:${a.id}`}`;
  expect(log).toMatchObject({ action: "cis.scan", success: true, actor_name: "alice" });
  stream.close();
});

test("an agent cannot answer another agent's command; unknown ids are refused", async () => {
  const a = await enroll(s.url, await s.token(), "cmd-2");
  const b = await enroll(s.url, await s.token(), "cmd-3");
  const sa = await openStream(s.url, a);
  const sb = await openStream(s.url, b);
  let commandId = "";
  sa.onCommand = (m) => {
    commandId = m.id;
    sb.sendText(JSON.stringify({ type: "command-result", id: m.id, result: { ok: true, forged: true } })); // b answers a's command
  };
  const run = issueCommand(deps(1500), { type: "system", id: "test", name: "test" } as any, a.id, "cis.scan", {});
  const { result } = await run;
  expect(result).toMatchObject({ ok: false, error: expect.stringContaining("did not answer") });
  expect(sb.messages.some((m) => m.type === "error" && m.code === "unknown_command")).toBe(true);
  expect(commandId).not.toBe("");
  sa.close();
  sb.close();
});

test("an answer received by another node reaches the node that waits, through PostgreSQL", async () => {
  const a = await enroll(s.url, await s.token(), "cmd-4");
  const otherNode = await startCommandReplies(s.db.sql);
  try {
    const id = crypto.randomUUID();
    await s.db.sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at) values (${id}, ${a.id}, 'cis.scan', '{}', 'test', now())`;
    const waiting = replies.wait(id, a.id, 5000); // this node waits
    expect(await otherNode.deliver(a.id, id, { ok: true, via: "node-b" })).toBe(true); // the other node got the answer
    expect(await waiting).toEqual({ ok: true, via: "node-b" });
    expect(await otherNode.deliver(a.id + 1, id, { ok: true })).toBe(false); // not that agent's command
  } finally {
    await otherNode.stop();
  }
});
