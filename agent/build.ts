/**
 * npm run build:agent — one self-contained executable per target in dist/agent/, SHA256SUMS
 * beside them, and the sizes as JSON on stdout.
 *
 *   bun agent/build.ts [--target linux-x64,...] [--no-bytecode] [--out DIR]
 *
 * Cross-compiling downloads the Bun runtime of each target from the npm registry once
 * (cached by Bun). The agent has no native addons (lz4 is TypeScript, msgpackr runs without its
 * optional native extension), so every target is built from the same sources.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const TARGETS = ["linux-x64", "linux-x64-musl", "linux-arm64", "darwin-arm64", "darwin-x64", "windows-x64"] as const;
export type Target = (typeof TARGETS)[number];

export function binaryName(t: string): string {
  return `servermind-agent-${t}${t.startsWith("windows") ? ".exe" : ""}`;
}

export interface BuildResult {
  target: string;
  file?: string;
  bytes?: number;
  sha256?: string;
  seconds: number;
  error?: string;
}

export async function buildAgent(opts: { outDir: string; targets: readonly string[]; bytecode: boolean; log?: (m: string) => void }): Promise<BuildResult[]> {
  const entry = resolve(import.meta.dir, "main.ts");
  const worker = resolve(import.meta.dir, "backup/seal-worker.ts");
  mkdirSync(opts.outDir, { recursive: true });
  const results: BuildResult[] = [];
  for (const t of opts.targets) {
    const file = join(opts.outDir, binaryName(t));
    rmSync(file, { force: true });
    // --smol: JSC's small heap; the agent's four processes are idle most of the time
    // The backup engine's worker (agent/backup/pool.ts) is embedded as a second entrypoint.
    const args = [process.execPath, "build", entry, worker, "--compile", "--minify", "--compile-exec-argv=--smol", `--target=bun-${t}`, "--outfile", file];
    if (opts.bytecode) args.push("--bytecode");
    const started = performance.now();
    const p = Bun.spawnSync(args, { stdout: "pipe", stderr: "pipe", timeout: 600_000 });
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    if (p.exitCode !== 0) {
      const error = (p.stderr.toString() + p.stdout.toString()).trim().split("\n").slice(-5).join(" | ");
      opts.log?.(`${t}: FAILED: ${error}`);
      results.push({ target: t, seconds, error });
      continue;
    }
    const bytes = statSync(file).size;
    const sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
    opts.log?.(`${t}: ${(bytes / 1048576).toFixed(1)} MiB in ${seconds} s`);
    results.push({ target: t, file: binaryName(t), bytes, sha256, seconds });
  }
  const sums = results.filter((r) => r.sha256).map((r) => `${r.sha256}  ${r.file}\n`).join("");
  writeFileSync(join(opts.outDir, "SHA256SUMS"), sums);
  return results;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const flag = (n: string) => {
    const i = args.indexOf(n);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const targets = (flag("--target")?.split(",") ?? [...TARGETS]).map((s) => s.trim());
  for (const t of targets) if (!(TARGETS as readonly string[]).includes(t)) throw new Error(`unknown target ${t} (known: ${TARGETS.join(", ")})`);
  const outDir = resolve(flag("--out") ?? "dist/agent");
  const results = await buildAgent({ outDir, targets, bytecode: !args.includes("--no-bytecode"), log: (m) => console.error(m) });
  console.log(JSON.stringify({ outDir, bun: Bun.version, bytecode: !args.includes("--no-bytecode"), binaries: results.map(({ target, file, bytes, sha256, seconds, error }) => ({ target, file, bytes, mib: bytes ? Math.round((bytes / 1048576) * 10) / 10 : undefined, sha256, seconds, error })) }));
  process.exit(results.some((r) => r.error) ? 1 : 0);
}
