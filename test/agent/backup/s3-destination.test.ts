/**
 * The S3 destination (Bun's S3 client) and the hosted-service presets built on it (Google Cloud
 * Storage, Backblaze B2, Cloudflare R2, Wasabi), against a local S3 server (s3rver) the test
 * starts on 127.0.0.1. What s3rver does not check (SigV4 signatures, atomic PUTs) is said in
 * test/support/s3rver.ts and docs/backup-format.md.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { S3Client } from "bun";
import { openDestination, redact, s3Preset, type DestinationConfig } from "../../../agent/backup/destinations.ts";
import { BackupError } from "../../../agent/backup/error.ts";
import { Repository } from "../../../agent/backup/repository.ts";
import { restore } from "../../../agent/backup/restore.ts";
import { backup } from "../../../agent/backup/backup.ts";
import { verify } from "../../../agent/backup/verify.ts";
import { S3Destination, type S3Config } from "../../../agent/backup/s3.ts";
import { requireComponent } from "../../support/ci.ts";
import { s3rverAvailable, startS3rver, type TestS3 } from "../../support/s3rver.ts";
import { destinationSuite } from "./destination.case.ts";
import { serverDestinationCases } from "./server-destination.case.ts";
import { cleanup, describeTree, mixedTree, PASSWORD, TEST_CHUNKER, TEST_SCRYPT, tempDir } from "./support.ts";
import { join } from "node:path";

const available = requireComponent(s3rverAvailable(), "s3rver (npm devDependency, run under node) for the S3 destination");
let s3: TestS3;
let n = 0;

const config = (sub: string): S3Config => ({
  endpoint: s3.endpoint,
  bucket: s3.bucket,
  region: s3.region,
  accessKeyId: s3.accessKeyId,
  secretAccessKey: s3.secretAccessKey,
  root: sub,
  timeoutMs: 10_000,
});
const dest = (sub: string, over: Partial<S3Config> = {}) => new S3Destination({ ...config(sub), ...over });

/** Every key under `sub/`, as the server lists it, nothing filtered. */
async function raw(sub: string): Promise<string[]> {
  const c = new S3Client({ endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });
  const out: string[] = [];
  let token: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const res = await c.list({ prefix: `${sub}/`, continuationToken: token });
    out.push(...(res.contents ?? []).map((o) => o.key.slice(sub.length + 1)));
    if (!res.isTruncated || !res.nextContinuationToken) break;
    token = res.nextContinuationToken;
  }
  return out;
}

if (available) {
  beforeAll(async () => {
    s3 = await startS3rver();
  }, 60_000);
  afterAll(async () => {
    await s3?.stop();
  }, 30_000);

  destinationSuite("S3 (s3rver)", async () => {
    const sub = `suite-${++n}`;
    const d = dest(sub);
    return { dest: d, cleanup: async () => { for (const k of await raw(sub)) await d.delete(k).catch(() => {}); } };
  }, { serverAtomicReplace: false });

  serverDestinationCases("S3", () => ({ dest: (sub) => dest(sub), raw }), { noKill: true, noSize: true });

  test("S3: a listing longer than one page (1,000 keys) is read to its end", async () => {
    const d = dest("paged");
    const names = Array.from({ length: 1203 }, (_, i) => `data/${(i % 16).toString(16)}0/k${String(i).padStart(5, "0")}`);
    for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map((k) => d.put(k, Buffer.from(k))));
    expect((await d.list("data/")).sort()).toEqual([...names].sort());
  }, 120_000);

  test("S3: an unknown access key is refused, and neither key is in the error", async () => {
    const err = await dest("auth", { accessKeyId: "AKNOTAKEY0000000", secretAccessKey: "not-the-secret-123" }).put("config", Buffer.from("x")).catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("refused");
    expect((err as Error).message).not.toContain("not-the-secret-123");
    expect((err as Error).message).not.toContain(s3.secretAccessKey);
  });

  test("S3: a bucket that does not exist is a destination error naming the bucket", async () => {
    const err = await dest("x", { bucket: "no-such-bucket" }).put("config", Buffer.from("x")).catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("no-such-bucket");
  });

  test("S3: a server that accepts TCP but never answers fails within the deadline", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const t = Date.now();
      const err = await dest("x", { endpoint: `http://127.0.0.1:${silent.port}`, timeoutMs: 1500 }).get("config").catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");
      expect(Date.now() - t).toBeLessThan(5000);
    } finally {
      silent.stop(true);
    }
  });

  // The presets: each opened by openDestination with the endpoint pointed at the local server
  // (the way a private endpoint is given), a whole backup → verify → restore through it.
  const presets: Array<[string, (sub: string) => DestinationConfig]> = [
    ["gcs", (sub) => ({ type: "gcs", bucket: s3.bucket, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, root: sub, endpoint: s3.endpoint })],
    ["b2", (sub) => ({ type: "b2", region: "us-west-004", bucket: s3.bucket, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, root: sub, endpoint: s3.endpoint })],
    ["r2", (sub) => ({ type: "r2", accountId: "0123abcd", bucket: s3.bucket, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, root: sub, endpoint: s3.endpoint })],
    ["wasabi", (sub) => ({ type: "wasabi", region: "eu-central-1", bucket: s3.bucket, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, root: sub, endpoint: s3.endpoint })],
  ];
  for (const [type, make] of presets) {
    test(`${type} preset: backup → verify → restore through the S3 API`, async () => {
      const src = await tempDir("src");
      const out = await tempDir("out");
      try {
        await mixedTree(src);
        const d = openDestination(make(`preset-${type}`));
        const { repo } = await Repository.init(d, PASSWORD, { chunker: TEST_CHUNKER, scrypt: TEST_SCRYPT });
        const snap = await backup(repo, [src]);
        expect(snap.stats.newChunks).toBeGreaterThan(0);
        const again = await Repository.open(openDestination(make(`preset-${type}`)), PASSWORD);
        expect((await verify(again)).errors).toEqual([]);
        await restore(again, "latest", out);
        expect(await describeTree(join(out, src))).toEqual(await describeTree(src));
        expect((await raw(`preset-${type}`)).some((k) => k.startsWith("data/"))).toBe(true);
        expect(JSON.stringify(redact(make("x")))).not.toContain(s3.secretAccessKey);
      } finally {
        await cleanup(src, out);
      }
    }, 60_000);
  }
}

// The endpoints the presets stand for (no server: these are the documented public endpoints).
test("S3 presets resolve to the services' documented endpoints, and refuse a missing region or account", () => {
  const keys = { bucket: "b", accessKeyId: "AK", secretAccessKey: "sk", root: "r" };
  expect(s3Preset({ type: "gcs", ...keys })).toMatchObject({ endpoint: "https://storage.googleapis.com", region: "auto" });
  expect(s3Preset({ type: "b2", region: "us-west-004", ...keys }).endpoint).toBe("https://s3.us-west-004.backblazeb2.com");
  expect(s3Preset({ type: "r2", accountId: "abc123", ...keys })).toMatchObject({ endpoint: "https://abc123.r2.cloudflarestorage.com", region: "auto" });
  expect(s3Preset({ type: "wasabi", region: "eu-central-1", ...keys }).endpoint).toBe("https://s3.eu-central-1.wasabisys.com");
  expect(() => s3Preset({ type: "b2", region: "", ...keys })).toThrow(/region/);
  expect(() => s3Preset({ type: "r2", accountId: "x.evil.example/", ...keys })).toThrow(/accountId/);
  expect(openDestination({ type: "gcs", ...keys })).toBeInstanceOf(S3Destination);
});
