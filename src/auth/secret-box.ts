/**
 * Encryption at rest for the secrets the console must read back (TOTP keys): AES-256-GCM with
 * a key from SERVERMIND_SECRET_KEY (base64 of 32 bytes; set the same value on every server
 * node) or, when unset, `<dataDir>/secret.key`, created on first use with mode 0600.
 * Sealed form: "v1." + base64url(iv[12] | ciphertext | tag[16]).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface SecretBox {
  seal(plain: string): string;
  /** Throws when the value was sealed with another key or altered. */
  open(sealed: string): string;
}

export function createSecretBox(key: Uint8Array): SecretBox {
  if (key.length !== 32) throw new Error(`the secret key must be 32 bytes, got ${key.length}`);
  return {
    seal(plain) {
      const iv = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", key, iv);
      const ct = Buffer.concat([c.update(plain, "utf8"), c.final()]);
      return `v1.${Buffer.concat([iv, ct, c.getAuthTag()]).toString("base64url")}`;
    },
    open(sealed) {
      if (!sealed.startsWith("v1.")) throw new Error("sealed secret has an unknown format");
      const raw = Buffer.from(sealed.slice(3), "base64url");
      if (raw.length < 29) throw new Error("sealed secret is truncated");
      const d = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
      d.setAuthTag(raw.subarray(raw.length - 16));
      try {
        return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString("utf8");
      } catch {
        throw new Error("sealed secret does not open with this key (was SERVERMIND_SECRET_KEY or secret.key changed?)");
      }
    },
  };
}

export function loadSecretKey(dataDir: string, env: Record<string, string | undefined> = process.env): Buffer {
  const fromEnv = env.SERVERMIND_SECRET_KEY;
  if (fromEnv) {
    const k = Buffer.from(fromEnv, "base64");
    if (k.length !== 32) throw new Error(`SERVERMIND_SECRET_KEY must be the base64 of 32 bytes, got ${k.length} bytes`);
    return k;
  }
  const file = join(dataDir, "secret.key");
  if (existsSync(file)) {
    const k = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
    if (k.length !== 32) throw new Error(`${file} must hold the base64 of 32 bytes, got ${k.length} bytes`);
    return k;
  }
  mkdirSync(dataDir, { recursive: true });
  const k = randomBytes(32);
  writeFileSync(file, `${k.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  return k;
}
