/**
 * The FTP/FTPS destination against vsftpd (Debian's package), the server the issue names: one
 * vsftpd with explicit TLS required for logins and data (TLS session reuse on the data
 * connections), one plain, both logging in a local system account through PAM
 * (test/support/vsftpd.ts). The shared destination suite, the engine round trip, the server killed
 * mid-upload and the repository size run against both. vsftpd lists with LIST only (no MLSD): the
 * MLSD path runs against pyftpdlib (ftp-mlsd-destination.test.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { BackupError } from "../../../agent/backup/error.ts";
import { FtpDestination, type FtpConfig } from "../../../agent/backup/ftp.ts";
import { createSelfSigned } from "../../../src/tls/self-signed.ts";
import { requireComponent } from "../../support/ci.ts";
import { startVsftpd, vsftpdAvailable, type TestVsftpd } from "../../support/vsftpd.ts";
import { serverFolderSuite } from "./destination.case.ts";
import { rawFiles, serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(vsftpdAvailable(), "vsftpd (run as root: it logs in a local account it makes, through PAM) for the FTP/FTPS destination");
let ftps: TestVsftpd;
let ftp: TestVsftpd;

const config = (sub: string, over: Partial<FtpConfig> = {}): FtpConfig => ({
  host: "127.0.0.1", port: ftps.port, username: ftps.username, password: ftps.password, ca: ftps.caPem, root: `${ftps.remoteDir}/${sub}`, timeoutMs: 10_000, ...over,
});
const plainConfig = (sub: string): FtpConfig => ({
  host: "127.0.0.1", port: ftp.port, username: ftp.username, password: ftp.password, tls: "none", allowPlain: true, root: `${ftp.remoteDir}/${sub}`, timeoutMs: 10_000,
});
const dest = (sub: string, over: Partial<FtpConfig> = {}) => new FtpDestination(config(sub, over));

if (available) {
  beforeAll(async () => {
    ftps = await startVsftpd({ tls: true });
    ftp = await startVsftpd({ tls: false });
  }, 30_000);
  afterAll(async () => {
    await ftps?.stop();
    await ftp?.stop();
  });

  serverFolderSuite("FTPS (vsftpd, explicit TLS)", () => ftps.dataDir, (sub) => dest(sub));

  serverDestinationCases("FTPS (vsftpd)", () => ({
    dest: (sub) => dest(sub),
    raw: (sub) => rawFiles(join(ftps.dataDir, sub)),
    kill: () => ftps.kill(),
    restart: () => ftps.restart(),
    config: (sub) => ({ type: "ftp", ...config(sub) }),
  }));

  serverFolderSuite("FTP (vsftpd, plain)", () => ftp.dataDir, (sub) => new FtpDestination(plainConfig(sub)));

  serverDestinationCases("FTP (vsftpd, plain)", () => ({
    dest: (sub) => new FtpDestination(plainConfig(sub)),
    raw: (sub) => rawFiles(join(ftp.dataDir, sub)),
    kill: () => ftp.kill(),
    restart: () => ftp.restart(),
    config: (sub) => ({ type: "ftp", ...plainConfig(sub) }),
  }), { treeMb: 8 });

  test("FTPS (vsftpd): TLS 1.3 and 1.2 are accepted, 1.1 is refused (openssl s_client, STARTTLS ftp)", () => {
    const tryVersion = (flag: string) =>
      spawnSync("/usr/bin/openssl", ["s_client", "-connect", `127.0.0.1:${ftps.port}`, "-starttls", "ftp", flag, "-brief"], { input: "", encoding: "utf8", timeout: 10_000 });
    const v13 = tryVersion("-tls1_3");
    expect(`${v13.stdout}${v13.stderr}`).toContain("Protocol version: TLSv1.3");
    const v12 = tryVersion("-tls1_2");
    expect(`${v12.stdout}${v12.stderr}`).toContain("Protocol version: TLSv1.2");
    const v11 = tryVersion("-tls1_1");
    expect(`${v11.stdout}${v11.stderr}`).not.toContain("Protocol version");
  });

  test("FTPS (vsftpd): a server certificate not signed by the configured CA is refused", async () => {
    const other = createSelfSigned(["127.0.0.1"], "someone else");
    const err = await dest("tls", { ca: other.certPem }).exists("config").catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
  });

  test("FTPS (vsftpd): a wrong password is refused without the credentials in the error; plain FTP needs allowPlain and the TLS server refuses it", async () => {
    const d = dest("auth", { password: "not-the-password-123" });
    const err = await d.exists("config").catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("login refused");
    expect((err as Error).message).not.toContain("not-the-password-123");
    expect(() => dest("plain", { tls: "none" })).toThrow("allowPlain");
    const plain = await dest("plain", { tls: "none", allowPlain: true }).exists("config").catch((e) => e);
    expect(plain).toBeInstanceOf(BackupError); // force_local_logins_ssl: "530 Non-anonymous sessions must use encryption."
  }, 20_000); // pam_unix delays a failed login by about 2 s

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
