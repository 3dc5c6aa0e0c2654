/** Shared bench plumbing: environment facts, process CPU/RSS from /proc, percentiles, JSON output. */
import { cpus, platform, release } from "node:os";
import { readFileSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";

export function environment() {
  return { bun: Bun.version, cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, os: `${platform()} ${release()}` };
}

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far, children not included. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** CPU seconds of a process and all its descendants that are still alive. */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  const seen = new Set<number>();
  const walk = (p: number) => {
    if (seen.has(p)) return;
    seen.add(p);
    try {
      total += cpuSeconds(p);
      const kids = readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim();
      for (const k of kids ? kids.split(" ") : []) walk(Number(k));
    } catch {
      /* exited */
    }
  };
  walk(pid);
  return total;
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

export const round = (x: number, digits = 3) => Number(x.toFixed(digits));

export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] && !process.argv[i + 1]!.startsWith("--") ? process.argv[i + 1]! : def;
}

export const flag = (name: string) => process.argv.includes(`--${name}`);

export interface ServerProcess {
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /** SIGTERM, resolved when the process has exited. */
  stop(): Promise<void>;
}

/**
 * Starts the real server (`src/main.ts`) as a child process on 127.0.0.1 with `env` on top of
 * this process's environment, and resolves once it logs "listening on".
 */
export async function spawnServer(o: { port: number; env: Record<string, string>; cwd?: string; bunFlags?: string[] }): Promise<ServerProcess> {
  const child = spawn(process.execPath, [...(o.bunFlags ?? []), "src/main.ts"], {
    cwd: o.cwd,
    env: { ...process.env, SERVERMIND_PORT: String(o.port), SERVERMIND_HOST: "127.0.0.1", ...o.env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((ok, fail) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("listening on")) ok();
    });
    child.once("exit", (c) => fail(new Error(`server exited with ${c}: ${out}`)));
  });
  return {
    url: `https://127.0.0.1:${o.port}`,
    port: o.port,
    pid: child.pid!,
    child,
    stop: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once("exit", () => r());
        child.kill("SIGTERM");
      }),
  };
}
