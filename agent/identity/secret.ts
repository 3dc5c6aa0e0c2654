/**
 * The machine-bound secret that the identity key is derived from.
 *
 * `machine.secret` holds 32 random bytes, mode 0400, owned by the Platform user. The key is
 * HKDF-SHA256(secret, salt = /etc/machine-id, info = "servermind-agent identity v1"), so the
 * identity database cannot be opened with the secret alone on another machine, nor with the
 * database alone on this one. The derived key exists only in memory.
 */
import { hkdfSync, randomBytes } from "node:crypto";
import { chmodSync, closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import { IdentityError } from "./error.ts";

export const SECRET_BYTES = 32;
const INFO = "servermind-agent identity v1";

export { IdentityError } from "./error.ts";

/** Creates the secret file once (O_EXCL, 0400); returns false when it already existed. */
export function createSecretFile(path: string): boolean {
  if (existsSync(path)) return false;
  const fd = openSync(path, "wx", 0o400);
  try {
    writeSync(fd, randomBytes(SECRET_BYTES));
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o400);
  return true;
}

/** The machine binding: /etc/machine-id (or the path given), empty when the machine has none. */
export function readMachineId(path = "/etc/machine-id"): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

export function deriveIdentityKey(secretPath: string, machineId: string): Buffer {
  let secret: Buffer;
  try {
    secret = readFileSync(secretPath);
  } catch (e) {
    throw new IdentityError(`cannot read the identity secret ${secretPath}: ${(e as NodeJS.ErrnoException).code ?? e} (only the Platform user may read it; run "enroll" first)`);
  }
  if (secret.length !== SECRET_BYTES) throw new IdentityError(`identity secret ${secretPath} holds ${secret.length} bytes, expected ${SECRET_BYTES}: it was damaged or replaced`);
  const key = Buffer.from(hkdfSync("sha256", secret, Buffer.from(machineId, "utf8"), INFO, 32));
  secret.fill(0);
  return key;
}
