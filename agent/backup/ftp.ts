/**
 * A repository on an FTP server, over explicit TLS (FTPS, `AUTH TLS`) by default, through the
 * `basic-ftp` client. FTP runs one command at a time per connection, so the destination keeps a
 * small pool of logged-in connections; a connection that failed (not merely answered "550") is
 * closed and replaced.
 *
 * Atomicity: STOR to a temporary name, then RNFR/RNTO onto the final name (rename(2) on
 * pure-ftpd, vsftpd and ProFTPD: an atomic replace). A killed upload leaves only the temporary
 * name, which `list` never returns.
 */
import { Writable, Readable } from "node:stream";
import { posix } from "node:path";
import { Client, FileInfo, FileType, FTPError } from "basic-ftp";
import { checkName, type Destination, type ObjectSize } from "./destination.ts";
import { BackupError } from "./error.ts";
import { DEFAULT_TIMEOUT_MS, isObjectPart, Limiter, listedSize, parents, tempName, withTimeout } from "./remote.ts";

export interface FtpConfig {
  host: string;
  port?: number;
  username: string;
  password: string;
  /** "explicit" (AUTH TLS on port 21, the default), "implicit" (TLS from the start, port 990) or "none" (credentials in clear: only with `allowPlain`) */
  tls?: "explicit" | "implicit" | "none";
  allowPlain?: boolean;
  /** PEM CA certificate(s) to trust (a self-signed server: its own certificate) */
  ca?: string;
  /** folder of the repository on the server (absolute, or relative to the login folder) */
  root: string;
  timeoutMs?: number;
  /** connections in the pool */
  connections?: number;
}

const NOT_FOUND = 550;

/** Longest listing line read: a longer one is an error (and a regex never runs over megabytes). */
const MAX_LINE = 8192;

// `-rw-------    1 1001     1001       524288 Dec 06 08:53 ab12…` (ls -l as vsftpd, ProFTPD and
// pure-ftpd send it); owner and group may hold spaces, the size is the number before the date
const UNIX_LINE = /^([-dlbcpsD])[-rwxsStTlL]{9}[+@.]?\s+\d+\s+(.+?)\s+(\d+)\s+((?:\S{3,5}\s+\d{1,2}|\d{1,2}\s+\S{3,5})\s+(?:\d{1,2}:\d{2}|\d{4})|\d{4}-\d{2}-\d{2}\s+\d{1,2}:\d{2})\s(.+)$/;
// `12-06-26  08:53AM       524288 ab12…` / `<DIR>` (IIS's MS-DOS style)
const DOS_LINE = /^(\d{2}-\d{2}-\d{2,4})\s+(\d{1,2}:\d{2}\s*(?:[AaPp][Mm])?)\s+(<DIR>|\d+)\s+(.+)$/;
// `type=file;size=524288;modify=20261206085300; ab12…` (RFC 3659 MLSD: facts, one space, the name)
const MLSD_LINE = /^((?:[^=;\s]+=[^;]*;)+) (.+)$/;

/**
 * A directory listing as the FTP server sent it (MLSD, or LIST in Unix or MS-DOS style), read
 * strictly: every line must be one of those forms, and a file's size must be there, else an error
 * naming the line. (basic-ftp's own parser silently drops a line it cannot read, and counts a
 * missing MLSD size as 0: an object missing from a listing, a wrong repository size.)
 */
export function parseFtpListing(raw: string): FileInfo[] {
  const out: FileInfo[] = [];
  const bad = (line: string, why: string) => new Error(`unreadable FTP listing line (${why}): ${JSON.stringify(line.slice(0, 200))}`);
  for (const line of raw.split(/\r?\n/)) {
    if (!line.trim()) continue;
    if (line.length > MAX_LINE) throw bad(line, `over ${MAX_LINE} characters`);
    let m = line.match(MLSD_LINE);
    if (m) {
      const facts = new Map<string, string>();
      for (const f of m[1]!.split(";").filter(Boolean)) {
        const i = f.indexOf("=");
        facts.set(f.slice(0, i).toLowerCase(), f.slice(i + 1));
      }
      const type = (facts.get("type") ?? "").toLowerCase();
      if (type === "cdir" || type === "pdir") continue;
      const info = new FileInfo(m[2]!);
      if (type === "dir") info.type = FileType.Directory;
      else if (type === "file") {
        info.type = FileType.File;
        // no size fact: NaN, which listSizes refuses (list, by name, does not need it)
        const size = facts.get("size");
        info.size = size === undefined ? Number.NaN : listedSize(size, `FTP listing of ${m[2]}`);
      } else info.type = FileType.Unknown; // OS.unix=symlink…, or no type: not an object
      out.push(info);
      continue;
    }
    if (/^total\s+\d+$/.test(line.trim())) continue;
    m = line.match(UNIX_LINE);
    if (m) {
      // a symbolic link is listed as `name -> target`
      const name = m[1] === "l" && m[5]!.includes(" -> ") ? m[5]!.slice(0, m[5]!.indexOf(" -> ")) : m[5]!;
      if (name === "." || name === "..") continue;
      const info = new FileInfo(name);
      info.type = m[1] === "d" ? FileType.Directory : m[1] === "-" ? FileType.File : FileType.Unknown;
      info.size = listedSize(m[3], `FTP listing of ${name}`);
      out.push(info);
      continue;
    }
    m = line.match(DOS_LINE);
    if (m) {
      const info = new FileInfo(m[4]!);
      if (m[3] === "<DIR>") info.type = FileType.Directory;
      else {
        info.type = FileType.File;
        info.size = listedSize(m[3], `FTP listing of ${m[4]}`);
      }
      out.push(info);
      continue;
    }
    throw bad(line, "not MLSD, Unix or MS-DOS style");
  }
  return out;
}

export class FtpDestination implements Destination {
  private readonly idle: Client[] = [];
  private readonly all = new Set<Client>();
  private readonly limit: Limiter;
  private readonly timeoutMs: number;
  private readonly dirs = new Map<string, Promise<void>>();

  constructor(private readonly cfg: FtpConfig) {
    const tls = cfg.tls ?? "explicit";
    if (tls === "none" && !cfg.allowPlain) throw new BackupError("usage", "FTP without TLS sends the password in clear: set allowPlain to use it");
    this.timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.limit = new Limiter(cfg.connections ?? 4);
  }

  private async open(): Promise<Client> {
    const client = new Client(this.timeoutMs);
    // basic-ftp's own parser drops a line it cannot read: a listing missing an object, a size of 0
    client.parseList = parseFtpListing;
    const tls = this.cfg.tls ?? "explicit";
    try {
      await withTimeout(
        client.access({
          host: this.cfg.host,
          port: this.cfg.port ?? (tls === "implicit" ? 990 : 21),
          user: this.cfg.username,
          password: this.cfg.password,
          secure: tls === "none" ? false : tls === "implicit" ? "implicit" : true,
          secureOptions: this.cfg.ca ? { ca: this.cfg.ca } : undefined,
        }),
        this.timeoutMs,
        `FTP connect to ${this.cfg.host}`,
        () => client.close(),
      );
    } catch (e) {
      client.close();
      if (e instanceof FTPError && e.code === 530) throw new BackupError("destination", `FTP ${this.cfg.host}: login refused (check the user name and password)`);
      throw this.wrap(e, "connect");
    }
    this.all.add(client);
    return client;
  }

  /** Runs `fn` on a pooled connection under the deadline. */
  private use<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    return this.limit.run(async () => {
      let c = this.idle.pop();
      while (c?.closed) c = this.idle.pop();
      c ??= await this.open();
      const client = c;
      try {
        const v = await withTimeout(fn(client), this.timeoutMs, `FTP ${what}`, () => client.close());
        this.idle.push(client);
        return v;
      } catch (e) {
        // an FTP answer (550 …) leaves the connection usable; anything else ends it
        if (e instanceof FTPError && !client.closed) this.idle.push(client);
        else {
          client.close();
          this.all.delete(client);
        }
        throw e;
      }
    });
  }

  private path(name: string): string {
    return posix.join(this.cfg.root, name);
  }

  private mkdir(dir: string): Promise<void> {
    let made = this.dirs.get(dir);
    if (!made) {
      // MKD of an existing folder answers 550: ignored, a missing one shows at the STOR
      made = this.use(`mkdir ${dir}`, (c) => c.sendIgnoringError(`MKD ${dir}`)).then(
        () => {},
        (e) => {
          this.dirs.delete(dir);
          throw this.wrap(e, `mkdir ${dir}`);
        },
      );
      this.dirs.set(dir, made);
    }
    return made;
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    checkName(name);
    const rootParts = this.cfg.root.split("/").filter(Boolean);
    const rootDirs = rootParts.map((_, i) => (this.cfg.root.startsWith("/") ? "/" : "") + rootParts.slice(0, i + 1).join("/"));
    for (const d of [...rootDirs, ...parents(name).map((p) => this.path(p))]) await this.mkdir(d);
    const final = this.path(name);
    const temp = tempName(final);
    try {
      await this.use(`upload ${name}`, async (c) => {
        await c.uploadFrom(Readable.from([Buffer.from(data.buffer, data.byteOffset, data.length)]), temp);
        await c.rename(temp, final);
      });
    } catch (e) {
      await this.use(`remove ${temp}`, (c) => c.remove(temp, true)).catch(() => {});
      throw this.wrap(e, `put ${name}`);
    }
  }

  async get(name: string): Promise<Uint8Array> {
    checkName(name);
    try {
      return await this.use(`download ${name}`, async (c) => {
        const parts: Buffer[] = [];
        const sink = new Writable({
          write(chunk: Buffer, _enc, done) {
            parts.push(chunk);
            done();
          },
        });
        await c.downloadTo(sink, this.path(name));
        return new Uint8Array(Buffer.concat(parts));
      });
    } catch (e) {
      if (e instanceof FTPError && e.code === NOT_FOUND) throw new BackupError("not_found", `object ${name} not found`);
      throw this.wrap(e, `get ${name}`);
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.walk(prefix)).map((e) => e.name);
  }

  /** Sizes from the listing itself (MLSD's size fact, or LIST's size column), read by parseFtpListing. */
  async listSizes(prefix: string): Promise<ObjectSize[]> {
    return (await this.walk(prefix)).map((e) => ({ name: e.name, size: listedSize(e.size, `FTP list ${e.name} at ${this.cfg.host}`) }));
  }

  private async walk(prefix: string): Promise<ObjectSize[]> {
    const out: ObjectSize[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries: FileInfo[];
      try {
        entries = await this.use(`list ${rel || "/"}`, (c) => c.list(this.path(rel)));
      } catch (e) {
        // a missing folder: 550, or 501 from MLSD (RFC 3659 7.2: "does not name a directory"; pyftpdlib)
        if (e instanceof FTPError && (e.code === NOT_FOUND || e.code === 501)) return;
        throw this.wrap(e, `list ${rel || "/"}`);
      }
      const subdirs: string[] = [];
      for (const e of entries) {
        if (!isObjectPart(e.name)) continue;
        const n = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory) subdirs.push(n);
        else if (e.isFile) out.push({ name: n, size: e.size });
      }
      await Promise.all(subdirs.map(walk));
    };
    await walk(prefix.replace(/\/?[^/]*$/, ""));
    return out.filter((e) => e.name.startsWith(prefix));
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    try {
      await this.use(`delete ${name}`, (c) => c.remove(this.path(name)));
    } catch (e) {
      if (!(e instanceof FTPError && e.code === NOT_FOUND)) throw this.wrap(e, `delete ${name}`);
    }
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    try {
      await this.use(`size ${name}`, (c) => c.size(this.path(name)));
      return true;
    } catch (e) {
      if (e instanceof FTPError && e.code === NOT_FOUND) return false;
      throw this.wrap(e, `exists ${name}`);
    }
  }

  /** Logs out every pooled connection. */
  async close(): Promise<void> {
    for (const c of this.all) c.close();
    this.all.clear();
    this.idle.length = 0;
  }

  private wrap(e: unknown, what: string): Error {
    if (e instanceof BackupError) return e;
    return new BackupError("destination", `FTP ${what} at ${this.cfg.host}: ${(e as Error).message}`);
  }
}
