/**
 * A real vsftpd (Debian's package) for the FTP/FTPS backup destination, the server the issue
 * names. vsftpd logs in local system users only, through PAM, so the test makes one: a dedicated
 * system account (`useradd --system`, no home made, shell /usr/sbin/nologin) with a random
 * password set by `chpasswd`, and a PAM service of its own (/etc/pam.d/servermind-test-vsftpd:
 * pam_listfile allowing that one user, then pam_unix — Debian's /etc/pam.d/vsftpd also asks
 * pam_shells, which a nologin account fails). The last `stop` removes the account and the PAM
 * file; the first start removes any a killed run left. Needs root.
 *
 * The account is chrooted to a root-owned folder (vsftpd refuses a chroot the user could write)
 * holding the user's writable `backup/`, the repositories' parent. Passive mode only, on a port
 * range below Linux's ephemeral range, answering 127.0.0.1. With `tls`: explicit TLS required for
 * the login and every data connection, TLS session reuse on the data connections
 * (require_ssl_reuse), a generated self-signed certificate; Debian's OpenSSL 3 allows TLS 1.2 and
 * 1.3 only (older versions need security level 0).
 */
import { spawnSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { freePort, startDirDaemon, type TestPasswordServer } from "./daemon.ts";

export const VSFTPD = "/usr/sbin/vsftpd";
const USER = "smftptest";
const PAM_SERVICE = "servermind-test-vsftpd";

export function vsftpdAvailable(): boolean {
  return existsSync(VSFTPD) && existsSync("/usr/sbin/useradd") && existsSync("/usr/sbin/chpasswd") && existsSync("/etc/pam.d") && process.getuid?.() === 0;
}

export interface TestVsftpd extends TestPasswordServer {
  port: number;
  /** the repositories' parent as the FTP client sees it (inside the chroot) */
  remoteDir: string;
  /** the server's certificate (PEM) when started with TLS */
  caPem?: string;
}

function run(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args[0]}… failed (${r.status}): ${r.stderr}${r.stdout}`);
}

function removeAccount(): void {
  if (spawnSync("/usr/bin/id", ["-u", USER]).status === 0) spawnSync("/usr/sbin/userdel", [USER]);
  rmSync(`/etc/pam.d/${PAM_SERVICE}`, { force: true });
}

/** The account is per machine: made at the first start, removed at the last stop (plain and TLS servers share it). */
let account: { password: string; dir: string; live: number } | undefined;

function takeAccount(): { password: string } {
  if (account) {
    account.live++;
    return account;
  }
  removeAccount();
  const dir = mkdtempSync(join(tmpdir(), "servermind-vsftpd-pam-"));
  chmodSync(dir, 0o755);
  const password = `ftp-${randomBytes(12).toString("hex")}`;
  // vsftpd changes to the home first (root's folder here, the PAM allow-list's), then each server
  // chroots the login to its own folder (local_root)
  run("/usr/sbin/useradd", ["--system", "--no-create-home", "--home-dir", dir, "--shell", "/usr/sbin/nologin", "--user-group", USER]);
  // SHA-512 crypt: pam_unix checks it in milliseconds, Debian's default yescrypt costs about 100 ms
  // per login, and the destination logs in once per pooled connection
  run("/usr/sbin/chpasswd", ["--crypt-method", "SHA512"], `${USER}:${password}\n`);
  writeFileSync(join(dir, "users"), `${USER}\n`);
  writeFileSync(
    `/etc/pam.d/${PAM_SERVICE}`,
    `# ServerMind's vsftpd test (test/support/vsftpd.ts): its one user, by password; removed when the test stops\n` +
      `auth\trequired\tpam_listfile.so item=user sense=allow file=${join(dir, "users")} onerr=fail\n` +
      "auth\trequired\tpam_unix.so\naccount\trequired\tpam_unix.so\nsession\trequired\tpam_permit.so\n",
  );
  account = { password, dir, live: 1 };
  return account;
}

function dropAccount(): void {
  if (!account || --account.live > 0) return;
  removeAccount();
  rmSync(account.dir, { recursive: true, force: true });
  account = undefined;
}

export async function startVsftpd(o: { tls: boolean }): Promise<TestVsftpd> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-vsftpd-"));
  chmodSync(dir, 0o755);
  const home = join(dir, "home"); // the chroot: root's, not writable by the user
  const dataDir = join(home, "backup");
  const empty = join(dir, "empty"); // secure_chroot_dir: vsftpd's unprivileged processes chroot here
  mkdirSync(home, { mode: 0o755 });
  mkdirSync(empty, { mode: 0o755 });
  mkdirSync(dataDir, { mode: 0o700 });
  const { password } = takeAccount();
  const uid = Number(spawnSync("/usr/bin/id", ["-u", USER], { encoding: "utf8" }).stdout.trim());
  const gid = Number(spawnSync("/usr/bin/id", ["-g", USER], { encoding: "utf8" }).stdout.trim());
  chownSync(dataDir, uid, gid);
  const port = await freePort();
  const pasv = randomInt(20_000, 32_000 - 64);
  const conf = [
    "listen=YES",
    "listen_ipv6=NO",
    "listen_address=127.0.0.1",
    `listen_port=${port}`,
    "background=NO",
    "anonymous_enable=NO",
    "local_enable=YES",
    "write_enable=YES",
    "local_umask=077",
    "chroot_local_user=YES",
    `local_root=${home}`,
    `pam_service_name=${PAM_SERVICE}`,
    "userlist_enable=NO",
    `secure_chroot_dir=${empty}`,
    "port_enable=NO",
    "pasv_enable=YES",
    `pasv_min_port=${pasv}`,
    `pasv_max_port=${pasv + 63}`,
    "pasv_address=127.0.0.1",
    "max_clients=200",
    "max_per_ip=200",
    "dirmessage_enable=NO",
    "xferlog_enable=YES",
    `vsftpd_log_file=${join(dir, "vsftpd.log")}`,
    "ftpd_banner=ServerMind test vsftpd",
  ];
  let caPem: string | undefined;
  if (o.tls) {
    const cert = createSelfSigned(["127.0.0.1"], "vsftpd test");
    caPem = cert.certPem;
    writeFileSync(join(dir, "cert.pem"), cert.certPem);
    writeFileSync(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
    conf.push(
      "ssl_enable=YES",
      `rsa_cert_file=${join(dir, "cert.pem")}`,
      `rsa_private_key_file=${join(dir, "key.pem")}`,
      "force_local_logins_ssl=YES",
      "force_local_data_ssl=YES",
      "ssl_sslv2=NO",
      "ssl_sslv3=NO",
      "ssl_tlsv1=YES",
      "ssl_ciphers=HIGH:!aNULL:!MD5:!RC4:!3DES",
      "require_ssl_reuse=YES",
    );
  }
  // vsftpd refuses a config file not owned by the user running it (root here)
  writeFileSync(join(dir, "vsftpd.conf"), `${conf.join("\n")}\n`, { mode: 0o600 });
  const cmd = [VSFTPD, join(dir, "vsftpd.conf")];
  const log = () => {
    try {
      return readFileSync(join(dir, "vsftpd.log"), "utf8").slice(-2000);
    } catch {
      return "";
    }
  };
  const controls = await startDirDaemon("vsftpd", cmd, port, dir, {
    cleanup: dropAccount,
    onStop: () => {
      if (process.env.SERVERMIND_KEEP_VSFTPD_LOG) console.log(log());
    },
  });
  return {
    port,
    caPem,
    username: USER,
    password,
    dataDir,
    remoteDir: "/backup",
    ...controls,
  };
}
