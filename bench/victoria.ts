/**
 * VictoriaMetrics side by side (bench:ingest, bench:store): starts Debian's single-node
 * `victoria-metrics` on 127.0.0.1 with a temp data directory, feeds it the same samples the bench
 * gave ServerMind through its JSON-lines import (/api/v1/import, one line per series and frame,
 * several senders at once), and measures samples/s, its CPU seconds (/proc/<pid>/stat) and its
 * bytes on disk after a flush and a forced merge.
 *
 * Install: `apt-get install victoria-metrics` (or VM_BINARY=/path/to/victoria-metrics).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/store/postgres/embedded.ts";
import { cpuSeconds, onInterrupt } from "./support.ts";

export const VM_BINARY = process.env.VM_BINARY ?? "/usr/bin/victoria-metrics";

/** Fails loudly, before the bench spends minutes on ServerMind, when VictoriaMetrics is missing. */
export function requireVictoria(): void {
  if (existsSync(VM_BINARY)) return;
  const bar = "!".repeat(78);
  console.error(`\n${bar}\n!! VictoriaMetrics is not installed: ${VM_BINARY} is missing.\n!! The side-by-side numbers (vm_*) need it:  apt-get install victoria-metrics\n!! (or set VM_BINARY to a victoria-metrics binary; --no-vm runs without it)\n${bar}\n`);
  process.exit(2);
}

/** One series of one host in one frame: what becomes one JSON line. */
export interface VmBody {
  host: number;
  names: string[];
  ts: ArrayLike<number>;
  /** series-major, names.length x ts.length */
  values: ArrayLike<number>;
}

/** A metric name VictoriaMetrics accepts as __name__: the agent's labels-in-name flattened. */
export const vmName = (n: string) => n.replace(/[^a-zA-Z0-9_:]/g, "_");

/** JSON lines for /api/v1/import: one line per (host, series) with all of the frame's timestamps. */
export function vmImportLines(bodies: VmBody[]): string {
  const parts: string[] = [];
  for (const b of bodies) {
    const tsJson = `],"timestamps":[${Array.from(b.ts, (t) => Math.round(t)).join(",")}]}\n`;
    const n = b.ts.length;
    for (let j = 0; j < b.names.length; j++) {
      const vs: string[] = new Array(n);
      for (let k = 0; k < n; k++) vs[k] = String(b.values[j * n + k]);
      parts.push(`{"metric":{"__name__":"${vmName(b.names[j]!)}","host":"h${b.host}"},"values":[${vs.join(",")}${tsJson}`);
    }
  }
  return parts.join("");
}

export interface Victoria {
  url: string;
  pid: number;
  dataDir: string;
  /** POSTs the request bodies with `senders` at a time; resolves with the wall time. */
  ingest(requests: string[], senders: number): Promise<{ seconds: number; cpuSeconds: number }>;
  /** Makes everything received searchable and on disk. */
  flush(): Promise<void>;
  /** Flushes, forces a merge of every partition, and waits until the data directory stops shrinking. */
  compact(): Promise<void>;
  /** Bytes under the data directory's `data` and `indexdb` (caches not counted). */
  diskBytes(): number;
  /** Samples VictoriaMetrics says it holds (its own /metrics: vm_rows, small + big parts). */
  rows(): Promise<number>;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

function dirBytes(p: string): number {
  let total = 0;
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const e of readdirSync(p)) total += dirBytes(join(p, e));
  return total;
}

export async function startVictoria(log: (s: string) => void = () => {}): Promise<Victoria> {
  requireVictoria();
  const dataDir = mkdtempSync(join(tmpdir(), "servermind-vm-bench-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(VM_BINARY, [
    `-storageDataPath=${dataDir}`,
    `-httpListenAddr=127.0.0.1:${port}`,
    "-retentionPeriod=100y",
    "-loggerLevel=ERROR",
    "-search.disableCache",
  ], { stdio: ["ignore", "ignore", "inherit"] });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((r) => {
        child.once("exit", () => r());
        child.kill("SIGTERM");
      });
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const forget = onInterrupt(stop);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`victoria-metrics exited with ${child.exitCode} before it was ready`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error("victoria-metrics did not answer /health within 30 s");
    }
    await Bun.sleep(100);
  }
  log(`victoria-metrics pid ${child.pid} at ${url}, data in ${dataDir}`);
  const get = async (path: string) => {
    const r = await fetch(`${url}${path}`);
    if (!r.ok) throw new Error(`victoria-metrics ${path}: ${r.status} ${await r.text()}`);
    return r.text();
  };
  const vm: Victoria = {
    url,
    pid: child.pid!,
    dataDir,
    async ingest(requests, senders) {
      const cpu0 = cpuSeconds(child.pid!);
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: senders }, async () => {
          for (;;) {
            const i = next++;
            if (i >= requests.length) break;
            const r = await fetch(`${url}/api/v1/import`, { method: "POST", body: requests[i]! });
            if (r.status !== 204 && r.status !== 200) throw new Error(`victoria-metrics import: ${r.status} ${await r.text()}`);
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, cpuSeconds: cpuSeconds(child.pid!) - cpu0 };
    },
    async flush() {
      await get("/internal/force_flush");
    },
    async compact() {
      await get("/internal/force_flush");
      await get("/internal/force_merge");
      // the merge runs in the background: wait until the size has stayed put for 3 s (at most 5 min)
      let last = -1;
      let still = 0;
      const end = Date.now() + 300_000;
      while (still < 3 && Date.now() < end) {
        await Bun.sleep(1000);
        const b = vm.diskBytes();
        still = b === last ? still + 1 : 0;
        last = b;
      }
    },
    diskBytes() {
      return dirBytes(join(dataDir, "data")) + dirBytes(join(dataDir, "indexdb"));
    },
    async rows() {
      const text = await get("/metrics");
      let n = 0;
      for (const m of text.matchAll(/^vm_rows\{type="storage\/(?:small|big)"\} (\d+)/gm)) n += Number(m[1]);
      return n;
    },
    cpuSeconds: () => cpuSeconds(child.pid!),
    async stop() {
      forget();
      await stop();
    },
  };
  return vm;
}
