/**
 * A real OpenSSH server (Debian openssh-server) for the SFTP backup destination: sshd on a free
 * 127.0.0.1 port with a host key and a user key generated into a temp dir, public-key login for
 * the user running the tests, the internal SFTP server. The test pins the host key.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort, startDirDaemon, type TestDestinationServer } from "./daemon.ts";

export const SSHD = "/usr/sbin/sshd";

export function sshdAvailable(): boolean {
  return existsSync(SSHD) && existsSync("/usr/bin/ssh-keygen");
}

export interface TestSshd extends TestDestinationServer {
  port: number;
  username: string;
  privateKey: string;
  /** the host key's public line, to pin */
  hostKey: string;
  /** a second key pair's public line: a host key this server does not have */
  otherHostKey: string;
}

function keygen(path: string): string {
  const r = spawnSync("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "servermind-test", "-f", path], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  return readFileSync(`${path}.pub`, "utf8").trim();
}

export async function startSshd(): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-sshd-"));
  const dataDir = join(dir, "data");
  mkdirSync(dataDir);
  const hostKey = keygen(join(dir, "host_ed25519"));
  const otherHostKey = keygen(join(dir, "other_ed25519"));
  writeFileSync(join(dir, "authorized_keys"), `${keygen(join(dir, "user_ed25519"))}\n`, { mode: 0o600 });
  // os.userInfo() reads $USER, which a CI environment may lack
  const username = spawnSync("/usr/bin/id", ["-un"], { encoding: "utf8" }).stdout.trim() || userInfo().username;
  const port = await freePort();
  const isRoot = process.getuid?.() === 0;
  // privilege separation folder, which the package makes only when the service starts
  if (isRoot && !existsSync("/run/sshd")) mkdirSync("/run/sshd", { mode: 0o755 });
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host_ed25519")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      isRoot ? "PermitRootLogin prohibit-password" : "",
      `AllowUsers ${username}`,
      "MaxStartups 50",
      "MaxSessions 50",
      "Subsystem sftp internal-sftp",
      "",
    ].join("\n"),
  );
  const cmd = [SSHD, "-D", "-e", "-f", join(dir, "sshd_config")];
  const controls = await startDirDaemon("sshd", cmd, port, dir);
  return {
    port,
    username,
    privateKey: readFileSync(join(dir, "user_ed25519"), "utf8"),
    hostKey,
    otherHostKey,
    dataDir,
    ...controls,
  };
}
