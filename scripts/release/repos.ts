/**
 * The signed package repositories: APT (apt-ftparchive; Release signed as InRelease and
 * Release.gpg) and YUM/DNF (createrepo_c; repodata/repomd.xml.asc), and RPM signatures (rpmsign).
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Signer } from "./gpg.ts";
import { run } from "./run.ts";

export const APT_SUITE = "stable";

export function buildAptRepo(dir: string, debs: Array<{ file: string; arch: string }>, signer: Signer, version: string): void {
  mkdirSync(join(dir, "pool/main"), { recursive: true });
  for (const d of debs) copyFileSync(d.file, join(dir, "pool/main", basename(d.file)));
  const archs = [...new Set(debs.map((d) => d.arch))].sort();
  for (const arch of archs) {
    const sub = join(dir, "dists", APT_SUITE, "main", `binary-${arch}`);
    mkdirSync(sub, { recursive: true });
    const packages = run(["apt-ftparchive", "--arch", arch, "packages", "pool/main"], { cwd: dir }).stdout;
    writeFileSync(join(sub, "Packages"), packages);
    run(["gzip", "-9nkf", join(sub, "Packages")]);
  }
  const suite = join(dir, "dists", APT_SUITE);
  const release = run([
    "apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=ServerMind", "-o", "APT::FTPArchive::Release::Label=ServerMind",
    "-o", `APT::FTPArchive::Release::Suite=${APT_SUITE}`, "-o", `APT::FTPArchive::Release::Codename=${APT_SUITE}`,
    "-o", `APT::FTPArchive::Release::Architectures=${archs.join(" ")}`, "-o", "APT::FTPArchive::Release::Components=main",
    "-o", `APT::FTPArchive::Release::Description=ServerMind ${version}`, "release", ".",
  ], { cwd: suite }).stdout;
  writeFileSync(join(suite, "Release"), release);
  signer.clearsign(join(suite, "Release"), join(suite, "InRelease"));
  signer.detachBinary(join(suite, "Release"), join(suite, "Release.gpg"));
}

export function signRpms(files: string[], signer: Signer): void {
  run(["rpmsign", "--define", `__gpg ${Bun.which("gpg") ?? "/usr/bin/gpg"}`, "--define", `_gpg_name ${signer.fingerprint}`, "--define", `_gpg_path ${signer.home}`, "--addsign", ...files], { env: signer.env });
}

export function buildYumRepo(dir: string, rpms: string[], signer: Signer): void {
  mkdirSync(dir, { recursive: true });
  for (const f of rpms) copyFileSync(f, join(dir, basename(f)));
  run(["createrepo_c", "--quiet", dir]);
  signer.detach(join(dir, "repodata/repomd.xml"));
}
