/**
 * Results of backup runs and restores kept on the host until the server has them. A result goes
 * back on the agent's stream when the run ends; if the server restarted meanwhile (or the stream
 * broke), that answer is lost, so Control also writes it here, and the server asks for it again
 * with `backup.result` (src/backups/reconcile.ts). The file is sealed with a key derived from the
 * repository password (HKDF-SHA256, AES-256-GCM): a first run's recovery key is in it, and the
 * password exists on this host only inside the server's signed commands, never on disk.
 * One file per run (`job-<job>-run-<run>.json`, mode 0600); removed when the server fetched it,
 * or after RESULT_KEEP_MS.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const RESULT_KEEP_MS = 7 * 24 * 3600_000;
const INFO = "servermind backup result v1";

const fileOf = (dir: string, job: number, run: number) => join(dir, `job-${job}-run-${run}.json`);
const keyOf = (password: string, salt: Buffer) => Buffer.from(hkdfSync("sha256", password, salt, INFO, 32));

export function validIds(job: unknown, run: unknown): { job: number; run: number } | null {
  const j = Number(job);
  const r = Number(run);
  return Number.isSafeInteger(j) && j > 0 && Number.isSafeInteger(r) && r > 0 ? { job: j, run: r } : null;
}

/** Seals and writes one result (atomically: a temporary name renamed into place); drops results older than RESULT_KEEP_MS. */
export async function keepResult(dir: string, job: number, run: number, password: string, result: Record<string, unknown>, now = Date.now()): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", keyOf(password, salt), iv);
  c.setAAD(Buffer.from(`job-${job}-run-${run}`));
  const data = Buffer.concat([c.update(JSON.stringify(result)), c.final()]);
  const body = JSON.stringify({ v: 1, salt: salt.toString("base64"), iv: iv.toString("base64"), tag: c.getAuthTag().toString("base64"), data: data.toString("base64") });
  const file = fileOf(dir, job, run);
  await writeFile(`${file}.tmp`, body, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const p = join(dir, name);
    const s = await stat(p).catch(() => null);
    if (s && now - s.mtimeMs > RESULT_KEEP_MS) await rm(p, { force: true });
  }
}

/** The kept result, or null when there is none; throws when it does not open with this password. */
export async function readResult(dir: string, job: number, run: number, password: string): Promise<Record<string, unknown> | null> {
  let raw: string;
  try {
    raw = await readFile(fileOf(dir, job, run), "utf8");
  } catch {
    return null;
  }
  const f = JSON.parse(raw) as { salt: string; iv: string; tag: string; data: string };
  const d = createDecipheriv("aes-256-gcm", keyOf(password, Buffer.from(f.salt, "base64")), Buffer.from(f.iv, "base64"));
  d.setAAD(Buffer.from(`job-${job}-run-${run}`));
  d.setAuthTag(Buffer.from(f.tag, "base64"));
  return JSON.parse(Buffer.concat([d.update(Buffer.from(f.data, "base64")), d.final()]).toString("utf8"));
}

export async function forgetResult(dir: string, job: number, run: number): Promise<void> {
  await rm(fileOf(dir, job, run), { force: true });
}
