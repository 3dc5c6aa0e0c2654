/**
 * A backup repository at a Destination: creating it, unlocking it with the password or the
 * recovery key, and reading/writing its sealed objects. Layout and bytes: docs/backup-format.md.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { Chunker, DEFAULT_CHUNKER, gearTable, type ChunkerParams } from "./chunker.ts";
import { DEFAULT_SCRYPT, formatRecoveryKey, parseRecoveryKey, recoveryKek, scryptKey, seal, unseal, type ScryptParams } from "./crypto.ts";
import type { Destination } from "./destination.ts";
import { closePack, restoreFile, sealIntoPack, type PackJob, type RestoreFileJob } from "./direct.ts";
import { BackupError } from "./error.ts";
import { LocalDestination } from "./local.ts";
import type { PackEntry } from "./pack-format.ts";
import { cryptoPool, restorePool } from "./pool.ts";

/** 2: chunks in pack files with index objects. 1 (one object per chunk) is refused. */
export const FORMAT_VERSION = 2;
/** Target size of a pack file in bytes (a pack closes at the first chunk that reaches it). */
export const DEFAULT_PACK_SIZE = 8 << 20;

interface KeyFile {
  version: 1;
  kdf: "scrypt" | "hkdf-sha256";
  N?: number;
  r?: number;
  p?: number;
  salt: string;
  /** seal(kek, "keys/<name>", JSON of MasterKeys), base64 */
  data: string;
}

interface MasterKeys {
  /** AES-256-GCM key for every sealed object */
  enc: string;
  /** HMAC-SHA256 key for chunk ids */
  id: string;
}

export interface RepoConfig {
  version: number;
  id: string;
  chunker: ChunkerParams;
  /** secret seed of the chunker's gear table, base64 */
  gearSeed: string;
  compression: { algorithm: "zstd"; level: number };
  /** target pack size, bytes */
  packSize: number;
}

export interface InitOptions {
  chunker?: ChunkerParams;
  scrypt?: ScryptParams;
  level?: number;
  packSize?: number;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const parse = <T>(b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T;

export class Repository {
  readonly chunker: Chunker;

  private constructor(
    readonly dest: Destination,
    readonly config: RepoConfig,
    readonly encKey: Uint8Array,
    readonly idKey: Uint8Array,
  ) {
    this.chunker = new Chunker(config.chunker, gearTable(unb64(config.gearSeed)));
  }

  /** Creates a repository; returns it and the recovery key, which is shown once and stored nowhere in clear. */
  static async init(dest: Destination, password: string, opts: InitOptions = {}): Promise<{ repo: Repository; recoveryKey: string }> {
    if (!password) throw new BackupError("usage", "a repository password is required");
    if ((await dest.exists("config")) || (await dest.list("keys/")).length) throw new BackupError("exists", "a repository already exists at this destination");
    const master: MasterKeys = { enc: b64(randomBytes(32)), id: b64(randomBytes(32)) };
    const config: RepoConfig = {
      version: FORMAT_VERSION,
      id: randomBytes(16).toString("hex"),
      chunker: opts.chunker ?? DEFAULT_CHUNKER,
      gearSeed: b64(randomBytes(32)),
      compression: { algorithm: "zstd", level: opts.level ?? 3 },
      packSize: opts.packSize ?? DEFAULT_PACK_SIZE,
    };
    const s = opts.scrypt ?? DEFAULT_SCRYPT;
    const salt = randomBytes(32);
    const kek = await scryptKey(password, salt, s);
    const pw: KeyFile = { version: 1, kdf: "scrypt", ...s, salt: b64(salt), data: b64(seal(kek, "keys/password", json(master), false)) };
    const recovery = randomBytes(32);
    const rsalt = randomBytes(32);
    const rk: KeyFile = { version: 1, kdf: "hkdf-sha256", salt: b64(rsalt), data: b64(seal(recoveryKek(recovery, rsalt), "keys/recovery", json(master), false)) };
    const enc = unb64(master.enc);
    // Keys first, config last: a destination with a config is a complete repository.
    await dest.put("keys/password", json(pw));
    await dest.put("keys/recovery", json(rk));
    await dest.put("config", seal(enc, "config", json(config), false));
    return { repo: new Repository(dest, config, enc, unb64(master.id)), recoveryKey: formatRecoveryKey(recovery) };
  }

  /** Opens with the password, or with `{ recoveryKey }`. A wrong secret is BackupError("bad_password"). */
  static async open(dest: Destination, secret: string | { recoveryKey: string }): Promise<Repository> {
    const name = typeof secret === "string" ? "keys/password" : "keys/recovery";
    let kf: KeyFile;
    try {
      kf = parse<KeyFile>(await dest.get(name));
    } catch (e) {
      if (e instanceof BackupError && e.code === "not_found") throw new BackupError("not_found", "no repository at this destination");
      throw e;
    }
    const salt = unb64(kf.salt);
    const kek =
      typeof secret === "string"
        ? await scryptKey(secret, salt, { N: kf.N!, r: kf.r!, p: kf.p! })
        : recoveryKek(parseRecoveryKey(secret.recoveryKey), salt);
    let master: MasterKeys;
    try {
      master = parse<MasterKeys>(unseal(kek, name, unb64(kf.data)));
    } catch (e) {
      if (e instanceof BackupError && e.code === "corrupt") throw new BackupError("bad_password", typeof secret === "string" ? "wrong password" : "wrong recovery key");
      throw e;
    }
    const enc = unb64(master.enc);
    const config = parse<RepoConfig>(unseal(enc, "config", await dest.get("config")));
    if (config.version === 1) {
      throw new BackupError(
        "bad_format",
        "repository format 1 (one object per chunk, written by an earlier agent) is not supported by this engine, which reads format 2 (pack files): restore what you need from it with the earlier agent, then back up into a new repository",
      );
    }
    if (config.version !== FORMAT_VERSION) throw new BackupError("bad_format", `repository format ${config.version} is not supported (this engine reads ${FORMAT_VERSION})`);
    return new Repository(dest, config, enc, unb64(master.id));
  }

  /** Changes the password (re-wraps the master keys; chunks are untouched). */
  async changePassword(password: string, s: ScryptParams = DEFAULT_SCRYPT): Promise<void> {
    const master: MasterKeys = { enc: b64(this.encKey), id: b64(this.idKey) };
    const salt = randomBytes(32);
    const kek = await scryptKey(password, salt, s);
    const pw: KeyFile = { version: 1, kdf: "scrypt", ...s, salt: b64(salt), data: b64(seal(kek, "keys/password", json(master), false)) };
    await this.dest.put("keys/password", json(pw));
  }

  /** Writes an object sealed under its own name. */
  async putObject(name: string, plain: Uint8Array, compress = true): Promise<void> {
    await this.dest.put(name, this.sealObject(name, plain, compress));
  }

  sealObject(name: string, plain: Uint8Array, compress = true): Uint8Array {
    return seal(this.encKey, name, plain, compress, this.config.compression.level);
  }

  /** `sealObject` on the worker pool (pool.ts): the same bytes; `plain` may be reused as soon as this returns (unless it is shared memory: pool.ts). */
  sealObjectAsync(name: string, plain: Uint8Array, compress = true): Promise<Uint8Array> {
    const level = this.config.compression.level;
    return cryptoPool().run({ op: "seal", key: this.encKey, aad: name, data: plain, compress, level }, (data) => seal(this.encKey, name, data, compress, level));
  }

  /**
   * Whether the worker pool reads and writes this repository's files itself (direct.ts): a
   * local directory (whose put and get are LocalDestination's own, not a wrapper's) and worker
   * threads running.
   */
  get direct(): boolean {
    return this.local && cryptoPool().threads > 0;
  }

  /** `direct` for a restore, whose file jobs run on their own pool (restorePool). */
  get directRestore(): boolean {
    return this.local && restorePool().threads > 0;
  }

  private get local(): boolean {
    const d = this.dest;
    return d instanceof LocalDestination && d.put === LocalDestination.prototype.put && d.get === LocalDestination.prototype.get;
  }

  /**
   * Seals a chunk and appends it to the open pack of `run` in a pool worker, which writes the
   * pack file itself (only when `direct`; direct.ts). Settles once the chunk is in the pack file
   * (`plain` may then be reused); the pack is durable and indexed only after `closePacks`.
   */
  async sealIntoPackAsync(run: string, id: string, plain: Uint8Array): Promise<number> {
    const job = this.packJob(run);
    const r = await cryptoPool().submit({ op: "packChunk", ...job, id, data: plain }, (data) => ({ stored: sealIntoPack(job, id, data) }));
    return r.stored!;
  }

  /**
   * Ends a run's packs on every worker and in this thread (the pool's fallback may have taken
   * some chunks): each open pack committed (fsync, rename, its index object) or, with `abort`,
   * removed, and every background commit awaited. Returns what was stored and indexed; throws
   * when any pack of the run failed or a worker died (its open pack is lost: the run must fail).
   */
  async closePacks(run: string, abort = false): Promise<{ packs: PackEntry[]; indexes: string[] }> {
    const job = this.packJob(run);
    const [workers, here] = await Promise.all([cryptoPool().broadcast({ op: "packClose", ...job, abort, data: new Uint8Array(0) }), closePack(job, abort)]);
    const all = [...workers, here];
    return { packs: all.flatMap((r) => r.packs ?? []), indexes: all.flatMap((r) => r.indexes ?? []) };
  }

  private packJob(run: string): PackJob {
    const dest = this.dest as LocalDestination;
    return { run, root: dest.root, fsync: dest.durable, key: this.encKey, level: this.config.compression.level, packSize: this.config.packSize };
  }

  /** Restores one file's content from a local repository on the restore pool (only when `directRestore`): direct.ts' restoreFile. */
  async restoreFileDirect(job: Omit<RestoreFileJob, "root" | "key">): Promise<void> {
    const full: RestoreFileJob = { ...job, root: (this.dest as LocalDestination).root, key: this.encKey };
    await restorePool().submit({ op: "restoreFile", ...full, data: new Uint8Array(0) }, () => {
      restoreFile(full);
      return {};
    });
  }

  async getObject(name: string): Promise<Uint8Array> {
    return unseal(this.encKey, name, await this.dest.get(name));
  }

  async putJson(name: string, v: unknown): Promise<void> {
    await this.putObject(name, json(v));
  }

  async getJson<T>(name: string): Promise<T> {
    return parse<T>(await this.getObject(name));
  }
}

export const snapshotName = (id: string) => `snapshots/${id}`;

export const thisHost = () => hostname();
