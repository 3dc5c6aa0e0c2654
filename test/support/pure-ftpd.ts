/**
 * A real FTP server (Debian pure-ftpd) for the FTP/FTPS backup destination: explicit TLS required
 * for logins (`--tls=2`) with a generated certificate, one virtual user (pure-pw's own password
 * database: no system account, no PAM), chrooted to a folder in a temp dir, on a free 127.0.0.1
 * port. Needs root (pure-ftpd switches to the virtual user's uid, here www-data).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { freePort, startDaemon, type Daemon, type TestPasswordServer } from "./daemon.ts";

export const PURE_FTPD = "/usr/sbin/pure-ftpd";

export function pureFtpdAvailable(): boolean {
  return existsSync(PURE_FTPD) && existsSync("/usr/bin/pure-pw") && process.getuid?.() === 0;
}

export interface TestFtpd extends TestPasswordServer {
  port: number;
  caPem: string;
}

export async function startPureFtpd(): Promise<TestFtpd> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-ftpd-"));
  chmodSync(dir, 0o755);
  const dataDir = join(dir, "home");
  mkdirSync(dataDir);
  spawnSync("/bin/chown", ["www-data:www-data", dataDir]);
  const cert = createSelfSigned(["127.0.0.1"], "ftp test");
  writeFileSync(join(dir, "cert.pem"), cert.certPem);
  writeFileSync(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
  const username = "backup";
  const password = `ftp-${randomBytes(12).toString("hex")}`;
  // The passwd line by hand with a SHA-512 crypt hash: pure-pw's default argon2id costs about a
  // second per login, and the destination logs in once per pooled connection.
  const hash = spawnSync("/usr/bin/openssl", ["passwd", "-6", "-stdin"], { input: password, encoding: "utf8" });
  if (hash.status !== 0) throw new Error(`openssl passwd failed: ${hash.stderr}`);
  const uid = spawnSync("/usr/bin/id", ["-u", "www-data"], { encoding: "utf8" }).stdout.trim();
  const gid = spawnSync("/usr/bin/id", ["-g", "www-data"], { encoding: "utf8" }).stdout.trim();
  writeFileSync(join(dir, "pureftpd.passwd"), `${username}:${hash.stdout.trim()}:${uid}:${gid}::${dataDir}/./::::::::::::\n`, { mode: 0o600 });
  const mkdb = spawnSync("/usr/bin/pure-pw", ["mkdb", join(dir, "pureftpd.pdb"), "-f", join(dir, "pureftpd.passwd")], { encoding: "utf8" });
  if (mkdb.status !== 0) throw new Error(`pure-pw mkdb failed: ${mkdb.stderr}`);
  const port = await freePort();
  const cmd = [
    PURE_FTPD,
    `--bind=127.0.0.1,${port}`,
    `--login=puredb:${join(dir, "pureftpd.pdb")}`,
    "--noanonymous",
    "--chrooteveryone",
    "--dontresolve",
    "--ipv4only",
    "--tls=2",
    `--certfile=${join(dir, "cert.pem")},${join(dir, "key.pem")}`,
    "--forcepassiveip=127.0.0.1",
    "--maxclientsnumber=50",
    "--maxclientsperip=50",
    "--minuid=1",
    "--umask=177:077",
    `--pidfile=${join(dir, "pure-ftpd.pid")}`,
  ];
  let daemon: Daemon;
  try {
    daemon = await startDaemon("pure-ftpd", cmd, port);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    port,
    caPem: cert.certPem,
    username,
    password,
    dataDir,
    kill: () => daemon.kill(),
    async restart() {
      await daemon.kill();
      daemon = await startDaemon("pure-ftpd", cmd, port);
    },
    async stop() {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
