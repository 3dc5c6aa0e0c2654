/** A repository in a local directory (or a mounted one: NFS, USB disk). */
import { closeSync, fsync, mkdirSync, openSync, renameSync, unlinkSync, writevSync } from "node:fs";
import { promisify } from "node:util";
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { checkName, type Destination, type ObjectSize } from "./destination.ts";
import { BackupError } from "./error.ts";

const fsyncAsync = promisify(fsync);

/** Temporary files end with this; they are never listed and are removed by `cleanTemp`. */
const TEMP = ".tmp-";

export class LocalDestination implements Destination {
  /** folders this instance made or found: one mkdir per folder, not one per object (a folder removed since is made again) */
  private readonly made = new Set<string>();

  constructor(
    readonly root: string,
    /** fsync each object before it is renamed into place (survives power loss, not only a killed process). */
    private readonly fsync = true,
  ) {}

  /** The file that holds object `name` (a worker of the pool reads and writes it directly: direct.ts). */
  path(name: string): string {
    checkName(name);
    return join(this.root, name);
  }

  /**
   * Opens a new temporary file for object `name` with a blocking call (a pool worker writes it:
   * direct.ts), making its folder once. `commitFile` or `abandonFile` must follow.
   */
  openTemp(name: string): { fd: number; temp: string; final: string } {
    const final = this.path(name);
    const temp = `${final}${TEMP}${randomBytes(6).toString("hex")}`;
    const dir = dirname(final);
    if (!this.made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.made.add(dir);
    }
    try {
      return { fd: openSync(temp, "w", 0o600), temp, final };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      mkdirSync(dir, { recursive: true }); // the folder was removed since
      return { fd: openSync(temp, "w", 0o600), temp, final };
    }
  }

  /**
   * Ends what `openTemp` began, as `put` does: fsync (asynchronous: only it waits for the disk,
   * the worker goes on meanwhile), close, rename into place. Any failure removes the temporary file.
   */
  async commitFile(f: { fd: number; temp: string; final: string }): Promise<void> {
    try {
      if (this.fsync) await fsyncAsync(f.fd);
    } catch (e) {
      this.abandonFile(f);
      throw e;
    }
    closeSync(f.fd);
    try {
      renameSync(f.temp, f.final);
    } catch (e) {
      try {
        unlinkSync(f.temp);
      } catch {}
      throw e;
    }
  }

  /** Closes and removes a temporary file from `openTemp`. */
  abandonFile(f: { fd: number; temp: string }): void {
    try {
      closeSync(f.fd);
    } catch {}
    try {
      unlinkSync(f.temp);
    } catch {}
  }

  /**
   * `put` for a pool worker (direct.ts), of an object given as pieces (written with one writev):
   * the file is written with blocking calls (into the page cache: cheap, and it saves a trip to
   * the I/O thread pool per call); only the fsync, which waits for the disk, is asynchronous.
   * The same temporary name, fsync before the rename, and rename as `put`.
   */
  async putDirect(name: string, parts: Uint8Array[]): Promise<void> {
    const f = this.openTemp(name);
    try {
      writeAll(f.fd, parts);
    } catch (e) {
      this.abandonFile(f);
      throw e;
    }
    await this.commitFile(f);
  }

  /** Whether objects are fsynced before they are renamed into place. */
  get durable(): boolean {
    return this.fsync;
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    const final = this.path(name);
    const temp = `${final}${TEMP}${randomBytes(6).toString("hex")}`;
    const dir = dirname(final);
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    let fh;
    try {
      fh = await open(temp, "w", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      await mkdir(dir, { recursive: true }); // the folder was removed since
      fh = await open(temp, "w", 0o600);
    }
    try {
      let off = 0;
      while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
      if (this.fsync) await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(temp).catch(() => {});
      throw e;
    }
    await fh.close();
    try {
      await rename(temp, final);
    } catch (e) {
      await unlink(temp).catch(() => {});
      throw e;
    }
  }

  async get(name: string): Promise<Uint8Array> {
    try {
      return await readFile(this.path(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new BackupError("not_found", `object ${name} not found`);
      throw e;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const base = prefix.replace(/\/$/, "");
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(join(this.root, rel), { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR") return;
        throw e;
      }
      for (const e of entries) {
        const name = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(name);
        else if (e.isFile() && !e.name.includes(TEMP)) out.push(name);
      }
    };
    await walk(base);
    return out.filter((n) => n.startsWith(prefix));
  }

  /** Each listed file's size from stat (a file removed since the listing is left out). */
  async listSizes(prefix: string): Promise<ObjectSize[]> {
    const out: ObjectSize[] = [];
    for (const name of await this.list(prefix)) {
      try {
        out.push({ name, size: (await stat(join(this.root, name))).size });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
    }
    return out;
  }

  async delete(name: string): Promise<void> {
    await rm(this.path(name), { force: true });
  }

  async exists(name: string): Promise<boolean> {
    try {
      return (await stat(this.path(name))).isFile();
    } catch {
      return false;
    }
  }
}

/** Writes every piece at the file's current position (writev; a short write goes on where it stopped). */
export function writeAll(fd: number, parts: Uint8Array[]): number {
  let rest = parts.filter((p) => p.length > 0);
  let total = 0;
  while (rest.length) {
    let n = writevSync(fd, rest);
    total += n;
    while (n > 0) {
      const first = rest[0]!;
      if (n >= first.length) {
        n -= first.length;
        rest = rest.slice(1);
      } else {
        rest = [first.subarray(n), ...rest.slice(1)];
        n = 0;
      }
    }
  }
  return total;
}
