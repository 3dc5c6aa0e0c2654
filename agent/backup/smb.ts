/**
 * A repository on an SMB share (Samba, Windows, a NAS), through Debian's `smbclient` binary
 * (SMB3, encryption required by default). No pure-JS SMB client is fit for this: the npm ones
 * (`@marsaud/smb2` and its forks) are SMB 2.0.2-era, lightly maintained, and fail against a
 * Samba with its defaults (NTLMv2 only, signing); smbclient is Samba's own, maintained client. The
 * cost is a process per call (tens of ms), so `put` batches: uploads waiting at the same moment
 * go through one smbclient run.
 *
 * Atomicity: `put` to a temporary name, then `rename … -f` (SMB2 rename with ReplaceIfExists,
 * rename(2) on Samba: an atomic replace). The password is handed to smbclient in an
 * authentication file (mode 0600, in a private folder removed by `close`), never on its command
 * line, where any local user could read it.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { checkName, type Destination, type ObjectSize } from "./destination.ts";
import { BackupError } from "./error.ts";
import { DEFAULT_TIMEOUT_MS, isObjectPart, Limiter, listedSize, parents, tempName } from "./remote.ts";

export const SMBCLIENT = "/usr/bin/smbclient";

export interface SmbConfig {
  host: string;
  port?: number;
  share: string;
  username: string;
  password: string;
  domain?: string;
  /** folder of the repository inside the share ("" for the share's top) */
  root: string;
  /** require SMB3 encryption (default true); false only signs */
  encrypt?: boolean;
  timeoutMs?: number;
  /** smbclient processes at once */
  concurrency?: number;
  /** uploads in one smbclient run at most */
  batch?: number;
}

const SAFE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const NOT_FOUND = /NT_STATUS_(OBJECT_NAME_NOT_FOUND|OBJECT_PATH_NOT_FOUND|NO_SUCH_FILE)/;

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

interface Pending<I, O> {
  input: I;
  resolve(v: O): void;
  reject(e: unknown): void;
}

/**
 * Calls waiting at the same moment go out together: up to `parallel` batches run at once, each
 * of at most `max` calls; `run` settles every call of its batch.
 */
class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = 0;
  constructor(
    private readonly run: (batch: Pending<I, O>[]) => Promise<void>,
    private readonly parallel: number,
    private readonly max: number,
  ) {}

  add(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      if (this.running < this.parallel) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running++;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.max);
        await this.run(batch).catch((e) => batch.forEach((p) => p.reject(e)));
      }
    } finally {
      this.running--;
    }
  }
}

export class SmbDestination implements Destination {
  private readonly timeoutMs: number;
  private readonly limit: Limiter;
  private readonly dirs = new Set<string>();
  private privateDir?: string;
  private readonly puts: Batcher<{ name: string; data: Uint8Array }, void>;
  private readonly gets: Batcher<string, Uint8Array>;

  constructor(private readonly cfg: SmbConfig) {
    if (cfg.root && !SAFE.test(cfg.root)) throw new BackupError("usage", "SMB root must be a plain folder path (letters, digits, . _ - and /)");
    if (!/^[A-Za-z0-9._$-]+$/.test(cfg.share)) throw new BackupError("usage", "SMB share name must be plain");
    if (!/^[A-Za-z0-9.:-]+$/.test(cfg.host)) throw new BackupError("usage", "SMB host must be a host name or address");
    this.timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.limit = new Limiter(cfg.concurrency ?? 4);
    const parallel = Math.max(1, Math.floor((cfg.concurrency ?? 4) / 2));
    this.puts = new Batcher((b) => this.upload(b), parallel, cfg.batch ?? 16);
    this.gets = new Batcher((b) => this.download(b), parallel, cfg.batch ?? 16);
  }

  /** The private folder holding the authentication file and transfer files. */
  private dir(): string {
    if (!this.privateDir) {
      this.privateDir = mkdtempSync(join(tmpdir(), "servermind-smb-"));
      const esc = (v: string) => v.replace(/[\r\n]/g, "");
      writeFileSync(
        join(this.privateDir, "auth"),
        `username = ${esc(this.cfg.username)}\npassword = ${esc(this.cfg.password)}\n${this.cfg.domain ? `domain = ${esc(this.cfg.domain)}\n` : ""}`,
        { mode: 0o600 },
      );
      writeFileSync(join(this.privateDir, "smb.conf"), "");
    }
    return this.privateDir;
  }

  private remote(name: string): string {
    return this.cfg.root ? posix.join(this.cfg.root, name) : name;
  }

  /** One smbclient run of `commands` (`;`-separated), killed at the deadline. */
  private smbclient(what: string, commands: string[]): Promise<Run> {
    return this.limit.run(
      () =>
        new Promise<Run>((resolve, reject) => {
          const dir = this.dir();
          const args = [
            `//${this.cfg.host}/${this.cfg.share}`,
            "-p", String(this.cfg.port ?? 445),
            "-A", join(dir, "auth"),
            "-s", join(dir, "smb.conf"),
            "-m", "SMB3",
            `--client-protection=${this.cfg.encrypt === false ? "sign" : "encrypt"}`,
            "-t", String(Math.max(1, Math.ceil(this.timeoutMs / 1000))),
            "-c", commands.join("; "),
          ];
          const proc = spawn(SMBCLIENT, args, { stdio: ["ignore", "pipe", "pipe"] });
          const out: Buffer[] = [];
          let err = "";
          proc.stdout.on("data", (d: Buffer) => out.push(d));
          proc.stderr.on("data", (d: Buffer) => (err = (err + String(d)).slice(-10_000)));
          const timer = setTimeout(() => {
            proc.kill("SIGKILL");
            reject(new BackupError("destination", `SMB ${what} at ${this.cfg.host}: no answer within ${this.timeoutMs} ms`));
          }, this.timeoutMs);
          proc.on("error", (e) => {
            clearTimeout(timer);
            reject(new BackupError("destination", `SMB ${what}: cannot run ${SMBCLIENT}: ${e.message}`));
          });
          proc.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout: Buffer.concat(out), stderr: err });
          });
        }),
    );
  }

  private fail(what: string, r: Run): BackupError {
    const text = `${r.stderr}\n${r.stdout.toString("utf8", 0, 4000)}`;
    if (/NT_STATUS_LOGON_FAILURE|NT_STATUS_ACCESS_DENIED|NT_STATUS_ACCOUNT/.test(text)) return new BackupError("destination", `SMB ${what} at ${this.cfg.host}: refused (check the user name, password and share permissions)`);
    const status = text.match(/NT_STATUS_[A-Z_]+/)?.[0] ?? `smbclient exit ${r.code}`;
    return new BackupError("destination", `SMB ${what} at ${this.cfg.host}: ${status}`);
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    checkName(name);
    await this.puts.add({ name, data });
  }

  /** One smbclient run: the batch's folders, then each object to a temporary name and renamed into place. */
  private async upload(batch: Pending<{ name: string; data: Uint8Array }, void>[]): Promise<void> {
    const work = await mkdtemp(join(this.dir(), "up-"));
    try {
      const commands: string[] = [];
      const folders = new Set<string>();
      for (const { input: p } of batch) {
        for (const d of [...(this.cfg.root ? rootFolders(this.cfg.root) : []), ...parents(p.name).map((x) => this.remote(x))]) if (!this.dirs.has(d)) folders.add(d);
      }
      for (const d of [...folders].sort((a, b) => a.length - b.length)) commands.push(`mkdir ${d}`);
      await Promise.all(
        batch.map(async ({ input: p }, i) => {
          const local = join(work, String(i));
          await writeFile(local, p.data, { mode: 0o600 });
          const final = this.remote(p.name);
          const temp = tempName(final);
          commands.push(`put ${local} ${temp}`, `rename ${temp} ${final} -f`);
        }),
      );
      const r = await this.smbclient(`put ${batch.length === 1 ? batch[0]!.input.name : `${batch.length} objects`}`, commands);
      // mkdir of an existing folder answers NAME_COLLISION; every other NT_STATUS is a failure
      const problems = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /NT_STATUS_/.test(l) && !/NT_STATUS_OBJECT_NAME_COLLISION making remote directory/.test(l));
      if (r.code !== 0 || problems.length) throw this.fail("put", { ...r, stderr: `${problems.join("\n")}\n${r.stderr}` });
      for (const d of folders) this.dirs.add(d);
      for (const p of batch) p.resolve();
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async get(name: string): Promise<Uint8Array> {
    checkName(name);
    return this.gets.add(name);
  }

  /** One smbclient run fetching the batch; a missing object fails its own call only. */
  private async download(batch: Pending<string, Uint8Array>[]): Promise<void> {
    const work = await mkdtemp(join(this.dir(), "down-"));
    try {
      const r = await this.smbclient(`get ${batch.length === 1 ? batch[0]!.input : `${batch.length} objects`}`, batch.map((p, i) => `get ${this.remote(p.input)} ${join(work, String(i))}`));
      const lines = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /NT_STATUS_/.test(l));
      // "NT_STATUS_OBJECT_NAME_NOT_FOUND opening remote file \\root\\data\\ab\\…"
      const about = (l: string, name: string) => NOT_FOUND.test(l) && l.trimEnd().endsWith(`\\${this.remote(name).replaceAll("/", "\\")}`);
      const missing = (name: string) => lines.some((l) => about(l, name));
      const other = lines.filter((l) => !batch.some((p) => about(l, p.input)));
      if (other.length) throw this.fail("get", { ...r, stderr: other.join("\n") });
      for (const [i, p] of batch.entries()) {
        if (missing(p.input)) p.reject(new BackupError("not_found", `object ${p.input} not found`));
        else {
          try {
            p.resolve(new Uint8Array(await readFile(join(work, String(i)))));
          } catch {
            p.reject(this.fail(`get ${p.input}`, r));
          }
        }
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.walk(prefix)).map((e) => e.name);
  }

  /** Sizes from the size column of smbclient's recursive `ls` (parseSmbListing). */
  async listSizes(prefix: string): Promise<ObjectSize[]> {
    return this.walk(prefix);
  }

  private async walk(prefix: string): Promise<ObjectSize[]> {
    const base = prefix.replace(/\/?[^/]*$/, "");
    const top = this.remote(base);
    const r = await this.smbclient(`list ${prefix}`, ["recurse ON", `ls ${top ? `${top}/*` : "*"}`]);
    const text = r.stdout.toString();
    if (r.code !== 0) {
      if (NOT_FOUND.test(text + r.stderr)) return [];
      throw this.fail(`list ${prefix}`, r);
    }
    let entries;
    try {
      entries = parseSmbListing(text);
    } catch (e) {
      throw new BackupError("destination", `SMB list ${prefix} at ${this.cfg.host}: ${(e as Error).message}`);
    }
    const rootParts = this.cfg.root ? this.cfg.root.split("/").length : 0;
    const out: ObjectSize[] = [];
    for (const e of entries) {
      if (e.folder || !isObjectPart(e.name)) continue;
      // the folder as the share names it, less the repository's root
      const parts = e.dir.split("\\").filter(Boolean);
      const folder = e.dir === "" ? base : parts.slice(rootParts).join("/");
      if (e.dir !== "" && parts.slice(0, rootParts).join("/") !== (this.cfg.root ?? "")) throw new BackupError("destination", `SMB list ${prefix} at ${this.cfg.host}: a folder outside the repository in the listing: ${JSON.stringify(e.dir)}`);
      out.push({ name: folder ? `${folder}/${e.name}` : e.name, size: e.size });
    }
    return out.filter((e) => e.name.startsWith(prefix));
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    const r = await this.smbclient(`delete ${name}`, [`del ${this.remote(name)}`]);
    if (r.code !== 0 && !NOT_FOUND.test(r.stdout.toString() + r.stderr)) throw this.fail(`delete ${name}`, r);
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    const r = await this.smbclient(`exists ${name}`, [`allinfo ${this.remote(name)}`]);
    const text = r.stdout.toString() + r.stderr;
    if (NOT_FOUND.test(text)) return false;
    if (r.code !== 0 || /NT_STATUS_/.test(text)) throw this.fail(`exists ${name}`, r);
    return !/^attributes:.*\bD\b/m.test(text);
  }

  /** Removes the private folder with the authentication file. */
  async close(): Promise<void> {
    if (this.privateDir) rmSync(this.privateDir, { recursive: true, force: true });
    this.privateDir = undefined;
  }
}

/** `a/b/c` → [`a`, `a/b`, `a/b/c`] */
function rootFolders(root: string): string[] {
  const parts = root.split("/");
  return parts.map((_, i) => parts.slice(0, i + 1).join("/"));
}

/** An entry of smbclient's `ls`: the folder it is in as a header named it (`\\root\\data\\ab`; "" before any header), its name, whether it is a folder, its size. */
export interface SmbEntry {
  dir: string;
  name: string;
  folder: boolean;
  size: number;
}

// `  NAME   ATTRS   SIZE  Sun Dec  6 08:53:15 2026`: smbclient prints the name left-aligned in 30
// columns (a longer one pushes the rest), the DOS attributes (D A H S R N…), the size, the date
const SMB_ENTRY = /^ {2}(.+?)\s+([A-Z]*)\s+(\d+)\s+(\w{3} \w{3} +\d{1,2} \d{1,2}:\d{2}:\d{2} \d{4})\s*$/;
// the free-space line that ends a listing: `		61202244 blocks of size 1024. 31248356 blocks available`
const SMB_FOOTER = /^\s*\d+ blocks of size \d+\. \d+ blocks available$/;

/**
 * smbclient's `recurse ON; ls` output, read strictly: folder headers (`\\a\\b`), entry lines,
 * blank lines and the free-space footer; any other line (an NT_STATUS a folder's listing failed
 * with, a format this parser does not know) is an error naming it, never skipped.
 */
export function parseSmbListing(text: string): SmbEntry[] {
  const out: SmbEntry[] = [];
  let dir = "";
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (!line.trim() || SMB_FOOTER.test(line)) continue;
    if (line.length > 8192) throw new Error(`an smbclient listing line of over 8192 characters`);
    if (line.startsWith("\\")) {
      dir = line.trim();
      continue;
    }
    const m = line.match(SMB_ENTRY);
    if (!m) throw new Error(`unreadable smbclient listing line: ${JSON.stringify(line.slice(0, 200))}`);
    const name = m[1]!.trimEnd();
    if (name === "." || name === "..") continue;
    out.push({ dir, name, folder: m[2]!.includes("D"), size: listedSize(m[3], `SMB listing of ${name}`) });
  }
  return out;
}
