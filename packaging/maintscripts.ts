/**
 * Maintainer scripts of the two packages, one text per package format. Users are created at
 * install; an upgrade keeps config and data; remove keeps /var/lib/servermind; purge (DEB) or
 * erase (RPM, which has no purge: it keeps the data too, `rm -rf` is the user's call) — see
 * docs/releases.md.
 */
export type Pkg = "servermind-agent" | "servermind-server";

export const USERS: Record<Pkg, string[]> = {
  "servermind-server": ["servermind"],
  "servermind-agent": ["servermind-platform", "servermind-collector", "servermind-monitor"],
};

const DATA: Record<Pkg, string> = { "servermind-server": "/var/lib/servermind/server", "servermind-agent": "/var/lib/servermind/agent" };

function createUsers(pkg: Pkg): string {
  return USERS[pkg]
    .map((u) => `getent passwd ${u} >/dev/null || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${u}`)
    .join("\n");
}

function dataDir(pkg: Pkg): string {
  const owner = pkg === "servermind-server" ? "servermind:servermind" : "root:root";
  return `install -d -m 0755 /var/lib/servermind\ninstall -d -m 0750 -o ${owner.split(":")[0]} -g ${owner.split(":")[1]} ${DATA[pkg]}`;
}

const unit = (pkg: Pkg) => `${pkg}.service`;

/**
 * The server's kernel settings (UDP receive buffers for HTTP/3) take effect at install on a
 * systemd host, as they would at the next boot; a container without systemd (or a read-only
 * /proc/sys) is left as it is.
 */
const applySysctl = (pkg: Pkg) => (pkg === "servermind-server" ? "sysctl -q -p /usr/lib/sysctl.d/60-servermind-server.conf || true; " : "");

export function debScripts(pkg: Pkg): Record<"preinst" | "postinst" | "prerm" | "postrm", string> {
  return {
    preinst: `#!/bin/sh\nset -e\n${createUsers(pkg)}\nexit 0\n`,
    postinst: `#!/bin/sh\nset -e\nif [ "$1" = configure ]; then\n${dataDir(pkg)}\n${pkg === "servermind-server" ? "chgrp servermind /etc/servermind/server.env\n" : ""}if [ -d /run/systemd/system ]; then ${applySysctl(pkg)}systemctl daemon-reload || true; systemctl try-restart ${unit(pkg)} || true; fi\nfi\nexit 0\n`,
    prerm: `#!/bin/sh\nset -e\nif [ "$1" = remove ] && [ -d /run/systemd/system ]; then systemctl stop ${unit(pkg)} || true; systemctl disable ${unit(pkg)} || true; fi\nexit 0\n`,
    postrm: `#!/bin/sh\nset -e\nif [ "$1" = purge ]; then\n  rm -rf ${DATA[pkg]}\n  rmdir /var/lib/servermind 2>/dev/null || true\n${USERS[pkg].map((u) => `  getent passwd ${u} >/dev/null && userdel ${u} || true`).join("\n")}\nfi\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\nexit 0\n`,
  };
}

export function rpmScripts(pkg: Pkg): string {
  return `%pre\n${createUsers(pkg)}\nexit 0\n\n%post\n${dataDir(pkg)}\n${pkg === "servermind-server" ? "chgrp servermind /etc/servermind/server.env\n" : ""}if [ -d /run/systemd/system ]; then ${applySysctl(pkg)}systemctl daemon-reload || true; [ $1 -gt 1 ] && systemctl try-restart ${unit(pkg)} || true; fi\nexit 0\n\n%preun\nif [ $1 -eq 0 ] && [ -d /run/systemd/system ]; then systemctl stop ${unit(pkg)} || true; systemctl disable ${unit(pkg)} || true; fi\nexit 0\n`;
}
