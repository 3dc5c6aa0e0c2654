/**
 * The ingest path without HTTP or TLS (bun bench/ingest-core.ts [--samples N] [--inflight N]):
 * the real server started in this process on an embedded PostgreSQL, agents with sessions, and
 * requests of realistic metrics frames handed straight to `ingestFrames` (what every transport
 * calls after reading a body), `--inflight` at a time, each waiting for its acks (= COMMIT).
 * Prints the process's CPU seconds per million samples (median of `--rounds`, 5; one with --quick): the part of the server's cost that is
 * decode, authentication, batching and the PostgreSQL writer, apart from the transports.
 * `--cpu-prof-md` on the bun command line profiles exactly that.
 */
import "../src/allocator-boot.ts"; // the server's allocator setting, for the server code this process runs
import { ingestFrames } from "../src/ingest/agent/handler.ts";
import { encodeFrame, packMetrics } from "../src/ingest/frame/encode.ts";
import { FrameKind } from "../src/ingest/frame/frame.ts";
import { newKeys, openSession, type SimAgent } from "../test/support/sim-agent.ts";
import { startTestServer } from "../test/support/server.ts";
import { stopTestServer } from "../test/support/db.ts";
import { arg, environment, flag, median } from "./support.ts";
import { realisticWorkload } from "./workload-realistic.ts";

const quick = flag("quick");
const AGENTS = Number(arg("agents", "400"));
const SAMPLES = Number(arg("samples", quick ? "1000000" : "4000000"));
const INFLIGHT = Number(arg("inflight", "100"));
const PER_REQUEST = Number(arg("frames-per-request", "4"));
const ROUNDS = Number(arg("rounds", quick ? "1" : "5"));
const METRICS = 100;
const STAMPS = 10;

const s = await startTestServer({ SERVERMIND_WRITERS: "3", SERVERMIND_LZ4: arg("lz4", "auto") });
const agents: SimAgent[] = [];
for (let i = 0; i < AGENTS; i++) {
  const k = newKeys();
  const [r] = await s.db.sql`insert into agents (hostname, public_key) values (${`core-${i}`}, ${Buffer.from(k.publicKeyB64, "base64")}) returning id`;
  agents.push({ id: Number(r!.id), ...k, seq: 0, batch: 0 });
}
for (const a of agents) await openSession(s.url, a, "http2");
const rw = realisticWorkload(METRICS);
const hourStart = Math.floor(Date.now() / 3_600_000) * 3_600_000;
let tick = 0;
function requests(samples: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const n = Math.ceil(samples / (METRICS * STAMPS));
  for (let i = 0; i < n; i++) {
    const a = agents[i % AGENTS]!;
    if (i % AGENTS === 0) tick++;
    const ts = Float64Array.from({ length: STAMPS }, (_, k) => hourStart + ((tick * STAMPS + k) % 360) * 10_000);
    frames.push(encodeFrame({ kind: FrameKind.Metrics, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: Date.now(), items: METRICS * STAMPS },
      packMetrics({ ts, names: rw.names, values: rw.frameValues(a.id, ts) }), a.session!));
  }
  const out: Uint8Array[] = [];
  for (let i = 0; i < frames.length; i += PER_REQUEST) out.push(Buffer.concat(frames.slice(i, i + PER_REQUEST)));
  return out;
}
// registration (series created) and warm-up
await run(requests(AGENTS * METRICS * STAMPS));
const rates: number[] = [];
const cpus: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const reqs = requests(SAMPLES);
  Bun.gc(true);
  console.error(`[core] round ${r + 1}: measuring (pid ${process.pid})`);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const bad = await run(reqs);
  const secs = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6 / (SAMPLES / 1e6);
  rates.push(SAMPLES / secs);
  cpus.push(cpu);
  console.error(`[core] round ${r + 1}: ${(SAMPLES / secs / 1e6).toFixed(2)} M samples/s, ${cpu.toFixed(3)} CPU-s per million (user ${(c.user / 1e6).toFixed(2)} s, system ${(c.system / 1e6).toFixed(2)} s), ${bad} rejected, rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`);
}
console.log(JSON.stringify({ bench: "ingest-core", ...environment(), quick, agents: AGENTS, samples: SAMPLES, inflight: INFLIGHT, frames_per_request: PER_REQUEST, samples_per_s: Math.round(median(rates)), cpu_s_per_million: Math.round(median(cpus) * 1000) / 1000 }));
await s.close();
await stopTestServer();

async function run(reqs: Uint8Array[]): Promise<number> {
  let next = 0;
  let bad = 0;
  await Promise.all(Array.from({ length: INFLIGHT }, async () => {
    for (;;) {
      const i = next++;
      if (i >= reqs.length) return;
      const r = await ingestFrames(s.ingest.deps, reqs[i]!, "h2");
      bad += r.rejects.length;
    }
  }));
  return bad;
}
