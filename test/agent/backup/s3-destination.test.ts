import { afterAll, beforeAll, expect, test } from "bun:test";
import { S3Client } from "bun";
import { BackupError } from "../../../agent/backup/error.ts";
import { S3Destination, type S3Config } from "../../../agent/backup/s3.ts";
import { cephRgwAvailable, startCephRgw, type TestRgw } from "../../support/ceph-rgw.ts";
import { requireComponent } from "../../support/ci.ts";
import { destinationSuite } from "./destination.case.ts";
import { serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(cephRgwAvailable(), "Ceph (ceph-mon, ceph-osd, radosgw) for the S3 destination");
let rgw: TestRgw;
let n = 0;

const config = (sub: string): S3Config => ({
  endpoint: rgw.endpoint,
  bucket: rgw.bucket,
  region: rgw.region,
  accessKeyId: rgw.accessKeyId,
  secretAccessKey: rgw.secretAccessKey,
  root: sub,
  timeoutMs: 10_000,
});
const dest = (sub: string, over: Partial<S3Config> = {}) => new S3Destination({ ...config(sub), ...over });

/** Every key under `sub/`, as the server lists it, nothing filtered. */
async function raw(sub: string): Promise<string[]> {
  const c = new S3Client({ endpoint: rgw.endpoint, bucket: rgw.bucket, region: rgw.region, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey });
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
    rgw = await startCephRgw();
  }, 180_000);
  afterAll(async () => {
    await rgw?.stop();
  }, 60_000);

  destinationSuite("S3 (Ceph RADOS Gateway)", async () => {
    const sub = `suite-${++n}`;
    const d = dest(sub);
    return { dest: d, cleanup: async () => { for (const k of await raw(sub)) await d.delete(k).catch(() => {}); } };
  });

  serverDestinationCases("S3", () => ({
    dest: (sub) => dest(sub),
    raw,
    kill: () => rgw.kill(),
    restart: () => rgw.restart(),
  }));

  test("S3: a wrong secret key is refused without the keys in the error", async () => {
    const err = await dest("auth", { secretAccessKey: "not-the-secret-123" }).put("config", Buffer.from("x")).catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("refused");
    expect((err as Error).message).not.toContain("not-the-secret-123");
    expect((err as Error).message).not.toContain(rgw.secretAccessKey);
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
}
