/**
 * First-run setup code. While no console user exists, every start makes a new one-time code,
 * stores only its hash, prints it to the server log and writes it to `<dataDir>/setup-code`
 * (mode 0600). The first admin can only be created with it, so whoever reaches the port first
 * cannot claim the install.
 */
import type { Sql } from "postgres";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { countUsers } from "./users.ts";

function hash(code: string): Buffer {
  return createHash("sha256").update(`servermind-setup:${code.replace(/[\s-]/g, "").toUpperCase()}`).digest();
}

/** Returns the new code when setup is still open (so tests can use it), or null. */
export async function ensureSetupCode(sql: Sql, dataDir: string, log: (line: string) => void = console.log): Promise<string | null> {
  if ((await countUsers(sql)) > 0) {
    rmSync(join(dataDir, "setup-code"), { force: true });
    return null;
  }
  const raw = randomBytes(10).toString("hex").toUpperCase();
  const code = raw.match(/.{4}/g)!.join("-");
  await sql`insert into console_setup (id, code_hash) values (1, ${hash(code)})
    on conflict (id) do update set code_hash = excluded.code_hash, created_at = now(), used_at = null`;
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, "setup-code"), `${code}\n`, { mode: 0o600 });
  log(`ServerMind first-run setup code: ${code}  (open the console to create the first admin; also in ${join(dataDir, "setup-code")})`);
  return code;
}

export async function setupOpen(sql: Sql): Promise<boolean> {
  return (await countUsers(sql)) === 0;
}

/** Checks the code and marks it used, atomically; true only once. */
export async function consumeSetupCode(sql: Sql, code: string): Promise<boolean> {
  const [row] = await sql`select code_hash from console_setup where id = 1 and used_at is null`;
  if (!row) return false;
  if (!timingSafeEqual(Buffer.from(row.code_hash), hash(code))) return false;
  const r = await sql`update console_setup set used_at = now() where id = 1 and used_at is null and code_hash = ${hash(code)}`;
  return r.count === 1;
}

export function removeSetupCodeFile(dataDir: string): void {
  rmSync(join(dataDir, "setup-code"), { force: true });
}
