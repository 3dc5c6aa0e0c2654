/**
 * Fleet simulator against the real server over real TLS (npm run bench:ingest [-- --quick]).
 *
 * 1. Starts a PostgreSQL (embedded, fsync on) and the server as its own process.
 * 2. Enrolls `agents` agents (keys inserted directly: enrollment is not what is measured) and
 *    registers their series with one frame each (reported separately as `registration`).
 * 3. Sends `samples` samples in frames of metrics x stamps samples over `connections`
 *    concurrent connections, split across the chosen transports, each request waiting for its
 *    ack (= committed). Then counts the rows in PostgreSQL: lost and duplicated samples.
 * 4. Measures the ceiling in the same run: raw binary COPY of the same rows into the same table,
 *    in transactions of the same size, on the same number of connections.
 * 5. A logs workload (200 lines a frame) against its own COPY ceiling.
 * Prints one JSON line last.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPg, freePort } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { migrate } from "../src/store/postgres/migrate.ts";
import { ensurePartitions, timeSeriesTables } from "../src/store/postgres/partitions.ts";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { encodeLogs, encodeMetricBlocks } from "../src/store/postgres/writer.ts";
import { decodeFrameBody, splitFrames } from "../src/ingest/frame/decode.ts";
import type { LogsBody, MetricsBody } from "../src/ingest/frame/frame.ts";
import { logsFrame, metricNames, metricsFrame, newKeys, openStream, post, type SimAgent } from "../test/support/sim-agent.ts";
import { arg, environment, flag, percentile, round, rssMb, cpuSeconds, treeCpuSeconds } from "./support.ts";
import { readFileSync } from "node:fs";
import { runClickhouseBench } from "./clickhouse-tier.ts";

const quick = flag("quick");
const AGENTS = Number(arg("agents", quick ? "200" : "2000"));
const METRICS = Number(arg("metrics", "100"));
const STAMPS = Number(arg("stamps", "10"));
const SAMPLES = Number(arg("samples", quick ? "400000" : "8000000"));
const CONNECTIONS = Number(arg("connections", "64"));
const PER_REQUEST = Number(arg("frames-per-request", "4"));
const TRANSPORTS = arg("transport", "h2,wss,h3").split(",") as Array<"h1" | "h2" | "h3" | "wss">;
const LOG_LINES = Number(arg("log-lines", quick ? "100000" : "1000000"));
const WRITERS = Number(arg("writers", "2"));

const log = (s: string) => console.error(`[bench] ${s}`);

async function startServer(dbUrl: string, dataDir: string) {
  const port = await freePort();
  const extra = (process.env.BENCH_SERVER_FLAGS ?? "").split(" ").filter(Boolean);
  const child = spawn(process.execPath, [...extra, "src/main.ts"], {
    env: { ...process.env, DATABASE_URL: dbUrl, SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1", SERVERMIND_DATA: dataDir, SERVERMIND_WRITERS: String(WRITERS) },
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
  return { url: `https://127.0.0.1:${port}`, pid: child.pid!, stop: () => new Promise<void>((r) => { child.once("exit", () => r()); child.kill("SIGTERM"); }) };
}

type Job = { frames: Uint8Array[]; samples: number };

async function drive(url: string, agents: SimAgent[], jobs: Job[], transports: typeof TRANSPORTS) {
  const latencies: number[] = [];
  let next = 0;
  let acked = 0;
  let rejected = 0;
  const rejectCodes: Record<string, number> = {};
  const worker = async (transport: (typeof TRANSPORTS)[number], w: number) => {
    const stream = transport === "wss" ? await openStream(url, agents[w % agents.length]!) : undefined;
    for (;;) {
      const i = next++;
      if (i >= jobs.length) break;
      const job = jobs[i]!;
      for (;;) {
        const t = performance.now();
        let acks: Array<{ status: string }> = [];
        let rejects: Array<{ code: string }> = [];
        let retryAfter = 0;
        if (stream) {
          const m = await stream.send(job.frames);
          acks = m.acks ?? [];
          rejects = m.rejects ?? [];
          if (rejects.some((r) => r.code === "busy")) retryAfter = 0.2;
        } else {
          const r = await post(url, job.frames, transport === "h1" ? "http1.1" : transport === "h2" ? "http2" : "http3");
          acks = r.body.acks ?? [];
          rejects = r.body.rejects ?? [];
          if (r.status === 503) retryAfter = Number(r.retryAfter ?? 1) / 5;
        }
        if (retryAfter > 0) {
          await Bun.sleep(retryAfter * 1000);
          continue; // resend the same frames: the bench's spool
        }
        latencies.push(performance.now() - t);
        acked += acks.filter((a) => a.status === "ok" || a.status === "dup").length;
        rejected += rejects.length;
        for (const r of rejects) rejectCodes[r.code] = (rejectCodes[r.code] ?? 0) + 1;
        break;
      }
    }
    stream?.close();
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(transports[w % transports.length]!, w)));
  return { seconds: (performance.now() - t0) / 1000, latencies: latencies.sort((a, b) => a - b), acked, rejected, rejectCodes };
}

/** Raw COPY of pre-encoded row sets, `WRITERS` transactions at a time. */
async function copyCeiling(url: string, table: string, chunks: Uint8Array[]): Promise<number> {
  const sql = createPgClient(url, WRITERS);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      for (;;) {
        const i = next++;
        if (i >= chunks.length) break;
        await sql.begin(async (tx) => {
          const s = await tx.unsafe(`copy ${table} from stdin (format binary)`).writable();
          await new Promise<void>((ok, fail) => {
            s.once("finish", ok);
            s.once("error", fail);
            s.end(Buffer.from(chunks[i]!));
          });
        });
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  await sql.end();
  return secs;
}

function encodeChunks<T>(bodies: Array<{ agent: number; batch: number; body: T }>, perChunk: number, enc: (w: CopyWriter, agent: number, batch: number, b: T) => void): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bodies.length; i += perChunk) {
    const w = new CopyWriter().begin();
    for (const { agent, batch, body } of bodies.slice(i, i + perChunk)) enc(w, agent, batch, body);
    chunks.push(w.end().slice());
  }
  return chunks;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "servermind-bench-"));
  chmodSync(dir, 0o755);
  const pg = await startEmbeddedPg({ dataDir: join(dir, "pg") });
  const sql = createPgClient(pg.url, 4);
  await migrate(sql);
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(sql, t);

  log(`enrolling ${AGENTS} agents`);
  const agents: SimAgent[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const k = newKeys();
    const [r] = await sql`insert into agents (hostname, public_key) values (${`bench-${i}`}, ${Buffer.from(k.publicKeyB64, "base64")}) returning id`;
    agents.push({ id: Number(r!.id), ...k, seq: 0, batch: 0 });
  }
  const server = await startServer(pg.url, dir);
  log(`server pid ${server.pid} at ${server.url}`);

  const names = metricNames(METRICS);
  const samplesPerFrame = METRICS * STAMPS;
  const base = Date.now() - 3_600_000;
  // Registration: the first frame of every agent creates its series.
  const regJobs: Job[] = [];
  for (let i = 0; i < agents.length; i += PER_REQUEST) {
    regJobs.push({ frames: agents.slice(i, i + PER_REQUEST).map((a) => metricsFrame(a, METRICS, STAMPS, base, names)), samples: 0 });
  }
  const reg = await drive(server.url, agents, regJobs, ["h2"]);
  const regSamples = agents.length * samplesPerFrame;
  log(`registration: ${round(regSamples / reg.seconds / 1e6)}M samples/s`);

  // The measured run: frames built (and signed) before the clock starts.
  const frameCount = Math.ceil(SAMPLES / samplesPerFrame);
  log(`building ${frameCount} frames`);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < frameCount; i++) {
    const a = agents[i % agents.length]!;
    const round_ = Math.floor(i / agents.length) + 1;
    frames.push(metricsFrame(a, METRICS, STAMPS, base + round_ * STAMPS * 10_000, names));
  }
  const jobs: Job[] = [];
  for (let i = 0; i < frames.length; i += PER_REQUEST) jobs.push({ frames: frames.slice(i, i + PER_REQUEST), samples: 0 });
  const pgPid = Number(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
  const cpu0 = cpuSeconds(server.pid);
  const pg0 = treeCpuSeconds(pgPid);
  const client0 = process.cpuUsage();
  log(`sending ${frameCount * samplesPerFrame} samples over ${CONNECTIONS} connections (${TRANSPORTS.join(", ")})`);
  const run = await drive(server.url, agents, jobs, TRANSPORTS);
  const serverCpu = cpuSeconds(server.pid) - cpu0;
  const pgCpu = treeCpuSeconds(pgPid) - pg0;
  const clientUsage = process.cpuUsage(client0);
  const clientCpu = (clientUsage.user + clientUsage.system) / 1e6;
  const rss = rssMb(server.pid);
  const sent = frameCount * samplesPerFrame;

  const [c] = await sql`
    select coalesce(sum(cardinality(vals)), 0)::bigint as stored,
           (select count(*) from (select agent_id, t0, series[1] from metric_blocks group by 1, 2, 3 having count(*) > 1) d)::bigint as dup_rows
    from metric_blocks`;
  const stored = Number(c!.stored) - regSamples;
  const duplicated = Number(c!.dup_rows) * 10 * STAMPS;
  const lost = Math.max(0, sent - (stored - duplicated));

  // Ceiling: the same rows, raw COPY into the same table (agent ids moved out of the way).
  log("measuring the COPY ceiling");
  const bodies = frames.map((f) => {
    const e = splitFrames(f)[0]!.frame!;
    return { agent: e.header.agentId + 1_000_000_000, batch: e.header.batchId, body: decodeFrameBody(e.header, e.body).body as MetricsBody };
  });
  const ids = Int32Array.from(names, (_, i) => i + 1);
  const rowsPerBatch = Number(process.env.SERVERMIND_BATCH_MAX_ROWS ?? 20_000);
  const chunks = encodeChunks(bodies, Math.max(1, Math.floor(rowsPerBatch / Math.ceil(METRICS / 10))), (w, agent, batch, b: MetricsBody) => encodeMetricBlocks(w, agent, batch, b, ids));
  const ceilingSecs = await copyCeiling(pg.url, "metric_blocks (agent_id, batch_id, t0, t1, ts_off, series, vals)", chunks);

  // Logs workload
  log(`logs: ${LOG_LINES} lines in frames of 200`);
  const logFrames: Uint8Array[] = [];
  for (let i = 0; i < LOG_LINES / 200; i++) logFrames.push(logsFrame(agents[i % agents.length]!, 200, base + i));
  const logJobs: Job[] = [];
  for (let i = 0; i < logFrames.length; i += PER_REQUEST) logJobs.push({ frames: logFrames.slice(i, i + PER_REQUEST), samples: 0 });
  const logRun = await drive(server.url, agents, logJobs, TRANSPORTS);
  const logBodies = logFrames.map((f) => {
    const e = splitFrames(f)[0]!.frame!;
    return { agent: e.header.agentId + 1_000_000_000, batch: e.header.batchId, body: decodeFrameBody(e.header, e.body).body as LogsBody };
  });
  const logCeilingSecs = await copyCeiling(pg.url, "logs (agent_id, batch_id, ts, severity, source, message)", encodeChunks(logBodies, 50, encodeLogs));
  const [lc] = await sql`select count(*)::bigint as n from logs where agent_id < 1000000000`;

  // --clickhouse: ship what PostgreSQL committed into ClickHouse, against a raw insert of the same rows, and time the range reads on both tiers
  const clickhouse = flag("clickhouse")
    ? await runClickhouseBench({ sql, names, historyDays: Number(arg("history-days", quick ? "7" : "30")), maxBatches: Number(arg("ch-batches", "256")), queryRuns: Number(arg("query-runs", quick ? "30" : "100")), log })
    : undefined;

  await server.stop();
  await sql.end();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });

  const samplesPerS = sent / run.seconds;
  const ceiling = sent / ceilingSecs;
  const result = {
    bench: "ingest-e2e",
    ...environment(),
    quick,
    agents: AGENTS,
    metrics_per_agent: METRICS,
    samples_per_frame: samplesPerFrame,
    frames_per_request: PER_REQUEST,
    connections: CONNECTIONS,
    transport: TRANSPORTS.join("+"),
    samples: sent,
    samples_per_s: Math.round(samplesPerS),
    ceiling_samples_per_s: Math.round(ceiling),
    ratio: round(samplesPerS / ceiling),
    registration_samples_per_s: Math.round(regSamples / reg.seconds),
    server_cpu_s_per_million: round(serverCpu / (sent / 1e6)),
    server_rss_mb: Math.round(rss),
    postgres_cpu_s_per_million: round(pgCpu / (sent / 1e6)),
    load_generator_cpu_s_per_million: round(clientCpu / (sent / 1e6)),
    run_seconds: round(run.seconds, 2),
    ack_p50_ms: round(percentile(run.latencies, 50), 1),
    ack_p99_ms: round(percentile(run.latencies, 99), 1),
    lost,
    duplicated,
    rejected: run.rejected,
    reject_codes: run.rejectCodes,
    log_lines: Number(lc!.n),
    log_lines_per_s: Math.round(LOG_LINES / logRun.seconds),
    log_ceiling_lines_per_s: Math.round(LOG_LINES / logCeilingSecs),
    log_ratio: round(LOG_LINES / logRun.seconds / (LOG_LINES / logCeilingSecs)),
    ...(clickhouse ? { clickhouse } : {}),
  };
  console.log(JSON.stringify(result));
  if (lost || duplicated || run.rejected) process.exitCode = 1;
}

await main();
