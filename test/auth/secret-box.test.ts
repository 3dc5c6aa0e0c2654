import { afterAll, test, expect } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createSecretBox, loadSecretKey } from "../../src/auth/secret-box.ts";
import { tempDirs } from "../support/temp.ts";

const dirs = tempDirs("secret-key-");
afterAll(() => dirs.removeAll());

test("sealed secrets open with the same key only, and tampering is detected", () => {
  const box = createSecretBox(randomBytes(32));
  const sealed = box.seal("JBSWY3DPEHPK3PXP");
  expect(sealed).toStartWith("v1.");
  expect(sealed).not.toContain("JBSWY3DPEHPK3PXP");
  expect(box.seal("JBSWY3DPEHPK3PXP")).not.toBe(sealed); // fresh IV every time
  expect(box.open(sealed)).toBe("JBSWY3DPEHPK3PXP");
  expect(() => createSecretBox(randomBytes(32)).open(sealed)).toThrow("does not open with this key");
  const raw = Buffer.from(sealed.slice(3), "base64url");
  raw[14]! ^= 1;
  expect(() => box.open(`v1.${raw.toString("base64url")}`)).toThrow("does not open with this key");
  expect(() => box.open("plain")).toThrow("unknown format");
  expect(() => createSecretBox(randomBytes(16))).toThrow("must be 32 bytes");
});

test("the key comes from SERVERMIND_SECRET_KEY, else from <dataDir>/secret.key created 0600", () => {
  const dir = dirs.make();
  const k1 = loadSecretKey(dir, {});
  expect(k1.length).toBe(32);
  expect(statSync(join(dir, "secret.key")).mode & 0o777).toBe(0o600);
  expect(loadSecretKey(dir, {}).equals(k1)).toBe(true);
  expect(Buffer.from(readFileSync(join(dir, "secret.key"), "utf8").trim(), "base64").equals(k1)).toBe(true);
  const env = randomBytes(32);
  expect(loadSecretKey(dir, { SERVERMIND_SECRET_KEY: env.toString("base64") }).equals(env)).toBe(true);
  expect(() => loadSecretKey(dir, { SERVERMIND_SECRET_KEY: "c2hvcnQ=" })).toThrow("SERVERMIND_SECRET_KEY must be the base64 of 32 bytes, got 5 bytes");
});
