/**
 * Locks keep prune away from a running backup: a backup reuses chunks it saw at its start,
 * so prune must not delete unreferenced chunks while one runs. A backup holds a shared lock,
 * prune an exclusive one; a lock older than `STALE_MS` (a killed run) is ignored.
 */
import { randomBytes } from "node:crypto";
import { BackupError } from "./error.ts";
import { thisHost, type Repository } from "./repository.ts";

export const STALE_MS = 60 * 60 * 1000;
const REFRESH_MS = 5 * 60 * 1000;

interface LockBody {
  time: number;
  host: string;
  pid: number;
  exclusive: boolean;
}

export class Lock {
  private timer: ReturnType<typeof setInterval> | null = null;
  private constructor(
    private readonly repo: Repository,
    readonly name: string,
    private readonly body: LockBody,
  ) {}

  static async take(repo: Repository, exclusive: boolean): Promise<Lock> {
    await conflict(repo, exclusive, null);
    const body: LockBody = { time: Date.now(), host: thisHost(), pid: process.pid, exclusive };
    const lock = new Lock(repo, `locks/${randomBytes(8).toString("hex")}`, body);
    await repo.putJson(lock.name, body);
    // Check again with ours written: of two runs that started at the same instant, at least one
    // sees the other and backs off (both may: then both fail, which is safe).
    try {
      await conflict(repo, exclusive, lock.name);
    } catch (e) {
      await repo.dest.delete(lock.name);
      throw e;
    }
    lock.timer = setInterval(() => {
      body.time = Date.now();
      repo.putJson(lock.name, body).catch(() => {});
    }, REFRESH_MS);
    lock.timer.unref?.();
    return lock;
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.repo.dest.delete(this.name);
  }
}

async function conflict(repo: Repository, exclusive: boolean, own: string | null): Promise<void> {
  const now = Date.now();
  for (const name of await repo.dest.list("locks/")) {
    if (name === own) continue;
    let other: LockBody;
    try {
      other = await repo.getJson<LockBody>(name);
    } catch {
      continue; // unreadable: not a lock of this repository
    }
    if (now - other.time > STALE_MS) continue;
    if (exclusive || other.exclusive) {
      throw new BackupError("locked", `repository is locked by ${other.exclusive ? "a prune" : "a backup"} on ${other.host} (pid ${other.pid}) since ${new Date(other.time).toISOString()}`);
    }
  }
}
