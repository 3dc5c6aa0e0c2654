import { expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandKeyPaths, readCommandKey, readCommandTrust } from "../../../agent/identity/command-key.ts";

test("the command key and agent id are read as enrollment writes them; anything missing or odd means no trust", () => {
  const state = mkdtempSync(join(tmpdir(), "sm-cmdkey-"));
  try {
    expect(readCommandTrust(state)).toBeUndefined();
    const k = commandKeyPaths(state);
    mkdirSync(k.dir);
    const { publicKey } = generateKeyPairSync("ed25519");
    writeFileSync(k.publicKey, Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url").toString("base64") + "\n");
    expect(readCommandKey(state)?.equals(publicKey)).toBe(true);
    expect(readCommandTrust(state)).toBeUndefined(); // no agent id yet
    writeFileSync(k.agentId, "0\n");
    expect(readCommandTrust(state)).toBeUndefined();
    writeFileSync(k.agentId, "17\n");
    expect(readCommandTrust(state)?.agentId).toBe(17);
    writeFileSync(k.publicKey, "not a key\n");
    expect(readCommandTrust(state)).toBeUndefined();
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
