/**
 * DEB (dpkg-deb) and RPM (rpmbuild) packages of servermind-agent and servermind-server from
 * one staged file tree each. Binaries are never stripped (a Bun executable carries its
 * bundle after the ELF image; strip would cut it off).
 */
import { chmodSync, copyFileSync, cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join, resolve } from "node:path";
import { debScripts, rpmScripts, type Pkg } from "../../packaging/maintscripts.ts";
import { run } from "./run.ts";

const ROOT = resolve(import.meta.dir, "..", "..");
const PACKAGING = join(ROOT, "packaging");

export const ARCH = {
  "linux-x64": { deb: "amd64", rpm: "x86_64" },
  "linux-arm64": { deb: "arm64", rpm: "aarch64" },
} as const;
export type LinuxTarget = keyof typeof ARCH;

const SUMMARY: Record<Pkg, string> = {
  "servermind-agent": "ServerMind agent: metrics, logs and security events of this host",
  "servermind-server": "ServerMind server: fleet monitoring, security and compliance console",
};
const DESCRIPTION: Record<Pkg, string> = {
  "servermind-agent": "The ServerMind agent collects metrics, logs and security observations and\nsends them to a ServerMind server over TLS. Enroll it with\n`servermind-agent enroll`, then enable servermind-agent.service.",
  "servermind-server": "The ServerMind server receives agent data, stores it in PostgreSQL and\nserves the web console. It needs an external PostgreSQL: set DATABASE_URL\nin /etc/servermind/server.env, then enable servermind-server.service.",
};
const CONFIG: Record<Pkg, string> = { "servermind-agent": "agent.env", "servermind-server": "server.env" };

export interface StageInput {
  pkg: Pkg;
  binary: string;
  /** /usr/share/servermind content (server only). */
  shareDir?: string;
  version: string;
}

function copyright(): string {
  return "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: servermind\n\nFiles: *\nCopyright: ServerMind authors\nLicense: proprietary\n See the license shipped with the ServerMind release.\n";
}

/** Where the server package puts its kernel settings (packaging/servermind-server.sysctl.conf). */
export const SERVER_SYSCTL = "usr/lib/sysctl.d/60-servermind-server.conf";

/** The installed file tree, without package metadata. `unitDir` differs: /lib (Debian) or /usr/lib (RPM). */
function stageTree(dir: string, s: StageInput, unitDir: string): void {
  rmSync(dir, { recursive: true, force: true });
  const bin = join(dir, "usr/bin", s.pkg);
  mkdirSync(dirname(bin), { recursive: true });
  copyFileSync(s.binary, bin);
  chmodSync(bin, 0o755);
  mkdirSync(join(dir, unitDir), { recursive: true });
  copyFileSync(join(PACKAGING, `${s.pkg}.service`), join(dir, unitDir, `${s.pkg}.service`));
  if (s.pkg === "servermind-server") {
    // UDP receive buffers for HTTP/3 (the file says why); /usr/lib/sysctl.d on Debian and RPM alike
    mkdirSync(join(dir, "usr/lib/sysctl.d"), { recursive: true });
    copyFileSync(join(PACKAGING, "servermind-server.sysctl.conf"), join(dir, SERVER_SYSCTL));
  }
  mkdirSync(join(dir, "etc/servermind"), { recursive: true });
  copyFileSync(join(PACKAGING, CONFIG[s.pkg]), join(dir, "etc/servermind", CONFIG[s.pkg]));
  chmodSync(join(dir, "etc/servermind", CONFIG[s.pkg]), 0o640);
  if (s.shareDir) {
    cpSync(s.shareDir, join(dir, "usr/share/servermind"), { recursive: true });
    mkdirSync(join(dir, "usr/share/servermind/agent"), { recursive: true });
  }
  const doc = join(dir, "usr/share/doc", s.pkg);
  mkdirSync(doc, { recursive: true });
  writeFileSync(join(doc, "copyright"), copyright());
  fixModes(dir);
}

/** Directories 0755, files 0644 unless executable (umask-independent packages). */
function fixModes(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      chmodSync(p, 0o755);
      fixModes(p);
    } else if (!p.includes("/usr/bin/") && !p.includes("/etc/servermind/")) chmodSync(p, 0o644);
  }
}

export function buildDeb(work: string, out: string, s: StageInput, target: LinuxTarget): string {
  const arch = ARCH[target].deb;
  const root = join(work, `deb-${s.pkg}-${arch}`);
  stageTree(root, s, "lib/systemd/system");
  const date = new Date().toUTCString().replace("GMT", "+0000");
  writeFileSync(join(root, "usr/share/doc", s.pkg, "changelog.Debian.gz"), gzipSync(`${s.pkg} (${s.version}-1) stable; urgency=medium\n\n  * Release ${s.version}.\n\n -- ServerMind release <release@servermind.invalid>  ${date}\n`, { level: 9 }));
  chmodSync(join(root, "usr/share/doc", s.pkg, "changelog.Debian.gz"), 0o644);
  const deb = join(root, "DEBIAN");
  mkdirSync(deb, { mode: 0o755 });
  const kb = Number(run(["du", "-sk", "--exclude=DEBIAN", root]).stdout.split(/\s/)[0]);
  writeFileSync(join(deb, "control"), [
    `Package: ${s.pkg}`, `Version: ${s.version}-1`, `Architecture: ${arch}`, "Maintainer: ServerMind release <release@servermind.invalid>",
    `Installed-Size: ${kb}`, "Depends: libc6, passwd", "Section: admin", "Priority: optional",
    "Homepage: https://servermind.invalid/", `Description: ${SUMMARY[s.pkg]}`, ...DESCRIPTION[s.pkg].split("\n").map((l) => ` ${l}`), "",
  ].join("\n"));
  writeFileSync(join(deb, "conffiles"), `/etc/servermind/${CONFIG[s.pkg]}\n`);
  for (const [name, text] of Object.entries(debScripts(s.pkg))) {
    writeFileSync(join(deb, name), text);
    chmodSync(join(deb, name), 0o755);
  }
  chmodSync(join(deb, "control"), 0o644);
  chmodSync(join(deb, "conffiles"), 0o644);
  const file = join(out, `${s.pkg}_${s.version}-1_${arch}.deb`);
  // gzip: fast on a 100 MB binary (xz took minutes on 2 busy cores) and readable by every dpkg
  run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", root, file]);
  return file;
}

export function buildRpm(work: string, out: string, s: StageInput, target: LinuxTarget): string {
  const arch = ARCH[target].rpm;
  const top = join(work, `rpm-${s.pkg}-${arch}`);
  const root = join(top, "stage");
  stageTree(root, s, "usr/lib/systemd/system");
  const spec = join(top, `${s.pkg}.spec`);
  writeFileSync(spec, [
    `Name: ${s.pkg}`, `Version: ${s.version}`, "Release: 1", `Summary: ${SUMMARY[s.pkg]}`, "License: Proprietary", "URL: https://servermind.invalid/",
    "AutoReqProv: no", "Requires(pre): shadow-utils", "%global debug_package %{nil}", "%global __os_install_post %{nil}", "%global _build_id_links none", "",
    "%description", DESCRIPTION[s.pkg], "", "%install", `cp -a ${root}/. %{buildroot}/`, "",
    rpmScripts(s.pkg), "", "%files", `%attr(0755,root,root) /usr/bin/${s.pkg}`, `/usr/lib/systemd/system/${s.pkg}.service`, "%dir /etc/servermind",
    `%config(noreplace) %attr(0640,root,root) /etc/servermind/${CONFIG[s.pkg]}`, `%doc /usr/share/doc/${s.pkg}`,
    ...(s.shareDir ? ["/usr/share/servermind"] : []), ...(s.pkg === "servermind-server" ? [`/${SERVER_SYSCTL}`] : []), "",
  ].join("\n"));
  run(["rpmbuild", "-bb", "--target", arch, "--define", `_topdir ${top}`, "--define", "_binary_payload w3.zstdio", spec]);
  const built = join(top, "RPMS", arch, `${s.pkg}-${s.version}-1.${arch}.rpm`);
  const file = join(out, `${s.pkg}-${s.version}-1.${arch}.rpm`);
  copyFileSync(built, file);
  return file;
}
