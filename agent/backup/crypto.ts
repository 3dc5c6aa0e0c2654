/**
 * Sealing of repository objects and wrapping of the master key (docs/backup-format.md).
 * AES-256-GCM, a random 96-bit nonce per object, the object's name as associated data (so an
 * object moved to another name fails to open), zstd inside the encryption.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, scrypt } from "node:crypto";
import { BackupError } from "./error.ts";

export const SEAL_VERSION = 1;
const NONCE = 12;
const TAG = 16;
/** Below this many bytes compression is not tried. */
const MIN_COMPRESS = 64;
/** A chunk is compressed only when a 64 KiB sample shrinks to less than this share. */
const PROBE_RATIO = 0.97;

/** version(1) | nonce(12) | AES-256-GCM(flag(1) | payload) | tag(16) */
export function seal(key: Uint8Array, aad: string, plain: Uint8Array, compress: boolean, level = 3): Uint8Array {
  const parts = sealParts(key, aad, plain, compress, level);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * `seal` as the pieces that, one after another, are the sealed object: a local repository's
 * worker writes them with one writev instead of copying them into one buffer first (direct.ts).
 */
export function sealParts(key: Uint8Array, aad: string, plain: Uint8Array, compress: boolean, level = 3): Uint8Array[] {
  let flag = 0;
  let payload = plain;
  if (compress && plain.length >= MIN_COMPRESS && compressible(plain)) {
    const z = Bun.zstdCompressSync(plain, { level });
    if (z.length < plain.length) {
      flag = 1;
      payload = z;
    }
  }
  const nonce = randomBytes(NONCE);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(Buffer.from(aad));
  const head = new Uint8Array(1 + NONCE);
  head[0] = SEAL_VERSION;
  head.set(nonce, 1);
  const parts: Uint8Array[] = [head];
  parts.push(c.update(Uint8Array.of(flag)));
  parts.push(c.update(payload));
  parts.push(c.final());
  parts.push(c.getAuthTag());
  return parts;
}

/** Opens what `seal` made; BackupError("corrupt") if the tag, the name or the format does not match. */
export function unseal(key: Uint8Array, aad: string, sealed: Uint8Array): Uint8Array {
  if (sealed.length < 1 + NONCE + 1 + TAG || sealed[0] !== SEAL_VERSION) throw new BackupError("corrupt", `${aad}: not a sealed object`);
  const d = createDecipheriv("aes-256-gcm", key, sealed.subarray(1, 1 + NONCE));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  let plain: Uint8Array;
  try {
    const a = d.update(sealed.subarray(1 + NONCE, sealed.length - TAG));
    const b = d.final();
    plain = b.length ? Buffer.concat([a, b]) : a;
  } catch {
    throw new BackupError("corrupt", `${aad}: authentication failed (corrupted or tampered)`);
  }
  const flag = plain[0];
  const payload = plain.subarray(1);
  if (flag === 0) return payload;
  if (flag === 1) return Bun.zstdDecompressSync(payload);
  throw new BackupError("corrupt", `${aad}: unknown compression flag ${flag}`);
}

function compressible(plain: Uint8Array): boolean {
  if (plain.length <= 65536) return true;
  const mid = plain.length >>> 1;
  const sample = plain.subarray(mid - 32768, mid + 32768);
  return Bun.zstdCompressSync(sample, { level: 1 }).length < sample.length * PROBE_RATIO;
}

/** Keyed chunk id: HMAC-SHA256 of the plaintext under the repository's id key, hex. */
export function chunkId(idKey: Uint8Array, plain: Uint8Array): string {
  return createHmac("sha256", idKey).update(plain).digest("hex");
}

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

export function scryptKey(password: string, salt: Uint8Array, s: ScryptParams): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, 32, { N: s.N, r: s.r, p: s.p, maxmem: 256 * s.N * s.r + (1 << 20) }, (err, key) =>
      err ? reject(err) : resolve(new Uint8Array(key)),
    ),
  );
}

/** The recovery key has full entropy: HKDF-SHA256 is enough to turn it into a wrapping key. */
export function recoveryKek(recovery: Uint8Array, salt: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", recovery, salt, "servermind-backup recovery", 32));
}

/** Shown once at `init`: 32 random bytes as 8 groups of 8 hex digits. */
export function formatRecoveryKey(key: Uint8Array): string {
  return Buffer.from(key).toString("hex").match(/.{8}/g)!.join("-");
}

export function parseRecoveryKey(text: string): Uint8Array {
  const hex = text.replace(/[\s-]/g, "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new BackupError("usage", "a recovery key is 64 hex digits (dashes optional)");
  return new Uint8Array(Buffer.from(hex, "hex"));
}
