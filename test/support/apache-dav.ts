/**
 * A real WebDAV server (Debian apache2 with mod_dav + mod_dav_fs) for the WebDAV backup
 * destination: HTTPS on a free 127.0.0.1 port with a generated certificate, Basic authentication
 * against an htpasswd file, the DAV folder in a temp dir. Run as root it serves as www-data, as
 * the package does.
 */
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { freePort, startDirDaemon, type TestPasswordServer } from "./daemon.ts";

export const APACHE = "/usr/sbin/apache2";
const MODULES = "/usr/lib/apache2/modules";

export function apacheDavAvailable(): boolean {
  return existsSync(APACHE) && ["mod_dav.so", "mod_dav_fs.so", "mod_ssl.so", "mod_mpm_event.so"].every((m) => existsSync(join(MODULES, m)));
}

export interface TestDav extends TestPasswordServer {
  url: string;
  caPem: string;
}

export async function startApacheDav(): Promise<TestDav> {
  const dir = mkdtempSync(join(tmpdir(), "servermind-dav-"));
  const dataDir = join(dir, "data");
  mkdirSync(dataDir);
  mkdirSync(join(dir, "run"));
  const cert = createSelfSigned(["127.0.0.1"], "webdav test");
  writeFileSync(join(dir, "cert.pem"), cert.certPem);
  writeFileSync(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
  const username = "backup";
  const password = `dav-${randomBytes(12).toString("hex")}`;
  writeFileSync(join(dir, "htpasswd"), `${username}:{SHA}${createHash("sha1").update(password).digest("base64")}\n`);
  const port = await freePort();
  const isRoot = process.getuid?.() === 0;
  const mods = ["mpm_event", "authz_core", "authn_core", "authn_file", "auth_basic", "authz_user", "dav", "dav_fs", "ssl", "socache_shmcb"];
  writeFileSync(
    join(dir, "httpd.conf"),
    [
      `ServerRoot ${dir}`,
      "ServerName 127.0.0.1",
      `Listen 127.0.0.1:${port}`,
      `PidFile ${dir}/run/httpd.pid`,
      `DefaultRuntimeDir ${dir}/run`,
      `ErrorLog ${dir}/error.log`,
      "LogLevel warn",
      ...mods.map((m) => `LoadModule ${m}_module ${MODULES}/mod_${m}.so`),
      isRoot ? "User www-data\nGroup www-data" : "",
      "StartServers 1",
      "ServerLimit 2",
      "ThreadsPerChild 25",
      "MaxRequestWorkers 50",
      `DavLockDB ${dir}/run/davlock`,
      "SSLEngine on",
      `SSLCertificateFile ${dir}/cert.pem`,
      `SSLCertificateKeyFile ${dir}/key.pem`,
      `SSLSessionCache shmcb:${dir}/run/ssl_scache(512000)`,
      `DocumentRoot ${dataDir}`,
      `<Directory ${dataDir}>`,
      "  Dav On",
      "  AuthType Basic",
      '  AuthName "backup"',
      `  AuthUserFile ${dir}/htpasswd`,
      "  Require valid-user",
      "</Directory>",
      "",
    ].join("\n"),
  );
  if (isRoot) {
    // the workers run as www-data: they need to reach the data and lock folders
    chmodSync(dir, 0o755);
    spawnSync("/bin/chown", ["-R", "www-data:www-data", dataDir, join(dir, "run")]);
  }
  const cmd = [APACHE, "-f", join(dir, "httpd.conf"), "-DFOREGROUND"];
  const controls = await startDirDaemon("apache2", cmd, port, dir, {
    beforeRestart: () => rmSync(join(dir, "run/httpd.pid"), { force: true }),
  });
  return {
    url: `https://127.0.0.1:${port}/`,
    caPem: cert.certPem,
    username,
    password,
    dataDir,
    ...controls,
  };
}
