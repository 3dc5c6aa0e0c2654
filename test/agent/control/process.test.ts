import { expect, test } from "bun:test";
import { generateKeyPairSync, sign } from "node:crypto";
import { createCommandChecker } from "../../../agent/control/process.ts";

const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const now = 1_800_000_000_000;

function signed(command: string, over: Record<string, unknown> = {}) {
  const body = { command, args: {}, issuedMs: now, nonce: `n-${Math.random()}`, ...over };
  const payload = Buffer.from(JSON.stringify({ command: body.command, args: body.args, issuedMs: body.issuedMs, nonce: body.nonce }));
  return { t: "command", ...body, signature: new Uint8Array(sign(null, payload, privateKey)) };
}

test("a signed, fresh, allow-listed command runs once", () => {
  const check = createCommandChecker(publicKey, () => now);
  const cmd = signed("ping");
  expect(check(cmd)).toEqual({ t: "result", ok: true, result: "pong" });
  expect(check(cmd).message).toMatch(/nonce was already used/);
});

test("unsigned, wrongly signed, stale and unlisted commands are refused", () => {
  const check = createCommandChecker(publicKey, () => now);
  const other = generateKeyPairSync("ed25519").privateKey;
  const forged = signed("ping");
  forged.signature = new Uint8Array(sign(null, Buffer.from("something else"), other));
  expect(check(forged).message).toMatch(/does not verify/);
  expect(check({ t: "command", command: "ping" }).message).toMatch(/needs/);
  expect(check(signed("ping", { issuedMs: now - 10 * 60_000 })).message).toMatch(/older than five minutes/);
  expect(check(signed("rm -rf /")).message).toMatch(/not on the allow-list/);
  // a valid signature over different args does not carry over
  const tampered = signed("ping");
  (tampered as any).args = { extra: 1 };
  expect(check(tampered).message).toMatch(/does not verify/);
});

test("without an installed server key every command is refused", () => {
  expect(createCommandChecker(undefined)(signed("ping")).message).toMatch(/no server command key/);
});
