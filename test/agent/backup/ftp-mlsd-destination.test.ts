/**
 * The FTP destination's MLSD path against a real server: vsftpd (ftp-destination.test.ts, the
 * server of the FTP tests) lists with LIST only, while most other servers (ProFTPD, pure-ftpd,
 * FileZilla Server, IIS, pyftpdlib) offer MLSD, which basic-ftp then uses: names and sizes come from MLSD
 * facts, read by parseFtpListing. pure-ftpd and ProFTPD cannot be installed beside vsftpd (Debian's
 * packages of all three conflict), so the MLSD server is pyftpdlib (Debian's python3-pyftpdlib,
 * plain FTP, a virtual user; see test/support/pyftpdlib.ts): the shared destination suite, its
 * listSizes case included, a small round trip and the repository size through Control.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { Client } from "basic-ftp";
import { FtpDestination, parseFtpListing, type FtpConfig } from "../../../agent/backup/ftp.ts";
import { requireComponent } from "../../support/ci.ts";
import { pyftpdlibAvailable, startPyftpd, type TestPyftpd } from "../../support/pyftpdlib.ts";
import { serverFolderSuite } from "./destination.case.ts";
import { rawFiles, serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(pyftpdlibAvailable(), "python3-pyftpdlib (under /usr/bin/python3) for the FTP destination's MLSD listing");
let ftpd: TestPyftpd;

const config = (sub: string): FtpConfig => ({ host: "127.0.0.1", port: ftpd.port, username: ftpd.username, password: ftpd.password, tls: "none", allowPlain: true, root: `/${sub}`, timeoutMs: 10_000 });

if (available) {
  beforeAll(async () => {
    ftpd = await startPyftpd();
  }, 30_000);
  afterAll(async () => {
    await ftpd?.stop();
  });

  test("pyftpdlib offers MLSD, and the destination's listing goes through it", async () => {
    const c = new Client(10_000);
    try {
      await c.access({ host: "127.0.0.1", port: ftpd.port, user: ftpd.username, password: ftpd.password, secure: false });
      expect((await c.features()).has("MLST")).toBe(true);
      c.parseList = parseFtpListing;
      await c.list("/");
      expect((c as unknown as { availableListCommands: string[] }).availableListCommands).toEqual(["MLSD"]);
    } finally {
      c.close();
    }
  });

  serverFolderSuite("FTP (pyftpdlib, MLSD listings)", () => ftpd.dataDir, (sub) => new FtpDestination(config(sub)));

  serverDestinationCases("FTP (pyftpdlib, MLSD)", () => ({
    dest: (sub) => new FtpDestination(config(sub)),
    raw: (sub) => rawFiles(join(ftpd.dataDir, sub)),
    config: (sub) => ({ type: "ftp", ...config(sub) }),
  }), { treeMb: 4, noKill: true });
}
