/**
 * Output of running commands up the agent's stream (`command-output`, docs/protocol.md 8.2), with
 * the real server and PostgreSQL: chunks of a command sent to this agent are stored in order and
 * read back while the command waits for its result; another agent's command, an unknown id, a
 * repeated chunk number and chunks that break the rules are refused with `unknown_command`.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { startTestServer, type TestServer } from "../support/server.ts";
import { enroll, openStream } from "../support/sim-agent.ts";
import { checkChunk, readCommandOutput } from "../../src/cluster/command-output.ts";
import { issueCommand, type CommandDeps } from "../../src/security/issue.ts";
import { audit } from "../../src/audit/audit.ts";

setDefaultTimeout(30_000);

let s: TestServer;
const { privateKey } = generateKeyPairSync("ed25519");

beforeAll(async () => {
  s = await startTestServer({}, { commands: true });
});
afterAll(async () => {
  await s?.close();
});

const line = (text: string, src = "journal") => ({ ts: 1_795_000_000_000, src, text });

test("chunks arrive before the result and are stored in order; foreign, unknown, repeated and bad chunks are refused", async () => {
  const a = await enroll(s.url, await s.token(), "out-1");
  const b = await enroll(s.url, await s.token(), "out-2");
  const sa = await openStream(s.url, a);
  const sb = await openStream(s.url, b);
  const errorsOf = (st: typeof sa, name: string) => st.messages.filter((m) => m.type === "error").map((m) => `${name}:${m.code}`);
  const errors = () => [...errorsOf(sa, "a"), ...errorsOf(sb, "b")];
  let readWhileRunning: Awaited<ReturnType<typeof readCommandOutput>> | undefined;
  sa.onCommand = async (m) => {
    sa.sendText(JSON.stringify({ type: "command-output", id: m.id, seq: 0, lines: [line("tick 1"), line("activating", "state")] }));
    sa.sendText(JSON.stringify({ type: "command-output", id: m.id, seq: 1, lines: [line("tick 2")] }));
    const stored = async (n: number) => {
      const end = Date.now() + 5000;
      while (Date.now() < end && (await readCommandOutput(s.db.sql, m.id)).lines.length < n) await Bun.sleep(20);
    };
    await stored(3);
    readWhileRunning = await readCommandOutput(s.db.sql, m.id);
    // refused: the same chunk number again, another agent's stream, a bad source, no lines, an unknown id
    sa.sendText(JSON.stringify({ type: "command-output", id: m.id, seq: 1, lines: [line("again")] }));
    sb.sendText(JSON.stringify({ type: "command-output", id: m.id, seq: 2, lines: [line("from b")] }));
    sa.sendText(JSON.stringify({ type: "command-output", id: m.id, seq: 3, lines: [line("x", "shell")] }));
    sa.sendText(JSON.stringify({ type: "command-output", id: m.id, seq: 4, lines: [] }));
    sa.sendText(JSON.stringify({ type: "command-output", id: "no-such-command-id", seq: 0, lines: [line("x")] }));
    const end = Date.now() + 5000;
    while (Date.now() < end && errors().length < 5) await Bun.sleep(20);
    sa.sendText(JSON.stringify({ type: "command-result", id: m.id, result: { ok: true } }));
  };
  const deps: CommandDeps = { sql: s.db.sql, commandKey: privateKey, audit: (e) => audit(s.db.sql, e).then(() => {}), dispatch: s.dispatch! };
  const { cmd, result } = await issueCommand(deps, { type: "user", id: 1, name: "alice" }, a.id, "service.action", { unit: "x.service", op: "start" });
  expect(result).toEqual({ ok: true });
  expect(readWhileRunning!.lines.map((l) => l.text)).toEqual(["tick 1", "activating", "tick 2"]);
  expect(readWhileRunning!.last).toBe(1);
  expect((await readCommandOutput(s.db.sql, cmd.id)).lines.map((l) => l.text)).toEqual(["tick 1", "activating", "tick 2"]);
  expect((await readCommandOutput(s.db.sql, cmd.id, 0)).lines.map((l) => l.text)).toEqual(["tick 2"]);
  expect(errors().sort()).toEqual(["a:unknown_command", "a:unknown_command", "a:unknown_command", "a:unknown_command", "b:unknown_command"]);
  sa.close();
  sb.close();
});

test("chunk rules: whole seq 0-499, 1-200 lines of {ts, src, text} with a known source and one line of text up to 2,048 characters", () => {
  expect(checkChunk(0, [line("a")])).toEqual([line("a")]);
  expect(checkChunk(499, [line("a")])).not.toBeNull();
  for (const seq of [-1, 500, 1.5, "0", null]) expect(checkChunk(seq, [line("a")])).toBeNull();
  expect(checkChunk(0, [])).toBeNull();
  expect(checkChunk(0, Array.from({ length: 201 }, () => line("a")))).toBeNull();
  expect(checkChunk(0, [line("x".repeat(2049))])).toBeNull();
  expect(checkChunk(0, [line("two\nlines")])).toBeNull();
  expect(checkChunk(0, [{ ts: "now", src: "journal", text: "a" }])).toBeNull();
  expect(checkChunk(0, [line("a\u0000b")])![0]!.text).toBe("a\uFFFDb");
});

test("docs/protocol.md 8.3: the example's bytes are the JSON shown, and the server's rules take its chunk", async () => {
  const doc = await Bun.file(new URL("../../docs/protocol.md", import.meta.url)).text();
  const block = /<!-- command-output-example -->\n```\n([\s\S]*?)```/.exec(doc)![1]!;
  const bytes = Buffer.from(block.trim().split(/\s+/).map((h) => parseInt(h, 16)));
  const m = JSON.parse(bytes.toString("utf8"));
  expect(bytes.toString("utf8")).toBe(JSON.stringify({ type: "command-output", id: "0b0e9a52-7d7e-4c1a-9f43-2b6f0e1d2a3b", seq: 0, lines: [{ ts: 1795000000123, src: "journal", text: "tick 1" }] }));
  expect(bytes.length).toBe(140);
  expect(doc).toContain(bytes.toString("utf8"));
  expect(checkChunk(m.seq, m.lines)).toEqual([{ ts: 1795000000123, src: "journal", text: "tick 1" }]);
});
