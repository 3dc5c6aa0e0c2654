import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { BackupError } from "../../../agent/backup/error.ts";
import { WebdavDestination, type WebdavConfig } from "../../../agent/backup/webdav.ts";
import { apacheDavAvailable, startApacheDav, type TestDav } from "../../support/apache-dav.ts";
import { requireComponent } from "../../support/ci.ts";
import { createSelfSigned } from "../../../src/tls/self-signed.ts";
import { serverFolderSuite } from "./destination.case.ts";
import { rawFiles, serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(apacheDavAvailable(), "apache2 with mod_dav/mod_dav_fs/mod_ssl for the WebDAV destination");
let dav: TestDav;

const dest = (sub: string, over: Partial<WebdavConfig> = {}) =>
  new WebdavDestination({ url: `${dav.url}${sub}/`, username: dav.username, password: dav.password, ca: dav.caPem, timeoutMs: 10_000, ...over });

if (available) {
  beforeAll(async () => {
    dav = await startApacheDav();
  }, 30_000);
  afterAll(async () => {
    await dav?.stop();
  });

  serverFolderSuite("WebDAV (apache2 mod_dav over HTTPS)", () => dav.dataDir, (sub) => dest(sub));

  serverDestinationCases("WebDAV", () => ({
    dest: (sub) => dest(sub),
    raw: (sub) => rawFiles(join(dav.dataDir, sub)),
    kill: () => dav.kill(),
    restart: () => dav.restart(),
    config: (sub) => ({ type: "webdav", url: `${dav.url}${sub}/`, username: dav.username, password: dav.password, ca: dav.caPem, timeoutMs: 10_000 }),
  }));

  // mod_dav answers 404 to one of two MOVEs onto one name that cross (it deletes the destination,
  // then moves): 12 at once failed 20 of 30 rounds before put tried such a MOVE again.
  test("WebDAV: many concurrent puts of one name all succeed and leave one whole object, round after round", async () => {
    for (let round = 0; round < 10; round++) {
      const d = dest(`race-${round}`);
      const bodies = Array.from({ length: 12 }, (_, i) => Buffer.alloc(256 * 1024, i + 1));
      const settled = await Promise.allSettled(bodies.map((b) => d.put("data/cc/same", b)));
      expect(settled.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      const got = Buffer.from(await d.get("data/cc/same"));
      expect(bodies.some((b) => b.equals(got))).toBe(true);
      expect(await d.list("data/")).toEqual(["data/cc/same"]);
    }
  }, 60_000);

  test("WebDAV: a server certificate not signed by the configured CA is refused", async () => {
    const other = createSelfSigned(["127.0.0.1"], "someone else");
    const err = await dest("tls", { ca: other.certPem }).exists("config").catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
  });

  test("WebDAV: a wrong password is a destination error that does not carry the credentials; http:// is refused", async () => {
    const err = await dest("auth", { password: "not-the-password-123" }).put("config", Buffer.from("x")).catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("refused");
    expect((err as Error).message).not.toContain("not-the-password-123");
    expect(() => new WebdavDestination({ url: dav.url.replace("https:", "http:"), username: "u", password: "p" })).toThrow("https");
    expect(() => new WebdavDestination({ url: dav.url.replace("https://", "https://u:p@") })).toThrow("not in the URL");
  });

  test("WebDAV: a server that accepts TCP but never answers fails within the deadline", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const t = Date.now();
      const err = await new WebdavDestination({ url: `https://127.0.0.1:${silent.port}/r/`, username: "u", password: "p", timeoutMs: 1500 }).get("config").catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");
      expect(Date.now() - t).toBeLessThan(5000);
    } finally {
      silent.stop(true);
    }
  });
}
