/**
 * Secrets kept in files under the data directory (audit keys, the runtime database role's
 * password): created once with mode 0600 and an exclusive create, so two processes starting at
 * once end up with one value, and read back as text.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** `<data>/secrets`: the directory these files live in. */
export function secretsDir(dataDir: string): string {
  return join(dataDir, "secrets");
}

/** Reads `file`, or creates it once with `make()` (mode 0600, exclusive create) and reads it back. */
export function loadOrCreateSecretFile(file: string, make: () => string): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, make(), { mode: 0o600, flag: "wx" });
      chmodSync(file, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // another process made it first
    }
  }
  return readFileSync(file, "utf8");
}
