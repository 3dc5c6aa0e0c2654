import { expect, test } from "bun:test";
import { generateKeyPairSync, sign } from "node:crypto";
import { createCommandChecker } from "../../../agent/control/process.ts";
import { signCommand, type Command } from "../../../src/ingest/frame/commands.ts";

const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const now = 1_800_000_000_000;
const AGENT = 7;

function command(action: string, over: Partial<Command> = {}) {
  const c: Command = { v: 1, id: `cmd-${Math.random().toString(36).slice(2)}`, agentId: AGENT, action, args: {}, issuedMs: now, requestedBy: "user:1 alice", ...over };
  return { t: "command", command: signCommand(c, privateKey) };
}

const result = (m: Record<string, unknown>) => m.result as { ok: boolean; error?: string; result?: unknown };

test("a signed, fresh, allow-listed command for this agent runs once", () => {
  const check = createCommandChecker({ key: publicKey, agentId: AGENT, now: () => now });
  const cmd = command("ping");
  expect(result(check(cmd))).toEqual({ ok: true, result: "pong" });
  expect(result(check(cmd)).error).toMatch(/already|seen|replay/i);
});

test("unsigned, wrongly signed, stale, foreign and unlisted commands are refused", () => {
  const check = createCommandChecker({ key: publicKey, agentId: AGENT, now: () => now });
  const forged = command("ping");
  (forged.command as any).sig = Buffer.from(sign(null, Buffer.from("something else"), generateKeyPairSync("ed25519").privateKey)).toString("base64");
  expect(result(check(forged)).ok).toBe(false);
  expect(result(check({ t: "command", command: { action: "ping" } })).ok).toBe(false);
  expect(result(check(command("ping", { issuedMs: now - 10 * 60_000 }))).error).toMatch(/older than five minutes/);
  expect(result(check(command("ping", { agentId: AGENT + 1 }))).ok).toBe(false);
  expect(result(check(command("rm -rf /"))).error).toMatch(/allow/);
  // a valid signature over different args does not carry over
  const tampered = command("ping");
  (tampered.command as any).args = { extra: 1 };
  expect(result(check(tampered)).ok).toBe(false);
});

test("remediation actions go to the remediator; without an installed key everything is refused", () => {
  const seen: unknown[] = [];
  const check = createCommandChecker({ key: publicKey, agentId: AGENT, now: () => now, security: (s) => (seen.push(s), { ok: true, dryRun: true }) });
  expect(result(check(command("cis.remediate")))).toEqual({ ok: true, dryRun: true } as any);
  expect(seen.length).toBe(1);
  expect(result(createCommandChecker({ key: undefined, agentId: AGENT })(command("ping"))).error).toMatch(/no server command key/);
});
