/**
 * A repository in an Azure Blob Storage container, through Microsoft's `@azure/storage-blob`
 * client with a Shared Key (account name + key) or a SAS token.
 *
 * Atomicity is the service's: a Put Blob (or the Put Block List that commits staged blocks)
 * makes the blob visible whole or not at all; an upload cut off before the commit leaves no blob
 * under the name. No temporary names.
 */
import { BlobServiceClient, StorageSharedKeyCredential, type ContainerClient } from "@azure/storage-blob";
import { checkName, type Destination, type ObjectSize } from "./destination.ts";
import { BackupError } from "./error.ts";
import { DEFAULT_TIMEOUT_MS, isObjectPart, Limiter, listedSize } from "./remote.ts";

export interface AzureConfig {
  /** `https://<account>.blob.core.windows.net` (or an emulator's `http://127.0.0.1:10000/<account>`) */
  endpoint: string;
  container: string;
  accountName?: string;
  accountKey?: string;
  /** a SAS token (`sv=…&sig=…`) instead of the account key */
  sasToken?: string;
  /** blob name prefix of the repository inside the container */
  root: string;
  timeoutMs?: number;
  concurrency?: number;
}

const status = (e: unknown) => (e as { statusCode?: number }).statusCode;

export class AzureBlobDestination implements Destination {
  private readonly container: ContainerClient;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly limit: Limiter;

  constructor(private readonly cfg: AzureConfig) {
    this.timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // one retry inside the deadline; the abort signal ends any call at timeoutMs
    const options = { retryOptions: { maxTries: 2, tryTimeoutInMs: this.timeoutMs } };
    let service: BlobServiceClient;
    if (cfg.sasToken) service = new BlobServiceClient(`${cfg.endpoint.replace(/\/$/, "")}?${cfg.sasToken.replace(/^\?/, "")}`, undefined, options);
    else if (cfg.accountName && cfg.accountKey) service = new BlobServiceClient(cfg.endpoint, new StorageSharedKeyCredential(cfg.accountName, cfg.accountKey), options);
    else throw new BackupError("usage", "Azure Blob: give accountName + accountKey, or sasToken");
    this.container = service.getContainerClient(cfg.container);
    this.prefix = cfg.root.replace(/^\/+|\/+$/g, "");
    if (this.prefix) checkName(this.prefix);
    this.limit = new Limiter(cfg.concurrency ?? 16);
  }

  private blob(name: string) {
    checkName(name);
    return this.container.getBlockBlobClient(this.prefix ? `${this.prefix}/${name}` : name);
  }

  /** One call with an abort signal at the deadline. */
  private call<T>(what: string, fn: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    return this.limit.run(async () => {
      try {
        return await fn(AbortSignal.timeout(this.timeoutMs));
      } catch (e) {
        throw this.wrap(e, what);
      }
    });
  }

  private wrap(e: unknown, what: string): Error {
    if (e instanceof BackupError) return e;
    const err = e as Error & { statusCode?: number; code?: string };
    if (err.name === "AbortError" || err.name === "TimeoutError") return new BackupError("destination", `Azure ${what} at ${this.cfg.container}: no answer within ${this.timeoutMs} ms`);
    if (err.statusCode === 403 || err.statusCode === 401) return new BackupError("destination", `Azure ${what} at ${this.cfg.container}: refused (check the account key or SAS token)`);
    // the SDK's message can quote the request; keep the status and code only
    return new BackupError("destination", `Azure ${what} at ${this.cfg.container}: ${err.statusCode ? `HTTP ${err.statusCode} ` : ""}${err.code ?? err.name}`);
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    const b = this.blob(name);
    await this.call(`put ${name}`, (abortSignal) => b.uploadData(data, { abortSignal, blobHTTPHeaders: { blobContentType: "application/octet-stream" } }));
  }

  async get(name: string): Promise<Uint8Array> {
    const b = this.blob(name);
    return this.call(`get ${name}`, async (abortSignal) => {
      try {
        return new Uint8Array(await b.downloadToBuffer(0, undefined, { abortSignal }));
      } catch (e) {
        if (status(e) === 404) throw new BackupError("not_found", `object ${name} not found`);
        throw e;
      }
    });
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.entries(prefix)).map((e) => e.name);
  }

  /** The listing's own sizes (each blob's Content-Length). */
  async listSizes(prefix: string): Promise<ObjectSize[]> {
    return (await this.entries(prefix)).map((e) => ({ name: e.name, size: listedSize(e.size, `Azure list ${e.name} at ${this.cfg.container}`) }));
  }

  private async entries(prefix: string): Promise<{ name: string; size: unknown }[]> {
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    return this.call(`list ${prefix}`, async (abortSignal) => {
      const out: { name: string; size: unknown }[] = [];
      let pages = 0;
      for await (const page of this.container.listBlobsFlat({ prefix: full, abortSignal }).byPage({ maxPageSize: 5000 })) {
        for (const item of page.segment.blobItems) {
          const name = this.prefix ? item.name.slice(this.prefix.length + 1) : item.name;
          if (name.split("/").every(isObjectPart)) out.push({ name, size: item.properties.contentLength });
        }
        if (++pages > 100_000) break;
      }
      return out;
    });
  }

  async delete(name: string): Promise<void> {
    const b = this.blob(name);
    await this.call(`delete ${name}`, (abortSignal) => b.deleteIfExists({ abortSignal }));
  }

  async exists(name: string): Promise<boolean> {
    const b = this.blob(name);
    return this.call(`exists ${name}`, (abortSignal) => b.exists({ abortSignal }));
  }
}
