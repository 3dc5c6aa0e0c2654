/**
 * Metric storage layouts compared by raw binary COPY on this machine (npm run bench:store).
 * Same samples, same transaction size, same index shape; reports samples/s, server CPU is
 * implied by the wall time on an otherwise idle database, and bytes per sample on disk.
 *   per-sample: one row per (agent, series, ts, value), btree (agent, series, ts)
 *   array-f8:   one row per (agent, 10 series, 10 ts) with float8[] values (our layout)
 *   array-f8-partitioned: the same into a range-partitioned parent (routing cost)
 *   array-bytea: the same rows with values as raw little-endian float64 bytes
 * Then ServerMind's own write path (src/store/postgres/writer.ts, whatever layout it writes) on a
 * migrated database: `--agents` hosts x 100 series, frames of 10 stamps, a first pass that
 * creates the series, then `samples` more with later timestamps (steady state), in batches of
 * 200 frames on `--writers` connections; its bytes per sample are the sizes of the metric
 * tables (bench/support.ts metricStorage). VictoriaMetrics gets the same samples (bench/victoria.ts;
 * `--no-vm` skips it). `--workload realistic` takes the values from bench/workload-realistic.ts
 * for every layout; the default keeps hash-random values.
 */
import "../src/allocator-boot.ts"; // the server's allocator setting, for the server code this process runs
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPg } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { arg, benchDatabase, compactForBench, copyChunks, environment, flag, median, metricStorage, round, workloadArg } from "./support.ts";
import { createPgWriter } from "../src/store/postgres/writer.ts";
import { Batch, type PendingFrame } from "../src/batch/batch.ts";
import { FrameKind, type MetricsBody } from "../src/ingest/frame/frame.ts";
import { metricNames } from "../test/support/sim-agent.ts";
import { realisticWorkload } from "./workload-realistic.ts";
import { requireVictoria, startVictoria, vmRequests, type VmPath } from "./victoria.ts";

const quick = flag("quick");
const SAMPLES = Number(arg("samples", quick ? "1000000" : "4000000"));
const REPEAT = Number(arg("repeat", quick ? "1" : "3"));
const PER_TX = 200_000; // samples per transaction, like a group-commit batch
const AGENTS = 1000;
const WORKLOAD = workloadArg();
const VM = !flag("no-vm");
if (VM) requireVictoria();
const SM_AGENTS = Number(arg("agents", quick ? "200" : "1000"));
const SM_METRICS = 100;
const SM_WRITERS = Number(arg("writers", "3"));
const VM_PATH = arg("vm-path", "remote-write") as VmPath;
if (VM_PATH !== "remote-write" && VM_PATH !== "import") throw new Error(`--vm-path ${VM_PATH}: use remote-write or import`);
const realistic = WORKLOAD === "realistic" ? realisticWorkload(SM_METRICS) : undefined;
const log = (s: string) => console.error(`[bench] ${s}`);

type Layout = { name: string; ddl: string; columns: string; encode: (w: CopyWriter, agent: number, t0: number, vals: Float64Array) => void };

const ts = Array.from({ length: 10 }, (_, i) => i * 10_000);
const tsOff = new Int32Array(ts);
const series = new Int32Array(Array.from({ length: 10 }, (_, i) => i + 1));

/** The columns before the values, the same in every array layout. */
function blockHead(w: CopyWriter, agent: number, t0: number): void {
  w.row(6);
  w.int8(agent);
  w.timestamptz(t0);
  w.timestamptz(t0 + 90_000);
  w.int4Array(tsOff);
  w.int4Array(series);
}

const layouts: Layout[] = [
  {
    name: "per-sample",
    ddl: "create table m (agent_id int8, series int4, ts timestamptz, value float8); create index on m (agent_id, series, ts)",
    columns: "m (agent_id, series, ts, value)",
    encode() {
      throw new Error("per-sample rows are written by encodeFixed");
    },
  },
  {
    name: "array-f8",
    ddl: "create table m (agent_id int8, t0 timestamptz, t1 timestamptz, ts_off int4[], series int4[], vals float8[]); create index on m (agent_id, t0)",
    columns: "m (agent_id, t0, t1, ts_off, series, vals)",
    encode(w, agent, t0, vals) {
      blockHead(w, agent, t0);
      w.float8Array(vals);
    },
  },
  {
    name: "array-f8-partitioned",
    ddl: `create table m (agent_id int8, t0 timestamptz, t1 timestamptz, ts_off int4[], series int4[], vals float8[]) partition by range (t0);
          create index on m (agent_id, t0);
          create table m_default partition of m default;
          create table m_p1 partition of m for values from ('2026-01-01') to ('2027-01-01')`,
    columns: "m (agent_id, t0, t1, ts_off, series, vals)",
    encode(w, agent, t0, vals) {
      layouts[1]!.encode(w, agent, t0, vals);
    },
  },
  {
    name: "array-bytea",
    ddl: "create table m (agent_id int8, t0 timestamptz, t1 timestamptz, ts_off int4[], series int4[], vals bytea); create index on m (agent_id, t0)",
    columns: "m (agent_id, t0, t1, ts_off, series, vals)",
    encode(w, agent, t0, vals) {
      blockHead(w, agent, t0);
      w.bytes(new Uint8Array(vals.buffer, vals.byteOffset, vals.byteLength));
    },
  },
];

const f8buf = new DataView(new ArrayBuffer(8));
function f8be(v: number): Uint8Array {
  f8buf.setFloat64(0, v);
  return new Uint8Array(f8buf.buffer.slice(0));
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "servermind-store-bench-"));
  chmodSync(dir, 0o755);
  const pg = await startEmbeddedPg({ dataDir: join(dir, "pg") });
  const sql = createPgClient(pg.url, 2);
  const results: Record<string, unknown>[] = [];
  const fixed = new Float64Array(100).map(() => Math.round(Math.random() * 10000) / 100);
  const vals = (agent: number, t0: number) => {
    if (!realistic) return fixed;
    const v = new Float64Array(100);
    for (let s = 0; s < 10; s++) for (let t = 0; t < 10; t++) v[s * 10 + t] = realistic.value(agent, s, t0 / 10_000 + t);
    return v;
  };
  for (const L of layouts) {
    const runs: number[] = [];
    let bytes = 0;
    for (let r = 0; r < REPEAT; r++) {
      await sql.unsafe("drop table if exists m");
      await sql.unsafe(L.ddl);
      const chunks: Uint8Array[] = [];
      for (let s = 0; s < SAMPLES; s += PER_TX) {
        const w = new CopyWriter().begin();
        for (let k = s; k < Math.min(SAMPLES, s + PER_TX); k += 100) {
          const block = k / 100;
          const agent = 1 + (block % AGENTS);
          const t0 = 1_790_000_000_000 + Math.floor(block / AGENTS) * 100_000;
          encodeFixed(L, w, agent, t0, vals(agent, t0));
        }
        chunks.push(w.end().slice());
      }
      const t = performance.now();
      await copyChunks(sql, L.columns, chunks);
      runs.push(SAMPLES / ((performance.now() - t) / 1000));
      const [sz] = await sql`select coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint as b from pg_class c where c.relname in ('m', 'm_p1', 'm_default')`;
      bytes = Number(sz!.b);
    }
    results.push({ layout: L.name, samples_per_s: Math.round(median(runs)), bytes_per_sample: round(bytes / SAMPLES, 2) });
    console.error(`[bench] ${L.name}: ${JSON.stringify(results.at(-1))}`);
  }
  await sql.end();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
  const f8 = results.find((r) => r.layout === "array-f8")!;
  const ps = results.find((r) => r.layout === "per-sample")!;
  const side = await sideBySide();
  console.log(JSON.stringify({ bench: "store-postgres", ...environment(), quick, workload: WORKLOAD, samples: SAMPLES, repeat: REPEAT, results, array_vs_per_sample: round((f8.samples_per_s as number) / (ps.samples_per_s as number), 2), ...side }));
}

/** Frames of every agent for `stamps` x 10 stamps from `fromMs`: metric bodies as the server decodes them. */
function smFrames(fromMs: number, perAgent: number, names: string[]): Array<{ agent: number; body: MetricsBody }> {
  const out: Array<{ agent: number; body: MetricsBody }> = [];
  for (let k = 0; k < perAgent; k++) {
    for (let a = 1; a <= SM_AGENTS; a++) {
      const ts = Float64Array.from({ length: 10 }, (_, i) => fromMs + (k * 10 + i) * 10_000);
      const values = realistic ? realistic.frameValues(a, ts) : new Float64Array(SM_METRICS * 10).map(() => Math.round(Math.random() * 100_000) / 100);
      out.push({ agent: a, body: { ts, names, values, namesKey: names.join("\n") } });
    }
  }
  return out;
}

/**
 * ServerMind's write path (createPgWriter, as the server's batcher calls it) and VictoriaMetrics
 * on the same samples: a first pass of one frame per agent creates the series, then SAMPLES more.
 */
async function sideBySide(): Promise<Record<string, unknown>> {
  const names = realistic ? realistic.names : metricNames(SM_METRICS);
  const steadyFrames = Math.max(1, Math.round(SAMPLES / (SM_METRICS * 10 * SM_AGENTS)));
  // inside the partitions benchDatabase made, and on a multiple of a frame's 100 s: our agent sends
  // a tick a frame, which never straddles an hour, and frames of 10 stamps starting there do not
  // either (an hour is 36 of them); one that did would stay as ingested (compaction.ts)
  const from = Math.floor(Date.now() / 100_000) * 100_000 - 6 * 3_600_000;
  const create = smFrames(from, 1, names);
  const steady = smFrames(from + 100_000, steadyFrames, names);
  const createSamples = create.length * SM_METRICS * 10;
  const steadySamples = steady.length * SM_METRICS * 10;
  log(`servermind writer: ${SM_AGENTS} agents x ${SM_METRICS} series, ${createSamples} samples creating them, then ${steadySamples}${realistic ? ` (realistic: ${JSON.stringify(realistic.mix())})` : ""}`);

  const db = await benchDatabase({ prefix: "servermind-store-bench-sm-" });
  const { sql } = db;
  await sql`insert into agents (id, hostname, public_key) overriding system value select g, 'bench-' || g, decode(lpad(to_hex(g), 64, '0'), 'hex') from generate_series(1, ${SM_AGENTS}) g`;
  // what the metric tables take before the first sample (each table, index and partition has a
  // minimum size): a fixed cost that weighs on small runs, reported apart (`empty_bytes`)
  const empty = await metricStorage(sql);
  const write = createPgWriter({ sql });
  let batchId = 0;
  const run = async (frames: Array<{ agent: number; body: MetricsBody }>) => {
    const batches: Batch[] = [];
    for (let i = 0; i < frames.length; i += 200) {
      const b = new Batch(performance.now());
      for (const f of frames.slice(i, i + 200)) {
        const pf: PendingFrame = { agentId: f.agent, batchId: ++batchId, seq: batchId, createdMs: Date.now(), data: { kind: FrameKind.Metrics, body: f.body }, bytes: f.body.values.byteLength, rows: 10, receivedAt: performance.now(), transport: "bench", accept() {}, reject() {} };
        b.add(pf);
      }
      batches.push(b);
    }
    let next = 0;
    let ok = 0;
    const t = performance.now();
    await Promise.all(Array.from({ length: SM_WRITERS }, async () => {
      for (;;) {
        const i = next++;
        if (i >= batches.length) break;
        const statuses = await write(batches[i]!); // (not `ok += await ...`: that reads ok before the await)
        ok += statuses.filter((s) => s === "ok").length;
      }
    }));
    if (ok !== frames.length) throw new Error(`servermind writer stored ${ok} of ${frames.length} frames`);
    return (performance.now() - t) / 1000;
  };
  let smCreateS: number, smSteadyS: number, storage: Awaited<ReturnType<typeof metricStorage>>, uncompacted: typeof storage, compaction: Awaited<ReturnType<typeof compactForBench>>;
  try {
    smCreateS = await run(create);
    await sql`checkpoint`;
    smSteadyS = await run(steady);
    uncompacted = await metricStorage(sql);
    log(`metric relations counted as ingested: ${JSON.stringify(uncompacted.tables)}`);
    compaction = await compactForBench(sql, log);
    storage = await metricStorage(sql);
    log(`metric relations counted after the rollup job and compaction: ${JSON.stringify(storage.tables)}`);
  } finally {
    await db.close(); // also when the writer fails: no PostgreSQL or directory left behind
  }
  const smSamples = createSamples + steadySamples;
  const out: Record<string, unknown> = {
    agents: SM_AGENTS,
    samples_stored: smSamples,
    points_per_series: round(smSamples / (SM_AGENTS * SM_METRICS), 1),
    samples_per_s: Math.round(steadySamples / smSteadyS),
    create_samples_per_s: Math.round(createSamples / smCreateS),
    bytes_per_sample: round(storage.bytes / smSamples, 2),
    bytes_per_sample_uncompacted: round(uncompacted.bytes / smSamples, 2),
    empty_bytes: empty.bytes,
    bytes_per_sample_above_empty: round((storage.bytes - empty.bytes) / smSamples, 2),
    rollup_bytes_per_sample: round(storage.rollupBytes / smSamples, 2),
    metric_relations: storage.tables,
    compaction,
  };
  if (!VM) return out;

  const vm = await startVictoria(log);
  const vmEmpty = vm.diskBytes();
  const requests = (frames: Array<{ agent: number; body: MetricsBody }>) => vmRequests(frames.map((f) => ({ host: f.agent, ...f.body })), VM_PATH, 50);
  const vc = await vm.ingest(requests(create), 8);
  await vm.flush();
  const vs = await vm.ingest(requests(steady), 8);
  await vm.compact();
  const vmRows = await vm.rows();
  const vmBytes = vm.diskBytes();
  const vmSplit = vm.diskSplit();
  await vm.stop();
  if (vmRows !== smSamples) log(`victoria-metrics holds ${vmRows} samples, ${smSamples} were sent`);
  const vmSps = Math.round(steadySamples / vs.seconds);
  return {
    ...out,
    vm_samples_per_s: vmSps,
    vm_create_samples_per_s: Math.round(createSamples / vc.seconds),
    vm_cpu_s_per_million: round(vs.cpuSeconds / (steadySamples / 1e6)),
    vm_bytes_per_sample: round(vmBytes / smSamples, 2),
    vm_index_bytes_per_sample: round(vmSplit.index / smSamples, 2),
    vm_empty_bytes: vmEmpty,
    vm_bytes_per_sample_above_empty: round((vmBytes - vmEmpty) / smSamples, 2),
    vm_samples_stored: vmRows,
    vm_import: { path: VM_PATH === "import" ? "/api/v1/import" : "/api/v1/write", senders: 8, frames_per_request: 50 },
    vs_vm: round((out.samples_per_s as number) / vmSps),
  };
}

function encodeFixed(L: Layout, w: CopyWriter, agent: number, t0: number, vals: Float64Array) {
  if (L.name !== "per-sample") return L.encode(w, agent, t0, vals);
  for (let s = 0; s < 10; s++)
    for (let t = 0; t < 10; t++) {
      w.row(4);
      w.int8(agent);
      w.bytes(Uint8Array.of(0, 0, 0, s + 1));
      w.timestamptz(t0 + ts[t]!);
      w.bytes(f8be(vals[s * 10 + t]!));
    }
}

await main();
