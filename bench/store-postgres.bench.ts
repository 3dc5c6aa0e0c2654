/**
 * Metric storage layouts compared by raw binary COPY on this machine (npm run bench:store).
 * Same samples, same transaction size, same index shape; reports samples/s, server CPU is
 * implied by the wall time on an otherwise idle database, and bytes per sample on disk.
 *   per-sample: one row per (agent, series, ts, value), btree (agent, series, ts)
 *   array-f8:   one row per (agent, 10 series, 10 ts) with float8[] values (our layout)
 *   array-f8-partitioned: the same into a range-partitioned parent (routing cost)
 *   array-bytea: the same rows with values as raw little-endian float64 bytes
 */
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPg } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { arg, environment, flag, median, round } from "./support.ts";

const quick = flag("quick");
const SAMPLES = Number(arg("samples", quick ? "1000000" : "4000000"));
const REPEAT = Number(arg("repeat", quick ? "1" : "3"));
const PER_TX = 200_000; // samples per transaction, like a group-commit batch
const AGENTS = 1000;

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
  const vals = new Float64Array(100).map(() => Math.round(Math.random() * 10000) / 100);
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
          encodeFixed(L, w, 1 + (block % AGENTS), 1_790_000_000_000 + Math.floor(block / AGENTS) * 100_000, vals);
        }
        chunks.push(w.end().slice());
      }
      const t = performance.now();
      let next = 0;
      await Promise.all([0, 1].map(async () => {
        for (;;) {
          const i = next++;
          if (i >= chunks.length) break;
          await sql.begin(async (tx) => {
            const st = await tx.unsafe(`copy ${L.columns} from stdin (format binary)`).writable();
            await new Promise<void>((ok, fail) => { st.once("finish", ok); st.once("error", fail); st.end(Buffer.from(chunks[i]!)); });
          });
        }
      }));
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
  console.log(JSON.stringify({ bench: "store-postgres", ...environment(), quick, samples: SAMPLES, repeat: REPEAT, results, array_vs_per_sample: round((f8.samples_per_s as number) / (ps.samples_per_s as number), 2) }));
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
