/**
 * An FTP server that lists with MLSD, for the FTP destination's MLSD path: pyftpdlib (Debian's
 * python3-pyftpdlib, under /usr/bin/python3), plain FTP, one virtual user (its DummyAuthorizer: no
 * system account), on 127.0.0.1 with passive ports below Linux's ephemeral range. Plain, not TLS:
 * its TLS_FTPHandler (python3-openssl) reset every TLS data connection under Bun's client
 * (ECONNRESET on the data socket, TLS 1.2 and 1.3 alike); FTPS is tested against vsftpd.
 * vsftpd (vsftpd.ts, the FTP tests' server) has no MLSD; pure-ftpd and ProFTPD have it, but
 * Debian's packages of both conflict with vsftpd's (all three provide `ftp-server`), so they
 * cannot be installed beside it. pyftpdlib is a library, not an `ftp-server` package.
 */
import { randomBytes, randomInt } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startDirDaemon, type TestPasswordServer } from "./daemon.ts";

export const PYTHON = "/usr/bin/python3";

export function pyftpdlibAvailable(): boolean {
  return existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import pyftpdlib"]).status === 0;
}

export interface TestPyftpd extends TestPasswordServer {
  port: number;
}

const SERVER = `
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
port, home, user, password, pasv = sys.argv[1:6]
auth = DummyAuthorizer()
auth.add_user(user, password, home, perm="elradfmwMT")
class Handler(FTPHandler):
    pass
Handler.authorizer = auth
Handler.passive_ports = range(int(pasv), int(pasv) + 64)
Handler.banner = "ServerMind test pyftpdlib"
server = FTPServer(("127.0.0.1", int(port)), Handler)
server.max_cons = 256
server.max_cons_per_ip = 256
server.serve_forever()
`;

export async function startPyftpd(): Promise<TestPyftpd> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-pyftpd-"));
  chmodSync(dir, 0o700);
  const dataDir = join(dir, "home");
  mkdirSync(dataDir);
  writeFileSync(join(dir, "server.py"), SERVER);
  const username = "backup";
  const password = `ftp-${randomBytes(12).toString("hex")}`;
  const port = await freePort();
  const pasv = randomInt(20_000, 32_000 - 64);
  // the password on the command line: a throwaway one, of a server only this test reaches
  const cmd = [PYTHON, join(dir, "server.py"), String(port), dataDir, username, password, String(pasv)];
  const controls = await startDirDaemon("pyftpdlib", cmd, port, dir);
  return {
    port,
    username,
    password,
    dataDir,
    ...controls,
  };
}
