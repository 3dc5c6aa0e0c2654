/** Shared bench plumbing: environment facts, process CPU/RSS from /proc, percentiles, JSON output. */
import { cpus, platform, release } from "node:os";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { Sql } from "postgres";
import { startEmbeddedPg, type EmbeddedPg } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { migrate } from "../src/store/postgres/migrate.ts";
import { ensurePartitions, timeSeriesTables } from "../src/store/postgres/partitions.ts";
import { rollupStep } from "../src/store/postgres/rollups.ts";

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

/**
 * Waits (at most `maxMs`) until `cpu()` (CPU seconds of the processes watched) has grown by under
 * 5 % of a core for a second, and `quiet()` (when given) agrees at each look: one side's
 * background work finished before the other side is measured.
 */
export async function waitIdle(cpu: () => number, o: { maxMs?: number; quiet?: () => Promise<boolean> } = {}): Promise<void> {
  const end = Date.now() + (o.maxMs ?? 60_000);
  let last = cpu();
  for (let still = 0; still < 4 && Date.now() < end; ) {
    await Bun.sleep(250);
    const now = cpu();
    still = now - last < 0.0125 && (!o.quiet || (await o.quiet())) ? still + 1 : 0;
    last = now;
  }
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

/**
 * The nearest-rank percentile of ascending `sorted`: the smallest value with at least p % of the
 * values at or below it (p95 of 20 values is the 19th; before, the index was one too high and it
 * was the 20th, the maximum).
 */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(xs: number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

export const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** The times of `runs` calls of `fn` in ms, sorted, after `warm` calls that are not measured. */
export async function latencies(runs: number, fn: () => Promise<unknown>, warm = 1): Promise<number[]> {
  for (let i = 0; i < warm; i++) await fn();
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    xs.push(performance.now() - t);
  }
  return xs.sort((a, b) => a - b);
}

/** Median and p95 of `runs` calls of `fn` after one warm call. */
export async function timeRuns(runs: number, fn: () => Promise<unknown>): Promise<{ median_ms: number; p95_ms: number }> {
  const xs = await latencies(runs, fn);
  return { median_ms: round(percentile(xs, 50), 2), p95_ms: round(percentile(xs, 95), 2) };
}

/** Binary COPY of each chunk into `columns` ("table (col, ...)"), a transaction a chunk, on `writers` connections at once. */
export async function copyChunks(sql: Sql, columns: string, chunks: Uint8Array[], writers = 2): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: writers }, async () => {
    for (;;) {
      const i = next++;
      if (i >= chunks.length) break;
      await sql.begin(async (tx) => {
        const st = await tx.unsafe(`copy ${columns} from stdin (format binary)`).writable();
        await new Promise<void>((ok, fail) => { st.once("finish", ok); st.once("error", fail); st.end(Buffer.from(chunks[i]!)); });
      });
    }
  }));
}

export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] && !process.argv[i + 1]!.startsWith("--") ? process.argv[i + 1]! : def;
}

export const flag = (name: string) => process.argv.includes(`--${name}`);

/** `--name N` as a whole number from `least` to `most` (`def` when absent); anything else is refused with a message. */
export function countArg(name: string, def: number, least: number, most: number): number {
  const n = Number(arg(name, String(def)));
  if (!Number.isInteger(n) || n < least || n > most) throw new Error(`--${name} must be a whole number from ${least} to ${most}`);
  return n;
}

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
    env: { ...process.env, SERVERMIND_PORT: String(o.port), SERVERMIND_HOST: "127.0.0.1", SERVERMIND_AGENT_BUILD: "false", ...o.env },
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
  const stop = () =>
    new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) return r();
      child.once("exit", () => r());
      child.kill("SIGTERM");
    });
  const forget = onInterrupt(stop);
  // a bench that fails (an exception) must not leave its server running either
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  process.once("exit", onExit);
  return {
    url: `https://127.0.0.1:${o.port}`,
    port: o.port,
    pid: child.pid!,
    child,
    stop: async () => {
      forget();
      process.off("exit", onExit);
      await stop();
    },
  };
}

const undoOnInterrupt = new Set<() => unknown>();
let interruptHooked = false;

/**
 * Registers what a bench must stop if it is interrupted (Ctrl-C, or the SIGTERM of `timeout`),
 * newest first; the returned function unregisters it once the bench stopped it itself. Without
 * this, a killed bench left its PostgreSQL and server running.
 */
export function onInterrupt(undo: () => unknown): () => void {
  undoOnInterrupt.add(undo);
  if (!interruptHooked) {
    interruptHooked = true;
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      process.once(sig, async () => {
        console.error(`bench: ${sig}, stopping what it started`);
        // the bench's own work now fails (its database goes away): that must not end us before the cleanup
        process.on("unhandledRejection", () => {});
        process.on("uncaughtException", () => {});
        for (const u of [...undoOnInterrupt].reverse()) {
          try {
            await u();
          } catch {
            /* stop the rest anyway */
          }
        }
        process.exit(sig === "SIGINT" ? 130 : 143);
      });
    }
  }
  return () => void undoOnInterrupt.delete(undo);
}

export interface BenchDatabase {
  dir: string;
  pg: EmbeddedPg;
  /** The postmaster's pid: treeCpuSeconds(pgPid) is PostgreSQL's CPU, every backend included. */
  pgPid: number;
  sql: Sql;
  /** Ends the pool, stops PostgreSQL and removes the directory. */
  close(): Promise<void>;
}

/** The postmaster a bench started (for treeCpuSeconds): PostgreSQL's CPU is its tree's. */
export function postmasterPid(pg: EmbeddedPg): number {
  const pid = pg.pid();
  if (pid === undefined) throw new Error("the bench's PostgreSQL has no running postmaster");
  return pid;
}

/** A migrated embedded PostgreSQL of the bench's own, in a temp directory, stopped if the bench is interrupted. */
export async function benchDatabase(o: { prefix: string; partitionDays?: number; pool?: number }): Promise<BenchDatabase> {
  const dir = mkdtempSync(join(tmpdir(), o.prefix));
  chmodSync(dir, 0o755); // the postgres user (when run as root) must reach its data directory
  const pg = await startEmbeddedPg({ dataDir: join(dir, "pg") });
  const remove = async () => {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  const forget = onInterrupt(remove);
  const sql = createPgClient(pg.url, o.pool ?? 4);
  await migrate(sql);
  for (const t of timeSeriesTables(o.partitionDays ?? 3, 3)) await ensurePartitions(sql, t);
  return {
    dir,
    pg,
    pgPid: postmasterPid(pg),
    sql,
    async close() {
      forget();
      await sql.end();
      await remove();
    },
  };
}

export interface MetricStorage {
  /** bytes of every metric relation except the rollup tiers (heap, TOAST, indexes; every partition) */
  bytes: number;
  /** bytes of the rollup tiers (tables named metric_rollup%) */
  rollupBytes: number;
  /** bytes per table, partitions summed under their root table */
  tables: Record<string, number>;
}

/**
 * What the metric tables take on disk, whatever the layout: pg_total_relation_size (heap, TOAST,
 * indexes) of every table named metric% and of every partition whose root is so named, summed
 * per root table. The rollup tiers (metric_rollup%) are reported apart.
 */
export async function metricStorage(sql: Sql): Promise<MetricStorage> {
  const rows = await sql<{ root: string; bytes: string }[]>`
    select coalesce(r.relname, c.relname)::text as root, sum(pg_total_relation_size(c.oid))::bigint as bytes
    from pg_class c
    left join pg_class r on r.oid = pg_partition_root(c.oid)
    where c.relkind = 'r' and c.relnamespace = 'public'::regnamespace
      and (c.relname like 'metric%' or r.relname like 'metric%')
    group by 1 order by 1`;
  const tables = Object.fromEntries(rows.map((r) => [r.root, Number(r.bytes)]));
  let bytes = 0;
  let rollupBytes = 0;
  for (const [t, b] of Object.entries(tables)) {
    if (t.startsWith("metric_rollup")) rollupBytes += b;
    else bytes += b;
  }
  return { bytes, rollupBytes, tables };
}

/**
 * What the store does to data once its hour is closed, done now: the rollup job over every marked
 * hour (rollups.ts; it compacts each hour's raw rows, compaction.ts), as if the hours had ended,
 * then VACUUM FULL of the metric tables so their size is the live data's (in service, autovacuum
 * makes the replaced rows' space reusable by later rows instead). VictoriaMetrics gets the same:
 * a forced merge before its size is read (victoria.ts).
 */
export async function compactForBench(sql: Sql, log: (s: string) => void): Promise<{ seconds: number; hours: number; rows_in: number; rows_out: number; minute_rows: number }> {
  const t = performance.now();
  const out = { hours: 0, rows_in: 0, rows_out: 0, minute_rows: 0 };
  const later = Date.now() + 3 * 3_600_000;
  for (;;) {
    const r = await rollupStep({ sql, rawDays: 30, maxPairs: 200, now: () => later });
    out.minute_rows += r.minuteRows;
    if (r.compacted) {
      out.hours += r.compacted.hours;
      out.rows_in += r.compacted.rowsIn;
      out.rows_out += r.compacted.rowsOut;
    }
    if (r.pairs === 0) break;
  }
  const jobS = (performance.now() - t) / 1000;
  const tables = await sql<{ t: string }[]>`select relname::text as t from pg_class where relkind in ('r', 'p') and relnamespace = 'public'::regnamespace and relname like 'metric%' and not relispartition`;
  for (const { t: name } of tables) await sql.unsafe(`vacuum full ${name}`);
  log(`rollup job and compaction ${jobS.toFixed(1)} s (${JSON.stringify(out)}), then vacuum full ${((performance.now() - t) / 1000 - jobS).toFixed(1)} s`);
  return { seconds: Math.round(jobS * 10) / 10, ...out };
}

/** `--workload hash-random` (the default: values from Math.random, as before) or `realistic` (bench/workload-realistic.ts). */
export function workloadArg(): "hash-random" | "realistic" {
  const w = arg("workload", "hash-random");
  if (w !== "hash-random" && w !== "realistic") throw new Error(`--workload ${w}: use hash-random or realistic`);
  return w;
}

/**
 * The kernel settings the server package installs (packaging/servermind-server.sysctl.conf: UDP
 * receive buffers for HTTP/3), applied for the bench's run when it may write /proc/sys (root)
 * and the running value is lower, and put back by `restore()` (or on interrupt). Benches that
 * start the server call it first: the server's QUIC socket takes the default when it opens.
 * `settings` is what the run had; `applied` whether the bench changed anything. With `apply`
 * false the running values are only read (to measure the kernel's defaults).
 */
export function packagedSysctl(apply = true): { settings: Record<string, number>; applied: boolean; restore(): void } {
  const conf = readFileSync(join(import.meta.dir, "../packaging/servermind-server.sysctl.conf"), "utf8");
  const settings: Record<string, number> = {};
  const undo: Array<[string, string]> = [];
  for (const m of conf.matchAll(/^([a-z0-9_.]+)\s*=\s*(\d+)\s*$/gm)) {
    const path = `/proc/sys/${m[1]!.replace(/\./g, "/")}`;
    let now: string;
    try {
      now = readFileSync(path, "utf8").trim();
    } catch {
      continue;
    }
    settings[m[1]!] = Number(now);
    if (!apply || Number(now) >= Number(m[2])) continue;
    try {
      writeFileSync(path, m[2]!);
      undo.push([path, now]);
      settings[m[1]!] = Number(m[2]);
    } catch {
      console.error(`[bench] !! ${m[1]} is ${now}, below the ${m[2]} the server package sets, and this bench may not change it (run as root): HTTP/3 loses datagrams under load`);
    }
  }
  const restore = () => {
    for (const [path, v] of undo.splice(0).reverse()) writeFileSync(path, v);
  };
  const forget = onInterrupt(restore);
  // a bench that fails (an exception) puts them back too
  process.once("exit", restore);
  if (undo.length) console.error(`[bench] applied the server package's kernel settings for this run (put back at the end): ${undo.map(([p]) => `${p.slice(10).replace(/\//g, ".")}=${settings[p.slice(10).replace(/\//g, ".")]}`).join(", ")}`);
  return {
    settings,
    applied: undo.length > 0,
    restore() {
      restore();
      forget();
    },
  };
}
