/**
 * A repository on an SFTP server (OpenSSH or any SFTP v3 server), through the pure-JS `ssh2`
 * client: one SSH connection, reopened after a failure, with many requests in flight on it.
 *
 * The server's host key is pinned (`hostKey`): a connection to a server presenting any other key
 * is refused before authentication — there is no trust on first use. Uploads are written to a
 * temporary name, fsynced (fsync@openssh.com, when the server offers it) and renamed into place
 * with posix-rename@openssh.com (atomic replace); a killed upload leaves only a temporary name,
 * which `list` never returns.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { Client, type SFTPWrapper } from "ssh2";
import { checkName, type Destination, type ObjectSize } from "./destination.ts";
import { BackupError } from "./error.ts";
import { DEFAULT_TIMEOUT_MS, isObjectPart, Limiter, listedSize, parents, tempName, withTimeout } from "./remote.ts";

export interface SftpConfig {
  host: string;
  port?: number;
  username: string;
  /** OpenSSH or PEM private key (preferred), with its passphrase if it has one */
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /**
   * The server's host key: its OpenSSH public key line (`ssh-ed25519 AAAA…`, as in
   * /etc/ssh/ssh_host_ed25519_key.pub) or its fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`).
   */
  hostKey: string;
  /** Folder of the repository on the server (absolute, or relative to the login folder). */
  root: string;
  /** Deadline of each call in ms (connect, one object, one listing). */
  timeoutMs?: number;
  /** Requests in flight on the connection at once. */
  concurrency?: number;
}

const NO_SUCH_FILE = 2;

/** SHA256 fingerprint of a raw SSH public key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Normalizes a pinned host key (public key line or fingerprint) to its fingerprint. */
export function pinnedFingerprint(hostKey: string): string {
  const k = hostKey.trim();
  if (k.startsWith("SHA256:")) return k.replace(/=+$/, "");
  const blob = k.split(/\s+/)[1];
  if (!blob) throw new BackupError("usage", "SFTP hostKey must be an OpenSSH public key line or a SHA256: fingerprint");
  return fingerprint(Buffer.from(blob, "base64"));
}

const code = (e: unknown) => (e as { code?: unknown }).code;

export class SftpDestination implements Destination {
  private session?: Promise<{ client: Client; sftp: SFTPWrapper }>;
  private readonly dirs = new Map<string, Promise<void>>();
  private readonly limit: Limiter;
  private readonly timeoutMs: number;
  private readonly pin: string;

  constructor(private readonly cfg: SftpConfig) {
    this.timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.limit = new Limiter(cfg.concurrency ?? 16);
    this.pin = pinnedFingerprint(cfg.hostKey);
  }

  /** The open SFTP session, connecting (again) if there is none. */
  private connect(): Promise<{ client: Client; sftp: SFTPWrapper }> {
    if (this.session) return this.session;
    const client = new Client();
    let offered = "";
    const opened = new Promise<{ client: Client; sftp: SFTPWrapper }>((resolve, reject) => {
      client.once("ready", () => {
        client.sftp((err, sftp) => (err ? reject(err) : resolve({ client, sftp })));
      });
      client.once("error", (err) => {
        if (offered && offered !== this.pin) reject(new BackupError("destination", `SFTP ${this.cfg.host}: host key ${offered} does not match the pinned key ${this.pin}`));
        else reject(new BackupError("destination", `SFTP ${this.cfg.host}:${this.cfg.port ?? 22}: ${(err as Error).message}`));
      });
      client.connect({
        host: this.cfg.host,
        port: this.cfg.port ?? 22,
        username: this.cfg.username,
        privateKey: this.cfg.privateKey,
        passphrase: this.cfg.passphrase,
        password: this.cfg.password,
        readyTimeout: this.timeoutMs,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          offered = fingerprint(key);
          return offered === this.pin;
        },
      });
    });
    const session = withTimeout(opened, this.timeoutMs, `SFTP connect to ${this.cfg.host}`, () => client.destroy());
    this.session = session;
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    client.on("close", forget);
    client.on("error", forget);
    session.catch(() => {
      forget();
      client.destroy();
    });
    return session;
  }

  /** Runs one SFTP call under the deadline; a timeout drops the connection. */
  private call<T>(what: string, fn: (sftp: SFTPWrapper, done: (err: unknown, v?: T) => void) => void): Promise<T> {
    return this.limit.run(async () => {
      const { client, sftp } = await this.connect();
      const p = new Promise<T>((resolve, reject) => fn(sftp, (err, v) => (err ? reject(err) : resolve(v as T))));
      return withTimeout(p, this.timeoutMs, `SFTP ${what}`, () => client.destroy());
    });
  }

  private path(name: string): string {
    return posix.join(this.cfg.root, name);
  }

  private mkdir(dir: string): Promise<void> {
    let made = this.dirs.get(dir);
    if (!made) {
      made = this.call<void>(`mkdir ${dir}`, (s, done) => s.mkdir(dir, { mode: 0o700 }, done))
        .catch(async () => {
          // Already there (SFTP v3 says only "failure"), or really failed: stat tells.
          const st = await this.call<{ isDirectory(): boolean }>(`stat ${dir}`, (s, done) => s.stat(dir, done));
          if (!st.isDirectory()) throw new BackupError("destination", `SFTP: ${dir} exists and is not a folder`);
        })
        .catch((e) => {
          this.dirs.delete(dir);
          throw e;
        });
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
      await this.call<void>(`upload ${name}`, (s, done) => {
        s.open(temp, "w", { mode: 0o600 }, (err, handle) => {
          if (err) return done(err);
          const finish = (e: unknown) => s.close(handle, (e2) => done(e ?? e2));
          const write = (off: number) => {
            if (off >= data.length) {
              const ext = (s as unknown as { _extensions: Record<string, string> })._extensions;
              if (ext["fsync@openssh.com"]) return s.ext_openssh_fsync(handle, (e) => finish(e));
              return finish(undefined);
            }
            const n = Math.min(32 * 1024, data.length - off);
            s.write(handle, Buffer.from(data.buffer, data.byteOffset + off, n), 0, n, off, (e) => (e ? finish(e) : write(off + n)));
          };
          write(0);
        });
      });
      await this.call<void>(`rename ${name}`, (s, done) => {
        const ext = (s as unknown as { _extensions: Record<string, string> })._extensions;
        if (ext["posix-rename@openssh.com"]) return s.ext_openssh_rename(temp, final, done);
        // Plain SFTP v3 rename refuses an existing target: remove it first (a reader then sees none, never a part).
        s.unlink(final, () => s.rename(temp, final, done));
      });
    } catch (e) {
      await this.call<void>(`unlink ${temp}`, (s, done) => s.unlink(temp, () => done(undefined))).catch(() => {});
      throw this.wrap(e, `put ${name}`);
    }
  }

  async get(name: string): Promise<Uint8Array> {
    checkName(name);
    try {
      return await this.call<Buffer>(`download ${name}`, (s, done) => s.readFile(this.path(name), done));
    } catch (e) {
      if (code(e) === NO_SUCH_FILE) throw new BackupError("not_found", `object ${name} not found`);
      throw this.wrap(e, `get ${name}`);
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.walk(prefix)).map((e) => e.name);
  }

  /** Sizes from the readdir attributes the server sends with each name (SSH_FILEXFER_ATTR_SIZE). */
  async listSizes(prefix: string): Promise<ObjectSize[]> {
    return (await this.walk(prefix)).map((e) => ({ name: e.name, size: listedSize(e.size, `SFTP list ${e.name} at ${this.cfg.host}`) }));
  }

  /** The files under `prefix`'s folder, with the size their readdir attributes carry (if any). */
  private async walk(prefix: string): Promise<{ name: string; size: unknown }[]> {
    const base = prefix.replace(/\/?[^/]*$/, "");
    const out: { name: string; size: unknown }[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries: { filename: string; attrs: { size?: number; isDirectory(): boolean; isFile(): boolean } }[];
      try {
        entries = await this.call(`list ${rel || "/"}`, (s, done) => s.readdir(this.path(rel), done as never));
      } catch (e) {
        if (code(e) === NO_SUCH_FILE) return;
        throw this.wrap(e, `list ${rel}`);
      }
      const subdirs: string[] = [];
      for (const e of entries) {
        if (!isObjectPart(e.filename)) continue;
        const n = rel ? `${rel}/${e.filename}` : e.filename;
        if (e.attrs.isDirectory()) subdirs.push(n);
        else if (e.attrs.isFile()) out.push({ name: n, size: e.attrs.size });
      }
      await Promise.all(subdirs.map(walk));
    };
    await walk(base);
    return out.filter((e) => e.name.startsWith(prefix));
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    try {
      await this.call<void>(`delete ${name}`, (s, done) => s.unlink(this.path(name), done));
    } catch (e) {
      if (code(e) !== NO_SUCH_FILE) throw this.wrap(e, `delete ${name}`);
    }
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    try {
      return (await this.call<{ isFile(): boolean }>(`stat ${name}`, (s, done) => s.stat(this.path(name), done))).isFile();
    } catch (e) {
      if (code(e) === NO_SUCH_FILE) return false;
      throw this.wrap(e, `exists ${name}`);
    }
  }

  /** Closes the connection (a later call opens a new one). */
  async close(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (s) (await s.catch(() => undefined))?.client.end();
  }

  private wrap(e: unknown, what: string): Error {
    if (e instanceof BackupError) return e;
    return new BackupError("destination", `SFTP ${what}: ${(e as Error).message}`);
  }
}
