/**
 * Agent binaries built by the server itself, so `npm install && npm start` can enroll agents
 * with nothing else run: at start, every configured target whose binary is missing from the
 * dist directory is built in the background, one at a time, this machine's target first (about
 * 3 s of `bun build --compile` on 2 cores; the cross-compiled targets first download their Bun
 * runtime from the npm registry, and fail with the reason shown when it cannot be reached).
 *
 * Each build runs `agent/build.ts` as a child process (the server's event loop stays free) into
 * a scratch directory; the binary then moves into the dist directory and its line is merged into
 * SHA256SUMS, both by rename, so /install.sh never sees a half-written file. The enrollment page
 * shows the state of every target from `status()`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AGENT_TARGETS, agentBinaryName } from "./targets.ts";

export type BuildState = "ready" | "queued" | "building" | "failed" | "missing";

export interface TargetStatus {
  target: string;
  state: BuildState;
  /** SHA-256 (hex) of a ready binary. */
  sha256?: string;
  /** Why a build failed (the build's last lines). */
  error?: string;
}

export interface AgentBuilds {
  status(): TargetStatus[];
  /** Settles when every queued build has finished (tests, the start log). */
  readonly done: Promise<void>;
  stop(): void;
}

const BUILD_SCRIPT = resolve(import.meta.dir, "../../agent/build.ts");
const BUILD_TIMEOUT_MS = 10 * 60_000;

/** file name -> SHA-256 (hex) from the dist directory's SHA256SUMS. */
export function readChecksums(distDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const p = join(distDir, "SHA256SUMS");
  if (!existsSync(p)) return out;
  for (const line of readFileSync(p, "utf8").split("\n")) {
    const m = /^([0-9a-f]{64})\s+\*?(\S+)$/.exec(line.trim());
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

function isBuilt(distDir: string, sums: Map<string, string>, target: string): boolean {
  const name = agentBinaryName(target);
  return sums.has(name) && existsSync(join(distDir, name));
}

/** What is in the dist directory now, without building anything. */
export function distStatus(distDir: string): TargetStatus[] {
  const sums = readChecksums(distDir);
  return AGENT_TARGETS.map((target) =>
    isBuilt(distDir, sums, target) ? { target, state: "ready", sha256: sums.get(agentBinaryName(target)) } : { target, state: "missing" },
  );
}

/** Adds (or replaces) one line of SHA256SUMS, written beside and renamed over the old file. */
function mergeChecksum(distDir: string, name: string, sha256: string): void {
  const sums = readChecksums(distDir);
  sums.set(name, sha256);
  const text = [...sums].sort(([a], [b]) => a.localeCompare(b)).map(([n, h]) => `${h}  ${n}\n`).join("");
  const tmp = join(distDir, `.SHA256SUMS.${process.pid}`);
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, join(distDir, "SHA256SUMS"));
}

export function startAgentBuilds(o: { distDir: string; targets: readonly string[]; enabled: boolean; log?: (line: string) => void }): AgentBuilds {
  const log = o.log ?? (() => {});
  const states = new Map<string, TargetStatus>();
  let child: ReturnType<typeof Bun.spawn> | undefined;
  let stopped = false;
  const sums0 = readChecksums(o.distDir);
  const queue = o.enabled && existsSync(BUILD_SCRIPT) ? o.targets.filter((t) => !isBuilt(o.distDir, sums0, t)) : [];
  if (o.enabled && !existsSync(BUILD_SCRIPT)) log(`agent binaries: cannot build here (${BUILD_SCRIPT} is missing); serving what ${o.distDir} holds`);
  for (const t of queue) states.set(t, { target: t, state: "queued" });

  async function buildOne(target: string): Promise<void> {
    const scratch = join(o.distDir, `.build-${target}`);
    rmSync(scratch, { recursive: true, force: true });
    mkdirSync(scratch, { recursive: true });
    states.set(target, { target, state: "building" });
    const started = performance.now();
    child = Bun.spawn([process.execPath, BUILD_SCRIPT, "--target", target, "--out", scratch], { stdout: "pipe", stderr: "pipe", timeout: BUILD_TIMEOUT_MS });
    const [out, err, code] = await Promise.all([new Response(child.stdout as ReadableStream).text(), new Response(child.stderr as ReadableStream).text(), child.exited]);
    child = undefined;
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    try {
      const name = agentBinaryName(target);
      const sha256 = readChecksums(scratch).get(name);
      if (code !== 0 || !sha256) {
        const error = stopped ? "stopped" : (err + out).trim().split("\n").slice(-3).join(" | ").slice(0, 500) || `exit code ${code}`;
        states.set(target, { target, state: "failed", error });
        log(`agent binaries: ${target} failed after ${seconds} s: ${error}`);
        return;
      }
      renameSync(join(scratch, name), join(o.distDir, name));
      mergeChecksum(o.distDir, name, sha256);
      states.delete(target);
      log(`agent binaries: ${target} built in ${seconds} s`);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  const done = (async () => {
    if (!queue.length) return;
    mkdirSync(o.distDir, { recursive: true });
    log(`agent binaries: building ${queue.join(", ")} into ${o.distDir} in the background (the enrollment page shows progress)`);
    for (const t of queue) {
      if (stopped) {
        states.set(t, { target: t, state: "failed", error: "stopped" });
        continue;
      }
      await buildOne(t).catch((e) => {
        states.set(t, { target: t, state: "failed", error: e instanceof Error ? e.message : String(e) });
      });
    }
  })();

  return {
    status() {
      return distStatus(o.distDir).map((s) => (s.state === "ready" ? s : (states.get(s.target) ?? s)));
    },
    done,
    stop() {
      stopped = true;
      child?.kill();
    },
  };
}
