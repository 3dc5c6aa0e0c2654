/**
 * The server's Ed25519 command key: signs every command sent to an agent's Control process.
 * Created once under the data directory (0600), like the TLS key; agents get the public half.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { privateKeyFromPem } from "../ingest/frame/commands.ts";

export interface CommandKey {
  privateKey: KeyObject;
  /** Base64 of the raw 32-byte public key, as agents store it. */
  publicKeyB64: string;
}

export function loadOrCreateCommandKey(dataDir: string): CommandKey {
  const path = join(dataDir, "command.key");
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true });
    const { privateKey } = generateKeyPairSync("ed25519");
    writeFileSync(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  }
  const privateKey = privateKeyFromPem(readFileSync(path, "utf8"));
  const x = createPublicKey(privateKey).export({ format: "jwk" }).x!;
  return { privateKey, publicKeyB64: Buffer.from(x, "base64url").toString("base64") };
}
