/**
 * The repository size a run reports for a non-local destination: a backup.run through Control to
 * an S3 bucket (s3rver on 127.0.0.1), and to an Azure container (azurite), answers `repoBytes` = the sum of its objects' sizes, read
 * back independently through the engine's destination (every object fetched); a second repository
 * under another prefix of the same bucket is not counted; a destination that cannot be listed
 * answers null (unknown) with its reason, never a guess. SFTP, FTP/FTPS, WebDAV and SMB: the same
 * case in each one's own test, against its real server (server-destination.case.ts).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackupHandler } from "../../../agent/control/backups/index.ts";
import { repositoryBytes } from "../../../agent/control/backups/repo-size.ts";
import { openDestination, type DestinationConfig } from "../../../agent/backup/destinations.ts";
import { requireComponent } from "../../support/ci.ts";
import { s3rverAvailable, startS3rver, type TestS3 } from "../../support/s3rver.ts";
import { azuriteAvailable, startAzurite, type TestAzurite } from "../../support/azurite.ts";

setDefaultTimeout(60_000);
const available = requireComponent(s3rverAvailable(), "s3rver (npm devDependency, run under node) for the S3 destination");
const azAvailable = requireComponent(azuriteAvailable(), "azurite (npm devDependency) for the Azure Blob destination");
let s3: TestS3;
let az: TestAzurite;
const work = mkdtempSync(join(tmpdir(), "sm-control-reposize-"));

beforeAll(async () => {
  if (available) s3 = await startS3rver();
  if (azAvailable) az = await startAzurite();
}, 90_000);
afterAll(async () => {
  await s3?.stop();
  await az?.stop();
  rmSync(work, { recursive: true, force: true });
});

test.skipIf(!available)("backup.run to S3 reports the repository's size; other repositories in the bucket are not counted", async () => {
  const cfg = (root: string) => ({ type: "s3", endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, root, timeoutMs: 20_000 }) as DestinationConfig;
  const handle = createBackupHandler({ dumpDir: join(work, "dumps"), progressMs: 1000 });
  const src = join(work, "src");
  mkdirSync(src);
  writeFileSync(join(src, "a.bin"), randomBytes(1_500_000));
  writeFileSync(join(src, "b.txt"), "b\n".repeat(10_000));
  const password = `pw-${randomBytes(8).toString("hex")}`;
  // another repository in the same bucket first
  expect((await handle("backup.run", { job: 1, run: 1, destination: cfg("job-1/host-9"), password, paths: [src], init: true })).ok).toBe(true);
  const r = await handle("backup.run", { job: 1, run: 2, destination: cfg("job-1/host-2"), password, paths: [src], init: true });
  expect(r.ok).toBe(true);
  const dest = openDestination(cfg("job-1/host-2"));
  let expected = 0;
  for (const name of await dest.list("")) expected += (await dest.get(name)).length;
  expect(expected).toBeGreaterThan(1_000_000);
  expect(r.repoBytes).toBe(expected);
  expect(await repositoryBytes(cfg("job-1"))).toBe(expected + (await repositoryBytes(cfg("job-1/host-9")))!);
});

test.skipIf(!azAvailable)("backup.run to Azure Blob reports the repository's size", async () => {
  const cfg = (root: string) => ({ type: "azure", endpoint: az.endpoint, container: az.container, accountName: az.accountName, accountKey: az.accountKey, root, timeoutMs: 20_000 }) as DestinationConfig;
  const handle = createBackupHandler({ dumpDir: join(work, "dumps-az"), progressMs: 1000 });
  const src = join(work, "src-az");
  mkdirSync(src);
  writeFileSync(join(src, "a.bin"), randomBytes(800_000));
  const password = `pw-${randomBytes(8).toString("hex")}`;
  expect((await handle("backup.run", { job: 2, run: 1, destination: cfg("job-2/host-9"), password, paths: [src], init: true })).ok).toBe(true);
  const r = await handle("backup.run", { job: 2, run: 2, destination: cfg("job-2/host-2"), password, paths: [src], init: true });
  expect(r.ok).toBe(true);
  const dest = openDestination(cfg("job-2/host-2"));
  let expected = 0;
  for (const name of await dest.list("")) expected += (await dest.get(name)).length;
  expect(expected).toBeGreaterThan(800_000);
  expect(r.repoBytes).toBe(expected);
});

test("a destination that cannot be listed: null (unknown) with the reason, never a guess", async () => {
  const why: string[] = [];
  expect(await repositoryBytes({ type: "sftp", host: "127.0.0.1", port: 1, username: "u", password: "p", hostKey: "SHA256:x", root: "/r", timeoutMs: 3000 } as DestinationConfig, { onError: (w) => why.push(w) })).toBeNull();
  expect(await repositoryBytes({ type: "webdav", url: "https://127.0.0.1:1/", username: "u", timeoutMs: 3000 } as DestinationConfig, { onError: (w) => why.push(w) })).toBeNull();
  expect(why).toHaveLength(2);
  expect(why[0]).toContain("SFTP 127.0.0.1:1");
  expect(why[1]).toContain("WebDAV PROPFIND");
});
