/**
 * A local S3 server for the S3 destination and its presets (GCS, B2, R2, Wasabi): `s3rver` (npm,
 * a devDependency), the S3 REST API over a directory, on a free 127.0.0.1 port, run under node.
 *
 * What it checks and what it does not (docs/backup-format.md, S3): it implements the object
 * calls the destination makes (PUT, GET, HEAD, DELETE, ListObjectsV2 with continuation tokens,
 * S3's XML errors) and refuses an unknown access key id, but it does not verify SigV4
 * signatures, and it writes an object in place while the body arrives (real S3 stores a cut-off
 * PUT nowhere). So a wrong secret key and a server killed mid-upload are not tested against it.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort, startDirDaemon } from "./daemon.ts";

const ROOT = resolve(import.meta.dir, "../../node_modules/s3rver");

export function s3rverAvailable(): boolean {
  return existsSync(join(ROOT, "lib/s3rver.js")) && spawnSync("node", ["--version"]).status === 0;
}

export interface TestS3 {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

/** The server with a generated key pair in place of s3rver's built-in one, and one bucket. */
const launcher = `
const S3rver = require(${JSON.stringify(join(ROOT, "lib/s3rver.js"))});
const Account = require(${JSON.stringify(join(ROOT, "lib/models/account.js"))});
Account.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
Account.DUMMY_ACCOUNT.createKeyPair(process.env.S3_KEY_ID, process.env.S3_SECRET);
new S3rver({ address: "127.0.0.1", port: Number(process.env.S3_PORT), directory: process.env.S3_DIR, silent: true,
  vhostBuckets: false, configureBuckets: [{ name: process.env.S3_BUCKET, configs: [] }] }).run().catch((e) => { console.error(e); process.exit(1); });
`;

export async function startS3rver(): Promise<TestS3> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-s3-"));
  const port = await freePort();
  const accessKeyId = `AK${randomBytes(8).toString("hex").toUpperCase()}`;
  const secretAccessKey = randomBytes(20).toString("base64url");
  const bucket = "servermind-test";
  const env = { S3_KEY_ID: accessKeyId, S3_SECRET: secretAccessKey, S3_PORT: String(port), S3_DIR: dir, S3_BUCKET: bucket };
  // s3rver seals its ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its
  // legacy provider: without it every second page of a listing is an InternalError.
  const { stop } = await startDirDaemon("s3rver", ["node", "--openssl-legacy-provider", "-e", launcher], port, dir, { env, ms: 30_000 });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    region: "us-east-1",
    accessKeyId,
    secretAccessKey,
    stop,
  };
}
