/**
 * The size of a repository at its destination, after a run: the sum of its objects' sizes. A
 * local directory is walked; an S3-compatible bucket (s3, gcs, b2, r2, wasabi) is listed under the
 * repository's prefix with Bun's S3 client, whose listing carries each object's size (the same
 * listing the engine's S3 destination does, sizes kept), an Azure container likewise with
 * `@azure/storage-blob`. Other destinations (SFTP, FTP, WebDAV, SMB): null, shown as unknown,
 * because the engine's Destination.list gives names only.
 */
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { S3Client } from "bun";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { s3Preset, type DestinationConfig } from "../../backup/destinations.ts";
import type { AzureConfig } from "../../backup/azure.ts";
import type { S3Config } from "../../backup/s3.ts";

/** Bytes under a local repository. */
export async function dirBytes(dir: string, budget = { n: 200_000 }): Promise<number> {
  let total = 0;
  let names: import("node:fs").Dirent[];
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of names) {
    if (--budget.n < 0) break;
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(p, budget);
    else if (e.isFile()) total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** Sum of the sizes of the objects under an S3 repository's prefix (bounded: 10,000 pages of 1,000). */
export async function s3Bytes(cfg: S3Config, timeoutMs = 120_000): Promise<number> {
  const client = new S3Client({
    endpoint: cfg.endpoint, bucket: cfg.bucket, region: cfg.region, accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey,
    sessionToken: cfg.sessionToken, virtualHostedStyle: cfg.virtualHostedStyle,
  });
  const root = cfg.root.replace(/^\/+|\/+$/g, "");
  const prefix = root ? `${root}/` : "";
  const end = Date.now() + timeoutMs;
  let total = 0;
  let token: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    if (Date.now() > end) throw new Error(`listing took over ${timeoutMs / 1000} s`);
    const res = await client.list({ prefix, continuationToken: token, maxKeys: 1000 });
    for (const o of res.contents ?? []) total += Number(o.size ?? 0);
    if (!res.isTruncated || !res.nextContinuationToken) break;
    token = res.nextContinuationToken;
  }
  return total;
}

/** Sum of the sizes of the blobs under an Azure repository's prefix (bounded: 10,000 pages of 5,000). */
export async function azureBytes(cfg: AzureConfig, timeoutMs = 120_000): Promise<number> {
  const options = { retryOptions: { maxTries: 2, tryTimeoutInMs: timeoutMs } };
  let service: BlobServiceClient;
  if (cfg.sasToken) service = new BlobServiceClient(`${cfg.endpoint.replace(/\/$/, "")}?${cfg.sasToken.replace(/^\?/, "")}`, undefined, options);
  else if (cfg.accountName && cfg.accountKey) service = new BlobServiceClient(cfg.endpoint, new StorageSharedKeyCredential(cfg.accountName, cfg.accountKey), options);
  else throw new Error("Azure Blob: no credentials");
  const root = cfg.root.replace(/^\/+|\/+$/g, "");
  const abortSignal = AbortSignal.timeout(timeoutMs);
  let total = 0;
  let pages = 0;
  for await (const page of service.getContainerClient(cfg.container).listBlobsFlat({ prefix: root ? `${root}/` : "", abortSignal }).byPage({ maxPageSize: 5000 })) {
    for (const item of page.segment.blobItems) total += Number(item.properties.contentLength ?? 0);
    if (++pages >= 10_000) break;
  }
  return total;
}

/** The repository's size, or null when this destination's listing has no sizes (or it failed). */
export async function repositoryBytes(cfg: DestinationConfig): Promise<number | null> {
  try {
    switch (cfg.type) {
      case "local":
        return await dirBytes(cfg.path);
      case "s3":
        return await s3Bytes(cfg);
      case "gcs":
      case "b2":
      case "r2":
      case "wasabi":
        return await s3Bytes(s3Preset(cfg));
      case "azure":
        return await azureBytes(cfg);
      default:
        return null;
    }
  } catch {
    return null;
  }
}
