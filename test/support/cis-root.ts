/**
 * Prepared root directories for CIS checks: a small Debian 12 tree whose settings are either all
 * compliant ("good") or all broken ("bad"), for the controls our tests exercise.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

function put(root: string, path: string, content: string, mode = 0o644, uid = 0, gid = 0) {
  const host = join(root, path);
  mkdirSync(dirname(host), { recursive: true });
  writeFileSync(host, content);
  chmodSync(host, mode);
  chownSync(host, uid, gid);
}

export function makeCisRoot(kind: "good" | "bad"): string {
  const root = mkdtempSync(join(tmpdir(), `servermind-cis-${kind}-`));
  const good = kind === "good";
  put(root, "/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n');
  put(root, "/etc/passwd", `root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n${good ? "" : "toor:x:0:0::/root:/bin/sh\n"}`, good ? 0o644 : 0o666);
  put(root, "/etc/group", "root:x:0:\nshadow:x:42:\nalice:x:1000:\n", 0o644);
  put(root, "/etc/shadow", `root:$y$j9T$abc:19000:0:99999:7:::\nalice:${good ? "!" : ""}:19000:0:99999:7:::\n`, good ? 0o640 : 0o644, 0, 42);
  put(root, "/etc/gshadow", "root:*::\nshadow:*::\n", good ? 0o640 : 0o604, 0, good ? 42 : 1000);
  put(root, "/etc/crontab", "# m h dom mon dow user command\n", good ? 0o600 : 0o644);
  mkdirSync(join(root, "etc/cron.d"), { recursive: true });
  chmodSync(join(root, "etc/cron.d"), good ? 0o700 : 0o755);
  // sshd: Debian ships an Include of sshd_config.d at the top; a drop-in sets one value.
  put(
    root,
    "/etc/ssh/sshd_config",
    [
      "Include /etc/ssh/sshd_config.d/*.conf",
      "",
      good ? "PermitRootLogin no" : "#PermitRootLogin prohibit-password",
      `MaxAuthTries ${good ? 4 : 6}`,
      "X11Forwarding yes",
      good ? "UsePAM yes" : "UsePAM no",
      "",
      "Match User backup",
      "  PermitRootLogin yes",
      "",
    ].join("\n"),
    0o600,
  );
  put(root, "/etc/ssh/sshd_config.d/10-site.conf", good ? "X11Forwarding no\n" : "# site settings\n", 0o644);
  // sysctl: a vendor default plus /etc/sysctl.conf through the Debian symlink
  put(root, "/usr/lib/sysctl.d/50-default.conf", "net.ipv4.conf.all.rp_filter = 2\nkernel.randomize_va_space = 2\n");
  put(root, "/etc/sysctl.conf", good ? "net.ipv4.ip_forward = 0\nnet.ipv4.conf.all.rp_filter = 1\nnet.ipv4.tcp_syncookies=1\n" : "net.ipv4.ip_forward = 1\n");
  mkdirSync(join(root, "etc/sysctl.d"), { recursive: true });
  symlinkSync("../sysctl.conf", join(root, "etc/sysctl.d/99-sysctl.conf"));
  put(root, "/etc/login.defs", `MAIL_DIR /var/mail\nPASS_MAX_DAYS\t${good ? 365 : 99999}\nPASS_MIN_DAYS\t${good ? 1 : 0}\nPASS_WARN_AGE\t7\nUMASK\t\t${good ? "027" : "022"}\nENCRYPT_METHOD SHA512\n`);
  mkdirSync(join(root, "etc/modprobe.d"), { recursive: true });
  if (good) put(root, "/etc/modprobe.d/cis.conf", "install cramfs /bin/false\nblacklist cramfs\ninstall udf /bin/false\n");
  put(root, "/etc/security/limits.conf", good ? "* hard core 0\n" : "# none\n");
  put(root, "/var/lib/dpkg/status", ["Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2", good ? "Package: auditd\nStatus: install ok installed\nVersion: 1:3.0.9-1" : "Package: telnetd\nStatus: install ok installed\nVersion: 0.17"].join("\n\n") + "\n");
  return root;
}
