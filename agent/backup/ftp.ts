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
import { Client, FTPError, type FileInfo } from "basic-ftp";
import { checkName, type Destination } from "./destination.ts";
import { BackupError } from "./error.ts";
import { DEFAULT_TIMEOUT_MS, isObjectPart, Limiter, parents, tempName, withTimeout } from "./remote.ts";

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
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries: FileInfo[];
      try {
        entries = await this.use(`list ${rel || "/"}`, (c) => c.list(this.path(rel)));
      } catch (e) {
        if (e instanceof FTPError && e.code === NOT_FOUND) return;
        throw this.wrap(e, `list ${rel}`);
      }
      const subdirs: string[] = [];
      for (const e of entries) {
        if (!isObjectPart(e.name)) continue;
        const n = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory) subdirs.push(n);
        else if (e.isFile) out.push(n);
      }
      await Promise.all(subdirs.map(walk));
    };
    await walk(prefix.replace(/\/?[^/]*$/, ""));
    return out.filter((n) => n.startsWith(prefix));
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
