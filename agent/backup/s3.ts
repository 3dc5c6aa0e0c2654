/**
 * A repository in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Wasabi, Cloudflare R2,
 * Backblaze B2's S3 API, Google Cloud Storage's XML API with HMAC keys), through Bun's built-in
 * S3 client (no dependency; SigV4 signing).
 *
 * Atomicity is the protocol's: an S3 PUT (or a completed multipart upload) makes the object
 * visible whole or not at all, and a PUT cut off mid-body stores nothing. No temporary names.
 */
import { S3Client } from "bun";
import { checkName, type Destination, type ObjectSize } from "./destination.ts";
import { BackupError } from "./error.ts";
import { DEFAULT_TIMEOUT_MS, isObjectPart, Limiter, listedSize, withTimeout } from "./remote.ts";

export interface S3Config {
  /** `https://s3.eu-central-1.amazonaws.com`, `https://<account>.r2.cloudflarestorage.com`, `https://storage.googleapis.com`, … */
  endpoint: string;
  bucket: string;
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** key prefix of the repository inside the bucket, e.g. `servermind/web-1` ("" for the whole bucket) */
  root: string;
  /** bucket in the host name (AWS's default for new buckets) instead of the path */
  virtualHostedStyle?: boolean;
  timeoutMs?: number;
  concurrency?: number;
}

const code = (e: unknown) => (e as { code?: string }).code;

export class S3Destination implements Destination {
  private readonly client: S3Client;
  private readonly timeoutMs: number;
  private readonly limit: Limiter;
  private readonly prefix: string;

  constructor(private readonly cfg: S3Config) {
    const url = new URL(cfg.endpoint);
    if (url.username || url.password) throw new BackupError("usage", "S3: give the keys as accessKeyId/secretAccessKey, not in the endpoint");
    this.client = new S3Client({
      endpoint: cfg.endpoint,
      bucket: cfg.bucket,
      region: cfg.region,
      accessKeyId: cfg.accessKeyId,
      secretAccessKey: cfg.secretAccessKey,
      sessionToken: cfg.sessionToken,
      virtualHostedStyle: cfg.virtualHostedStyle,
    });
    this.timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.limit = new Limiter(cfg.concurrency ?? 16);
    this.prefix = cfg.root.replace(/^\/+|\/+$/g, "");
    if (this.prefix) checkName(this.prefix);
  }

  private key(name: string): string {
    checkName(name);
    return this.prefix ? `${this.prefix}/${name}` : name;
  }

  /** One S3 call under the deadline (Bun's client takes no abort signal: the caller stops waiting). */
  private call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.limit.run(() => withTimeout(fn(), this.timeoutMs, `S3 ${what} at ${this.cfg.bucket}`));
  }

  private wrap(e: unknown, what: string): Error {
    if (e instanceof BackupError) return e;
    const c = code(e);
    if (c === "AccessDenied" || c === "InvalidAccessKeyId" || c === "SignatureDoesNotMatch") return new BackupError("destination", `S3 ${what} at ${this.cfg.bucket}: refused (${c}: check the keys and the bucket policy)`);
    return new BackupError("destination", `S3 ${what} at ${this.cfg.bucket}: ${c ? `${c}: ` : ""}${(e as Error).message}`);
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    const key = this.key(name);
    try {
      await this.call(`put ${name}`, () => this.client.write(key, data, { type: "application/octet-stream" }));
    } catch (e) {
      throw this.wrap(e, `put ${name}`);
    }
  }

  async get(name: string): Promise<Uint8Array> {
    const key = this.key(name);
    try {
      return await this.call(`get ${name}`, async () => new Uint8Array(await this.client.file(key).arrayBuffer()));
    } catch (e) {
      if (code(e) === "NoSuchKey" || code(e) === "ERR_S3_FILE_NOT_FOUND") throw new BackupError("not_found", `object ${name} not found`);
      throw this.wrap(e, `get ${name}`);
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.entries(prefix)).map((e) => e.name);
  }

  /** The listing's own sizes (ListObjectsV2's Size of each key). */
  async listSizes(prefix: string): Promise<ObjectSize[]> {
    return (await this.entries(prefix)).map((e) => ({ name: e.name, size: listedSize(e.size, `S3 list ${e.name} at ${this.cfg.bucket}`) }));
  }

  private async entries(prefix: string): Promise<{ name: string; size: unknown }[]> {
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    const out: { name: string; size: unknown }[] = [];
    let token: string | undefined;
    // bounded: 100,000 pages of up to 1,000 keys
    for (let page = 0; page < 100_000; page++) {
      let res;
      try {
        res = await this.call(`list ${prefix}`, () => this.client.list({ prefix: full, continuationToken: token, maxKeys: 1000 }));
      } catch (e) {
        throw this.wrap(e, `list ${prefix}`);
      }
      for (const o of res.contents ?? []) {
        const name = this.prefix ? o.key.slice(this.prefix.length + 1) : o.key;
        if (name.split("/").every(isObjectPart)) out.push({ name, size: o.size });
      }
      if (!res.isTruncated || !res.nextContinuationToken) break;
      token = res.nextContinuationToken;
    }
    return out;
  }

  async delete(name: string): Promise<void> {
    const key = this.key(name);
    try {
      await this.call(`delete ${name}`, () => this.client.delete(key));
    } catch (e) {
      if (code(e) !== "NoSuchKey") throw this.wrap(e, `delete ${name}`);
    }
  }

  async exists(name: string): Promise<boolean> {
    const key = this.key(name);
    try {
      return await this.call(`exists ${name}`, () => this.client.exists(key));
    } catch (e) {
      throw this.wrap(e, `exists ${name}`);
    }
  }
}
