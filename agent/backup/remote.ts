/**
 * Helpers shared by the network destinations (SFTP, WebDAV, FTP, SMB): a deadline on every
 * call, temporary names for atomic uploads, and a small concurrency limit.
 */
import { randomBytes } from "node:crypto";
import { BackupError } from "./error.ts";

/** Uploads go to `NAME.tmp-<12 hex>` and are renamed into place; `list` skips such names. */
export const TEMP = ".tmp-";
export const tempName = (name: string) => `${name}${TEMP}${randomBytes(6).toString("hex")}`;
export const isTemp = (name: string) => name.includes(TEMP);

/**
 * Whether a file name found on a server can be an object of the repository: not one of our
 * temporary names, and not a server's own file (`.davfs.tmp…`, `.DAV/`, `.pureftpd-upload…`),
 * which start with a dot — object names never do (destination.ts `checkName`).
 */
export const isObjectPart = (part: string) => !isTemp(part) && /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(part);

/** Default deadline of one destination call (connect, one object up or down, one listing). */
export const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Rejects with BackupError("destination") when `p` has not settled within `ms`; `onTimeout`
 * tears the connection down so the stuck call cannot complete later behind the caller's back.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new BackupError("destination", `${what}: no answer within ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** At most `n` calls of `fn` at once (one connection's worth of parallel work). */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly n: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.active >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** The parent folders of an object name, outermost first: `data/ab/x` → [`data`, `data/ab`]. */
export function parents(name: string): string[] {
  const parts = name.split("/").slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join("/"));
}

/**
 * A size read from a server's listing: a non-negative safe integer (a string of digits, or a
 * number), else BackupError("destination") naming the entry — a listing never yields a guess.
 */
export function listedSize(v: unknown, what: string): number {
  const n = typeof v === "string" ? (/^\d{1,15}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new BackupError("destination", `${what}: the server's listing gives no readable size (${v === undefined || Number.isNaN(v) ? "none" : JSON.stringify(v)})`);
  }
  return n;
}
