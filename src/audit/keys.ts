/**
 * The audit trail's two keys, both kept outside PostgreSQL so that a database owner alone can
 * neither re-key the chain nor forge a checkpoint:
 *   - the chain key (HMAC-SHA256, 32 bytes): SERVERMIND_AUDIT_HMAC_KEY (base64), else
 *     <data>/secrets/audit-hmac.key (base64, created 0600 at first start);
 *   - the checkpoint signing key (Ed25519): SERVERMIND_AUDIT_SIGNING_KEY (PKCS#8 PEM), else
 *     <data>/secrets/audit-checkpoint.key (0600); its public half is written beside it as
 *     audit-checkpoint.pub, the file an auditor needs for offline verification.
 * Files are created with an exclusive create, so two processes starting at once keep one key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadOrCreateSecretFile, secretsDir } from "../secret-file.ts";
import { join, resolve } from "node:path";

export interface AuditKeys {
  hmacKey: Buffer;
  signingKey: KeyObject;
  publicKey: KeyObject;
  /** SPKI PEM of the public key, as written to audit-checkpoint.pub. */
  publicKeyPem: string;
}

export function loadAuditKeys(dataDir: string, env: Record<string, string | undefined> = process.env): AuditKeys {
  const dir = secretsDir(dataDir);
  const hmacText = env.SERVERMIND_AUDIT_HMAC_KEY || loadOrCreateSecretFile(join(dir, "audit-hmac.key"), () => `${randomBytes(32).toString("base64")}\n`);
  const hmacKey = Buffer.from(hmacText.trim(), "base64");
  if (hmacKey.length < 32) {
    throw new Error(`the audit chain key (SERVERMIND_AUDIT_HMAC_KEY or ${join(dir, "audit-hmac.key")}) must be the base64 of at least 32 bytes, got ${hmacKey.length}`);
  }
  const pem = env.SERVERMIND_AUDIT_SIGNING_KEY ||
    loadOrCreateSecretFile(join(dir, "audit-checkpoint.key"), () => generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  const signingKey = createPrivateKey(pem);
  if (signingKey.asymmetricKeyType !== "ed25519") throw new Error("the audit checkpoint signing key must be an Ed25519 private key (PKCS#8 PEM)");
  const publicKey = createPublicKey(signingKey);
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }) as string;
  const pubFile = join(dir, "audit-checkpoint.pub");
  if (!existsSync(pubFile) || readFileSync(pubFile, "utf8") !== publicKeyPem) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(pubFile, publicKeyPem, { mode: 0o644 });
  }
  return { hmacKey, signingKey, publicKey, publicKeyPem };
}

/** Fresh in-memory keys (tests, and the offline verifier's self-check). */
export function generateAuditKeys(): AuditKeys {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { hmacKey: randomBytes(32), signingKey: privateKey, publicKey, publicKeyPem: publicKey.export({ type: "spki", format: "pem" }) as string };
}

let current: AuditKeys | undefined;
let currentDataDir: string | undefined;

/** Sets the keys this process appends and verifies with (main, the CLIs, the test preload). */
export function useAuditKeys(keys: AuditKeys, dataDir?: string): void {
  current = keys;
  currentDataDir = dataDir;
}

/** The keys in use; loaded from SERVERMIND_DATA (default ./data) on first use when none were set. */
export function auditKeys(): AuditKeys {
  if (!current) {
    currentDataDir = resolve(process.env.SERVERMIND_DATA || "./data");
    current = loadAuditKeys(currentDataDir);
  }
  return current;
}

/** Where checkpoints are also appended outside PostgreSQL, when keys came from a data directory. */
export function checkpointLogFile(): string | undefined {
  auditKeys();
  return currentDataDir ? join(currentDataDir, "audit", "checkpoints.ndjson") : undefined;
}
