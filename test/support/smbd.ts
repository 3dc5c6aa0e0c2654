/**
 * A real SMB server (Debian samba's smbd) for the SMB backup destination: a standalone server on
 * a free 127.0.0.1 port (no NetBIOS), every state folder and its own password database (tdbsam)
 * in a temp dir, one writable share for one user mapped to www-data. Needs root.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startDirDaemon, type TestPasswordServer } from "./daemon.ts";

export const SMBD = "/usr/sbin/smbd";

export function smbdAvailable(): boolean {
  return existsSync(SMBD) && existsSync("/usr/bin/smbpasswd") && existsSync("/usr/bin/smbclient") && process.getuid?.() === 0;
}

export interface TestSmbd extends TestPasswordServer {
  port: number;
  share: string;
}

export async function startSmbd(): Promise<TestSmbd> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-smbd-"));
  chmodSync(dir, 0o755);
  for (const d of ["run", "lock", "state", "cache", "private", "ncalrpc", "share"]) mkdirSync(join(dir, d));
  const dataDir = join(dir, "share");
  spawnSync("/bin/chown", ["www-data:www-data", dataDir]);
  const port = await freePort();
  const username = "www-data";
  const password = `smb-${randomBytes(12).toString("hex")}`;
  const conf = join(dir, "smb.conf");
  writeFileSync(
    conf,
    `[global]
  server role = standalone server
  workgroup = WORKGROUP
  netbios name = SMTEST
  smb ports = ${port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  pid directory = ${dir}/run
  lock directory = ${dir}/lock
  state directory = ${dir}/state
  cache directory = ${dir}/cache
  private dir = ${dir}/private
  ncalrpc dir = ${dir}/ncalrpc
  passdb backend = tdbsam:${dir}/private/passdb.tdb
  log file = ${dir}/log.smbd
  log level = 1
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
  server min protocol = SMB3
  server smb encrypt = desired
[backup]
  path = ${dataDir}
  read only = no
  valid users = ${username}
  create mask = 0600
  directory mask = 0700
`,
  );
  const add = spawnSync("/usr/bin/smbpasswd", ["-c", conf, "-s", "-a", username], { input: `${password}\n${password}\n`, encoding: "utf8" });
  if (add.status !== 0) throw new Error(`smbpasswd -a failed: ${add.stderr}${add.stdout}`);
  const cmd = [SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", conf];
  const controls = await startDirDaemon("smbd", cmd, port, dir, { ms: 30_000 });
  return {
    port,
    share: "backup",
    username,
    password,
    dataDir,
    ...controls,
  };
}
