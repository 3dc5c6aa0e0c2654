/**
 * The metric block codec (src/store/codec/block.ts) against today's float8[] rows, same run
 * (bun bench/codec.bench.ts [--quick] [--samples N]):
 *   1. encode and decode samples/s on one core, per workload;
 *   2. for each layout x workload: the CPU (process.cpuUsage) to build the COPY stream (encoding included), raw
 *      binary COPY samples/s (two writers, 200,000 samples per transaction), bytes per sample on
 *      disk (pg_total_relation_size: table + index + TOAST).
 * Workloads (1,000 agents x 100 series, frames of 10 timestamps 10 s apart):
 *   hash-random: every value Math.round(random * 100,000) / 100, as test/support/sim-agent.ts
 *                and bench:ingest send;
 *   realistic:   60% constant series, 25% counters growing by small integers, 10% slow gauges
 *                with one decimal, 5% noisy doubles (full-precision random), per-series state
 *                carried across frames;
 *   random-f64:  every value a full-precision random double (the codec's worst case).
 */
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPg } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { ByteSink, decodeBlock, encodeBlock } from "../src/store/codec/block.ts";
import { encodeMetricBlocksCompressed } from "../src/store/postgres/metric-blocks.ts";
import { arg, copyChunks, environment, flag, median, round } from "./support.ts";

const quick = flag("quick");
const SAMPLES = Number(arg("samples", quick ? "1000000" : "4000000"));
const REPEAT = Number(arg("repeat", quick ? "1" : "3"));
const PER_TX = 200_000;
const AGENTS = 1000;
const SERIES = 100;
const NTS = 10;

type Workload = "hash-random" | "realistic" | "random-f64";

/** Frames of every agent, in time order: values series-major, like a MetricsBody. */
function frames(workload: Workload): Array<{ agent: number; t0: number; values: Float64Array }> {
  const out: Array<{ agent: number; t0: number; values: Float64Array }> = [];
  const perAgent = Math.max(1, Math.round(SAMPLES / AGENTS / SERIES / NTS));
  for (let a = 1; a <= AGENTS; a++) {
    const state = new Float64Array(SERIES).map((_, s) => (s < 60 ? [0, 1, 4096, 8_000_000_000][s % 4]! : s < 85 ? Math.floor(Math.random() * 1e9) : Math.round(200 + Math.random() * 600) / 10));
    for (let f = 0; f < perAgent; f++) {
      const values = new Float64Array(SERIES * NTS);
      for (let s = 0; s < SERIES; s++) {
        for (let t = 0; t < NTS; t++) {
          let v: number;
          if (workload === "hash-random") v = Math.round(Math.random() * 100_000) / 100;
          else if (workload === "random-f64") v = (Math.random() - 0.5) * 1e4;
          else if (s < 60) v = state[s]!;
          else if (s < 85) v = state[s] = state[s]! + Math.floor(Math.random() * 20);
          else if (s < 95) v = state[s] = Math.round((state[s]! + (Math.random() < 0.3 ? (Math.random() < 0.5 ? -0.1 : 0.1) : 0)) * 10) / 10;
          else v = Math.random() * 100;
          values[s * NTS + t] = v;
        }
      }
      out.push({ agent: a, t0: 1_790_000_000_000 + f * NTS * 10_000, values });
    }
  }
  return out.sort((x, y) => x.t0 - y.t0 || x.agent - y.agent);
}

const tsOff = new Int32Array(Array.from({ length: NTS }, (_, i) => i * 10_000));
const sids = new Int32Array(Array.from({ length: SERIES }, (_, i) => i + 1));

type Layout = { name: string; ddl: string; columns: string; encode(w: CopyWriter, agent: number, batch: number, t0: number, values: Float64Array): void };

const layouts: Layout[] = [
  {
    name: "float8[] rows of 10 series (today)",
    ddl: "create table m (agent_id int8, batch_id int8, t0 timestamptz, t1 timestamptz, ts_off int4[], series int4[], vals float8[]); create index on m (agent_id, t0)",
    columns: "m (agent_id, batch_id, t0, t1, ts_off, series, vals)",
    encode(w, agent, batch, t0, values) {
      for (let g = 0; g < SERIES; g += 10) {
        w.row(7);
        w.int8(agent);
        w.int8(batch);
        w.timestamptz(t0);
        w.timestamptz(t0 + 90_000);
        w.int4Array(tsOff);
        w.int4Array(sids, g, 10);
        w.float8Array(values, g * NTS, 10 * NTS);
      }
    },
  },
  {
    name: "codec bytea, a frame a row (split under 1.9 kB)",
    ddl: "create table m (agent_id int8, batch_id int8, t0 timestamptz, t1 timestamptz, block bytea); create index on m (agent_id, t0)",
    columns: "m (agent_id, batch_id, t0, t1, block)",
    encode(w, agent, batch, t0, values) {
      encodeMetricBlocksCompressed(w, agent, batch, t0, t0 + 90_000, tsOff, sids, values);
    },
  },
];

/** Encode and decode speed on one core: CPU time (process.cpuUsage) after a warm-up pass. */
function codecSpeed(fs: Array<{ values: Float64Array }>): { encode_msamples_s: number; decode_msamples_s: number; decode_4_of_100_msamples_s: number; value_bytes_per_sample: number } {
  const sink = new ByteSink(1 << 16);
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
  const blocks: Uint8Array[] = [];
  let n = 0, bytes = 0;
  for (let pass = 0; pass < 2; pass++) {
    n = 0; bytes = 0;
    var t = cpu();
    for (const f of fs) {
      sink.reset();
      encodeBlock(sink, tsOff, sids, 0, SERIES, f.values, 0);
      bytes += sink.pos;
      if (pass === 0 && blocks.length < 2000) blocks.push(sink.bytes().slice());
      n += SERIES * NTS;
    }
  }
  const enc = n / (cpu() - t!);
  const want = new Set([1, 30, 70, 99]);
  let m = 0, m4 = 0, dec = 0, dec4 = 0;
  for (let pass = 0; pass < 2; pass++) {
    m = 0; m4 = 0;
    const t2 = cpu();
    for (let r = 0; r < 5; r++) for (const b of blocks) m += decodeBlock(b).values.length;
    dec = m / (cpu() - t2);
    const t3 = cpu();
    for (let r = 0; r < 5; r++) for (const b of blocks) m4 += SERIES * NTS + 0 * decodeBlock(b, want).values.length;
    dec4 = m4 / (cpu() - t3);
  }
  return { encode_msamples_s: round(enc / 1e6, 1), decode_msamples_s: round(dec / 1e6, 1), decode_4_of_100_msamples_s: round(dec4 / 1e6, 1), value_bytes_per_sample: round(bytes / n, 2) };
}

async function main() {
  if (flag("speed")) {
    for (const workload of ["hash-random", "realistic", "random-f64"] as Workload[]) console.log(JSON.stringify({ workload, ...codecSpeed(frames(workload)) }));
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "servermind-codec-bench-"));
  chmodSync(dir, 0o755);
  const pg = await startEmbeddedPg({ dataDir: join(dir, "pg") });
  const sql = createPgClient(pg.url, 2);
  const results: Record<string, unknown>[] = [];
  for (const workload of ["hash-random", "realistic", "random-f64"] as Workload[]) {
    const fs = frames(workload);
    const samples = fs.length * SERIES * NTS;
    const speed = codecSpeed(fs);
    console.error(`[bench] ${workload} codec: ${JSON.stringify(speed)}`);
    for (const L of layouts) {
      const copyRuns: number[] = [], buildRuns: number[] = [];
      let bytes = 0;
      for (let r = 0; r < REPEAT; r++) {
        await sql.unsafe("drop table if exists m");
        await sql.unsafe(L.ddl);
        const chunks: Uint8Array[] = [];
        const cpu0 = process.cpuUsage();
        const w = new CopyWriter();
        for (let s = 0; s < fs.length; s += PER_TX / (SERIES * NTS)) {
          w.begin();
          for (let k = s; k < Math.min(fs.length, s + PER_TX / (SERIES * NTS)); k++) L.encode(w, fs[k]!.agent, k + 1, fs[k]!.t0, fs[k]!.values);
          chunks.push(w.end().slice());
        }
        const cpu1 = process.cpuUsage(cpu0);
        buildRuns.push((cpu1.user + cpu1.system) / 1e6 / (samples / 1e6));
        const t = performance.now();
        await copyChunks(sql, L.columns, chunks);
        copyRuns.push(samples / ((performance.now() - t) / 1000));
        await sql`vacuum m`;
        const [sz] = await sql`select pg_total_relation_size('m')::bigint as b`;
        bytes = Number(sz!.b);
      }
      const [rows] = await sql`select count(*)::int8 as n from m`;
      results.push({ workload, layout: L.name, rows: Number(rows!.n), build_cpu_s_per_m: round(median(buildRuns), 3), copy_samples_per_s: Math.round(median(copyRuns)), bytes_per_sample: round(bytes / samples, 2) });
      console.error(`[bench] ${JSON.stringify(results.at(-1))}`);
    }
    results.push({ workload, codec: speed });
  }
  await sql.end();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ bench: "codec", ...environment(), quick, samples: SAMPLES, repeat: REPEAT, results }));
}

await main();
