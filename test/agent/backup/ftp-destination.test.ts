import { afterAll, beforeAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { BackupError } from "../../../agent/backup/error.ts";
import { FtpDestination, type FtpConfig } from "../../../agent/backup/ftp.ts";
import { createSelfSigned } from "../../../src/tls/self-signed.ts";
import { requireComponent } from "../../support/ci.ts";
import { pureFtpdAvailable, startPureFtpd, type TestFtpd } from "../../support/pure-ftpd.ts";
import { destinationSuite } from "./destination.case.ts";
import { rawFiles, serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(pureFtpdAvailable(), "pure-ftpd (run as root) for the FTP/FTPS destination");
let ftpd: TestFtpd;
let n = 0;

const dest = (sub: string, over: Partial<FtpConfig> = {}) =>
  new FtpDestination({ host: "127.0.0.1", port: ftpd.port, username: ftpd.username, password: ftpd.password, ca: ftpd.caPem, root: `/${sub}`, timeoutMs: 10_000, ...over });

if (available) {
  beforeAll(async () => {
    ftpd = await startPureFtpd();
  }, 30_000);
  afterAll(async () => {
    await ftpd?.stop();
  });

  destinationSuite("FTPS (pure-ftpd, explicit TLS)", async () => {
    const sub = `suite-${++n}`;
    const d = dest(sub);
    return { dest: d, cleanup: async () => { await d.close(); await rm(join(ftpd.dataDir, sub), { recursive: true, force: true }); } };
  });

  serverDestinationCases("FTPS", () => ({
    dest: (sub) => dest(sub),
    raw: (sub) => rawFiles(join(ftpd.dataDir, sub)),
    kill: () => ftpd.kill(),
    restart: () => ftpd.restart(),
  }));

  test("FTPS: a server certificate not signed by the configured CA is refused", async () => {
    const other = createSelfSigned(["127.0.0.1"], "someone else");
    const err = await dest("tls", { ca: other.certPem }).exists("config").catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
  });

  test("FTPS: a wrong password is refused without the credentials in the error; plain FTP needs allowPlain and the server refuses it", async () => {
    const d = dest("auth", { password: "not-the-password-123" });
    const err = await d.exists("config").catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("login refused");
    expect((err as Error).message).not.toContain("not-the-password-123");
    expect(() => dest("plain", { tls: "none" })).toThrow("allowPlain");
    const plain = await dest("plain", { tls: "none", allowPlain: true }).exists("config").catch((e) => e);
    expect(plain).toBeInstanceOf(BackupError); // --tls=2: the server refuses a login in clear
  }, 20_000); // two refused logins, each answered late by pure-ftpd on purpose: 3.2-5 s on the loaded machine, past the default 5 s

  test("FTPS: a server that accepts TCP but never answers fails within the deadline", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const t = Date.now();
      const err = await new FtpDestination({ host: "127.0.0.1", port: silent.port, username: "u", password: "p", root: "/r", timeoutMs: 1500 }).get("config").catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");
      expect(Date.now() - t).toBeLessThan(5000);
    } finally {
      silent.stop(true);
    }
  });
}
