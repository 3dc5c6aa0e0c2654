/**
 * Fleet simulator against the real server over real TLS (npm run bench:ingest [-- --quick]).
 *
 * 1. Starts a PostgreSQL (embedded, fsync on) and the server as its own process.
 * 2. Enrolls `agents` agents (keys inserted directly: enrollment is not what is measured) and
 *    registers their series with one frame each (reported separately as `registration`).
 *    With `--auth session` (the default, as our agent does) every agent first opens a session
 *    and seals its frames with it; `--auth signature` signs every frame with Ed25519.
 * 3. `--warmup-rounds` (3; 0 with --quick), then `--rounds` (3; 1 with --quick) times: sends
 *    `samples` samples in frames of metrics x stamps samples over `connections` concurrent
 *    connections, split across the chosen transports, each request waiting for its ack
 *    (= committed); and measures the ceiling of the same rows:
 *    raw binary COPY into the same table, in transactions of the same size, on the same number
 *    of connections. The two alternate in order from round to round, each after a CHECKPOINT.
 * 4. Counts the rows in PostgreSQL: lost and duplicated samples over all rounds.
 * 5. A logs workload (200 lines a frame) against its own COPY ceiling.
 * Prints one JSON line last: medians over the measured rounds, and each round under `per_round`
 * (the warm-up rounds under `warmup_per_round`, measured the same way, on both sides).
 */
import { freePort } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { CopyWriter } from "../src/store/postgres/copy-binary.ts";
import { copyInto, encodeLogs, encodeMetricBlocks, LOGS_COPY, METRIC_BLOCKS_COPY } from "../src/store/postgres/writer.ts";
import { sampleCensus } from "../src/store/postgres/metric-blocks.ts";
import { decodeFrameBody, splitFrames } from "../src/ingest/frame/decode.ts";
import type { LogsBody, MetricsBody } from "../src/ingest/frame/frame.ts";
import { logsFrame, metricNames, metricsFrame, newKeys, openSession, openStream, post, type SimAgent } from "../test/support/sim-agent.ts";
import { encodeFrame, packMetrics } from "../src/ingest/frame/encode.ts";
import { FrameKind } from "../src/ingest/frame/frame.ts";
import { arg, countArg, environment, flag, median, percentile, round, rssMb, cpuSeconds, spawnServer, treeCpuSeconds, benchDatabase, metricStorage, compactForBench, workloadArg, packagedSysctl, waitIdle } from "./support.ts";
import { hostUdpReceiveBufferErrors } from "../src/http/udp-buffers.ts";
import { realisticWorkload } from "./workload-realistic.ts";
import { requireVictoria, startVictoria, vmRequests as vmBodies, type VmBody, type VmPath } from "./victoria.ts";
import { runClickhouseBench } from "./clickhouse-tier.ts";

const quick = flag("quick");
const AGENTS = Number(arg("agents", quick ? "200" : "2000"));
const METRICS = Number(arg("metrics", "100"));
const STAMPS = Number(arg("stamps", "10"));
// samples a round: 24 M by default, so that the three warm-up rounds (72 M) cover the server's
// warm-up (its CPU per sample falls over its first 25-40 M samples) and a round lasts seconds, not
// one (with 8 M a round took about a second, and its first and last requests weighed on it)
// (--quick: 4 M, one warm-up round: about 45 s, and 400 points a series, so its bytes per sample
// are not mostly the series dictionary's as with 400 k, which held 30 points a series)
const SAMPLES = Number(arg("samples", quick ? "4000000" : "24000000"));

const PER_REQUEST = Number(arg("frames-per-request", "4"));
const TRANSPORTS = arg("transport", "h2,wss,h3").split(",") as Array<"h1" | "h2" | "h3" | "wss">;
const LOG_LINES = Number(arg("log-lines", quick ? "100000" : "1000000"));
const WRITERS = Number(arg("writers", "3")); // the server's default (SERVERMIND_WRITERS)
const ROUNDS = countArg("rounds", quick ? 1 : 3, 1, 100);
// Rounds run first and left out of the medians (reported under `warmup_per_round` and
// `vm_warmup_per_round`), on both sides: the server's CPU per sample falls by about half over its
// first 25-40 M samples while its memory grows to its working set (docs/architecture.md), and the
// goal compares steady states.
const WARMUP = countArg("warmup-rounds", quick ? 1 : 3, 0, 100);
const AUTH = arg("auth", "session") as "session" | "signature";
if (AUTH !== "session" && AUTH !== "signature") throw new Error(`--auth ${AUTH}: use session or signature`);
const WORKLOAD = workloadArg();
const VM = !flag("no-vm"); // VictoriaMetrics side by side (bench/victoria.ts)
const VM_SENDERS = Number(arg("vm-senders", "8"));
const VM_FRAMES_PER_REQUEST = Number(arg("vm-frames-per-request", "50"));
// As many samples in flight on each side: VictoriaMetrics gets VM_SENDERS requests of
// VM_FRAMES_PER_REQUEST frames at a time (acked once buffered in memory), ServerMind one request
// of PER_REQUEST frames per connection (acked after COMMIT). 8 x 50 / 4 = 100 connections.
const CONNECTIONS = Number(arg("connections", String(Math.ceil((VM_SENDERS * VM_FRAMES_PER_REQUEST) / PER_REQUEST))));
const VM_PATH = arg("vm-path", "remote-write") as VmPath;
if (VM_PATH !== "remote-write" && VM_PATH !== "import") throw new Error(`--vm-path ${VM_PATH}: use remote-write or import`);
if (VM) requireVictoria();
const realistic = WORKLOAD === "realistic" ? realisticWorkload(METRICS) : undefined;

/** A metrics frame of the chosen workload: hash-random values (sim-agent's), or the realistic replay for this agent. */
function workloadFrame(a: SimAgent, endMs: number, names: string[]): Uint8Array {
  if (!realistic) return metricsFrame(a, METRICS, STAMPS, endMs, names);
  const ts = new Float64Array(STAMPS);
  for (let i = 0; i < STAMPS; i++) ts[i] = endMs - (STAMPS - 1 - i) * 10_000;
  return encodeFrame(
    { kind: FrameKind.Metrics, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: endMs, items: METRICS * STAMPS },
    packMetrics({ ts, names, values: realistic.frameValues(a.id, ts) }),
    a.session ?? a.privateKey,
  );
}

/** The same samples as VictoriaMetrics requests (`--vm-path`), VM_FRAMES_PER_REQUEST frames each. */
function vmRequests(frames: Uint8Array[]): Array<string | Uint8Array> {
  const bodies = frames.map((f): VmBody => {
    const e = splitFrames(f)[0]!.frame!;
    const b = decodeFrameBody(e.header, e.body).body as MetricsBody;
    return { host: e.header.agentId, names: b.names, ts: b.ts, values: b.values };
  });
  return vmBodies(bodies, VM_PATH, VM_FRAMES_PER_REQUEST);
}

const log = (s: string) => console.error(`[bench] ${s}`);

/** The bench's bearer for the server's /metrics (its server-side ack times). */
const METRICS_TOKEN = Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url");

async function startServer(dbUrl: string, dataDir: string) {
  const bunFlags = (process.env.BENCH_SERVER_FLAGS ?? "").split(" ").filter(Boolean);
  return spawnServer({ port: await freePort(), bunFlags, env: { DATABASE_URL: dbUrl, SERVERMIND_DATA: dataDir, SERVERMIND_WRITERS: String(WRITERS), SERVERMIND_METRICS_TOKEN: METRICS_TOKEN } });
}

/** The server's `ingest_ack_seconds` buckets by transport (cumulative counts by upper bound in s). */
async function serverAckBuckets(url: string): Promise<Map<string, Map<number, number>>> {
  const r = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` }, tls: { rejectUnauthorized: false } } as RequestInit);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  const out = new Map<string, Map<number, number>>();
  for (const m of (await r.text()).matchAll(/^ingest_ack_seconds_bucket\{transport="([^"]+)",le="([^"]+)"\} (\d+)$/gm)) {
    if (!out.has(m[1]!)) out.set(m[1]!, new Map());
    out.get(m[1]!)!.set(m[2] === "+Inf" ? Infinity : Number(m[2]), Number(m[3]));
  }
  return out;
}

/**
 * Per transport, the upper bound (ms) of the histogram bucket holding the 99th percentile of the
 * server's own ack times between two scrapes: from a request's body in hand to its acks, without
 * the network or the client. Beside the client's p99 it says where a slow tail comes from.
 */
function serverAckP99(before: Map<string, Map<number, number>>, after: Map<string, Map<number, number>>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [transport, buckets] of after) {
    const delta = [...buckets].map(([le, n]) => [le, n - (before.get(transport)?.get(le) ?? 0)] as const).sort((a, b) => a[0] - b[0]);
    const total = delta.at(-1)![1];
    if (total === 0) continue;
    const le = delta.find(([, n]) => n >= 0.99 * total)![0];
    out[transport] = Number.isFinite(le) ? round(le * 1000, 1) : null;
  }
  return out;
}

async function walLsn(sql: ReturnType<typeof createPgClient>): Promise<string> {
  const [r] = await sql<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  return r!.lsn;
}

async function walSince(sql: ReturnType<typeof createPgClient>, lsn: string): Promise<number> {
  const [r] = await sql<{ n: string }[]>`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn}::pg_lsn)::text as n`;
  return Number(r!.n);
}

type Job = { frames: Uint8Array[]; samples: number };

/**
 * WebSocket streams by worker, opened once and kept across rounds, as an agent keeps its stream:
 * each stream's welcome opens a session for its agent, and the server keeps an agent's newest 4,
 * so a stream per round would, from the fifth round on, retire the session the agent's frames
 * are sealed with.
 */
const streams = new Map<number, Awaited<ReturnType<typeof openStream>>>();

/**
 * Opens the WebSocket streams of the workers that have none (the first round's, or one the server
 * closed). A round starts with every stream open: a worker still waiting for its welcome while the
 * others take the jobs would leave its transport out of a short round.
 */
async function openStreams(url: string, agents: SimAgent[], transports: typeof TRANSPORTS): Promise<void> {
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, w) => {
      if (transports[w % transports.length] !== "wss" || streams.has(w)) return;
      const opened = await openStream(url, agents[w % agents.length]!);
      streams.set(w, opened);
      void opened.closed.then(() => streams.get(w) === opened && streams.delete(w)); // the next round opens another
    }),
  );
}

async function drive(url: string, agents: SimAgent[], jobs: Job[], transports: typeof TRANSPORTS) {
  const latencies: number[] = [];
  const byTransport: Record<string, number[]> = {};
  const framesBy: Record<string, number> = {};
  let drainedAt = 0; // when the last job was taken: what follows is the round's tail
  let next = 0;
  let acked = 0;
  let rejected = 0;
  const rejectCodes: Record<string, number> = {};
  const transportErrors: Record<string, number> = {};
  const transportOf = (w: number) => transports[w % transports.length]!;
  await openStreams(url, agents, transports);
  const worker = async (transport: (typeof TRANSPORTS)[number], w: number) => {
    const stream = transport === "wss" ? streams.get(w) : undefined;
    if (transport === "wss" && !stream) throw new Error(`WebSocket stream ${w} closed before its round started`);
    let failures = 0;
    for (;;) {
      const i = next++;
      if (i >= jobs.length) break;
      if (i === jobs.length - 1) drainedAt = performance.now();
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
          let r: Awaited<ReturnType<typeof post>>;
          try {
            r = await post(url, job.frames, transport === "h1" ? "http1.1" : transport === "h2" ? "http2" : "http3");
          } catch (e) {
            // a request the transport lost (a stream reset): resent as an agent resends its spool,
            // with the same batch ids, so it is stored once; counted under transport_errors
            const k = `${transport}:${(e as { code?: string }).code ?? (e instanceof Error ? e.message : String(e))}`;
            transportErrors[k] = (transportErrors[k] ?? 0) + 1;
            if (++failures > 20) throw e;
            await Bun.sleep(50);
            continue;
          }
          failures = 0;
          acks = r.body.acks ?? [];
          rejects = r.body.rejects ?? [];
          if (r.status === 503) retryAfter = Number(r.retryAfter ?? 1) / 5;
        }
        if (retryAfter > 0) {
          await Bun.sleep(retryAfter * 1000);
          continue; // resend the same frames: the bench's spool
        }
        const ms = performance.now() - t;
        latencies.push(ms);
        (byTransport[transport] ??= []).push(ms);
        framesBy[transport] = (framesBy[transport] ?? 0) + job.frames.length;
        acked += acks.filter((a) => a.status === "ok" || a.status === "dup").length;
        rejected += rejects.length;
        for (const r of rejects) rejectCodes[r.code] = (rejectCodes[r.code] ?? 0) + 1;
        break;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(transportOf(w), w)));
  const t1 = performance.now();
  for (const v of Object.values(byTransport)) v.sort((a, b) => a - b);
  const byPercentile = (p: number) => Object.fromEntries(Object.entries(byTransport).map(([k, v]) => [k, round(percentile(v, p), 1)]));
  const p99 = byPercentile(99);
  const p50 = byPercentile(50);
  const total = Object.values(framesBy).reduce((a, b) => a + b, 0);
  const share = Object.fromEntries(Object.entries(framesBy).map(([k, v]) => [k, round(v / total, 3)]));
  return { seconds: (t1 - t0) / 1000, tailSeconds: (t1 - drainedAt) / 1000, p99ByTransport: p99, p50ByTransport: p50, shareByTransport: share, latencies: latencies.sort((a, b) => a - b), acked, rejected, rejectCodes, transportErrors };
}

/**
 * Raw COPY of pre-encoded row sets, `WRITERS` transactions at a time. With `pgPid`, also the
 * CPU PostgreSQL spent meanwhile, read before the connections close (their backends exit).
 */
async function copyCeiling(url: string, table: string, chunks: Uint8Array[], pgPid?: number): Promise<{ secs: number; pgCpu: number }> {
  const sql = createPgClient(url, WRITERS);
  await sql`select 1`; // connected before the clock starts
  const pg0 = pgPid ? treeCpuSeconds(pgPid) : 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      for (;;) {
        const i = next++;
        if (i >= chunks.length) break;
        // the writer's own COPY: a refused COPY fails here instead of hanging (src/store/postgres/writer.ts)
        await sql.begin((tx) => copyInto(tx, table, chunks[i]!));
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const pgCpu = pgPid ? treeCpuSeconds(pgPid) - pg0 : 0;
  await sql.end();
  return { secs, pgCpu };
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
  const db = await benchDatabase({ prefix: "servermind-bench-" });
  const { dir, sql, pg, pgPid } = db;

  log(`enrolling ${AGENTS} agents`);
  const agents: SimAgent[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const k = newKeys();
    const [r] = await sql`insert into agents (hostname, public_key) values (${`bench-${i}`}, ${Buffer.from(k.publicKeyB64, "base64")}) returning id`;
    agents.push({ id: Number(r!.id), ...k, seq: 0, batch: 0 });
  }
  // the kernel settings the server package installs, before the server opens its QUIC socket
  const sysctl = packagedSysctl(!flag("kernel-defaults"));
  const udpErrors0 = hostUdpReceiveBufferErrors();
  const server = await startServer(pg.url, dir);
  log(`server pid ${server.pid} at ${server.url}`);

  // Sessions: every agent opens its own, as our agent does (docs/protocol.md 3.5), 64 at a time.
  let sessionsPerS: number | undefined;
  if (AUTH === "session") {
    const t = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      while (next < agents.length) await openSession(server.url, agents[next++]!, "http2");
    }));
    sessionsPerS = agents.length / ((performance.now() - t) / 1000);
    log(`${agents.length} sessions opened at ${Math.round(sessionsPerS)}/s`);
  }

  const names = realistic ? realistic.names : metricNames(METRICS);
  if (realistic) log(`realistic workload: ${JSON.stringify(realistic.mix())} of ${METRICS} series per agent, a ${realistic.cycle}-tick recording`);
  const vm = VM ? await startVictoria(log) : undefined;
  const samplesPerFrame = METRICS * STAMPS;
  // every sample in the next hour, which stays open while the bench runs: the server's rollup job
  // (which also compacts closed hours) does not run on them meanwhile, so the rounds measure ingest
  // alone; the job's own cost is measured after the rounds (compactForBench)
  const base = Math.ceil(Date.now() / 3_600_000) * 3_600_000 + 60_000;
  // Registration: the first frame of every agent creates its series.
  const regJobs: Job[] = [];
  for (let i = 0; i < agents.length; i += PER_REQUEST) {
    regJobs.push({ frames: agents.slice(i, i + PER_REQUEST).map((a) => workloadFrame(a, base, names)), samples: 0 });
  }
  const reg = await drive(server.url, agents, regJobs, ["h2"]);
  const regSamples = agents.length * samplesPerFrame;
  log(`registration: ${round(regSamples / reg.seconds / 1e6)}M samples/s`);
  // VictoriaMetrics, the same first frames: this pass creates its series
  let vmCreate: { seconds: number; cpuSeconds: number } | undefined;
  if (vm) {
    vmCreate = await vm.ingest(vmRequests(regJobs.flatMap((j) => j.frames)), VM_SENDERS);
    await vm.settle();
    log(`victoria-metrics, creating series: ${round(regSamples / vmCreate.seconds / 1e6)}M samples/s`);
  }

  const frameCount = Math.ceil(SAMPLES / samplesPerFrame);
  const sent = frameCount * samplesPerFrame;
  const ids = Int32Array.from(names, (_, i) => i + 1);
  const rowsPerBatch = Number(process.env.SERVERMIND_BATCH_MAX_ROWS ?? 20_000);
  let stamp = 0; // rounds of frames built so far: each round gets later timestamps
  const rounds: Array<{ samples_per_s: number; ceiling_samples_per_s: number; ratio: number; server_cpu_s_per_million: number; postgres_cpu_s_per_million: number; ceiling_postgres_cpu_s_per_million: number; load_generator_cpu_s_per_million: number; ack_p50_ms: number; ack_p99_ms: number; tail_s: number; ack_p50_ms_by_transport: Record<string, number>; ack_p99_ms_by_transport: Record<string, number>; share_by_transport: Record<string, number>; wal_bytes_per_sample: number; ceiling_wal_bytes_per_sample: number; server_ack_p99_ms_at_most_by_transport: Record<string, number | null>; udp_rcvbuf_errors: number | null; transport_errors: Record<string, number> }> = [];
  const latencies: number[] = [];
  let rejected = 0;
  const rejectCodes: Record<string, number> = {};
  // requests a transport lost (resent, same batch ids), by transport and error, over every round
  const transportErrors: Record<string, number> = {};
  let ceilingOffset = 1_000_000_000;
  let ceilingBytes = 0; // what the ceiling's rows added to the metric tables: not ServerMind's
  const vmRounds: Array<{ samples_per_s: number; cpu_s_per_million: number; deferred_cpu_s_per_million: number; sender_cpu_s_per_million: number; settle_s: number }> = [];

  // Each round: the end-to-end run and the raw-COPY ceiling of the same rows, in alternating
  // order (a checkpoint first, so neither pays for the other's dirty pages).
  const warmRounds: typeof rounds = [];
  const vmWarmRounds: typeof vmRounds = [];
  for (let r = 0; r < WARMUP + ROUNDS; r++) {
    const warm = r < WARMUP;
    const name = warm ? `warm-up round ${r + 1}` : `round ${r - WARMUP + 1}`;
    log(`${name}/${warm ? WARMUP : ROUNDS}: building ${frameCount} frames`);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < frameCount; i++) {
      const a = agents[i % agents.length]!;
      if (i % agents.length === 0) stamp++;
      frames.push(workloadFrame(a, base + stamp * STAMPS * 10_000, names));
    }
    const jobs: Job[] = [];
    for (let i = 0; i < frames.length; i += PER_REQUEST) jobs.push({ frames: frames.slice(i, i + PER_REQUEST), samples: 0 });
    const bodies = frames.map((f) => {
      const e = splitFrames(f)[0]!.frame!;
      return { agent: e.header.agentId + ceilingOffset, batch: e.header.batchId, body: decodeFrameBody(e.header, e.body).body as MetricsBody };
    });
    ceilingOffset += 1_000_000;
    const chunks = encodeChunks(bodies, Math.max(1, Math.floor(rowsPerBatch / Math.ceil(METRICS / 10))), (w, agent, batch, b: MetricsBody) => encodeMetricBlocks(w, agent, batch, b, ids));

    // Before each timed phase: this process's garbage from building the round (frames, COPY rows,
    // VictoriaMetrics' requests) collected now, not during the phase (before, whichever phase
    // came right after the build paid for it, and the rounds alternated by ~15 %), and a
    // checkpoint, so that no phase pays for another's dirty pages.
    const beforePhase = async () => {
      Bun.gc(true);
      await sql`checkpoint`;
    };
    const e2e = async () => {
      await openStreams(server.url, agents, TRANSPORTS); // before the clocks start (drive opens any that close meanwhile)
      await beforePhase();
      const cpu0 = cpuSeconds(server.pid);
      const pg0 = treeCpuSeconds(pgPid);
      const client0 = process.cpuUsage();
      const udp0 = hostUdpReceiveBufferErrors();
      const acks0 = await serverAckBuckets(server.url);
      const wal0 = await walLsn(sql);
      log(`${name}: sending ${sent} samples over ${CONNECTIONS} connections (${TRANSPORTS.join(", ")}, ${AUTH})`);
      const run = await drive(server.url, agents, jobs, TRANSPORTS);
      const walBytes = await walSince(sql, wal0);
      const serverP99 = serverAckP99(acks0, await serverAckBuckets(server.url));
      const u = process.cpuUsage(client0);
      if (!warm) latencies.push(...run.latencies);
      rejected += run.rejected;
      for (const [k, v] of Object.entries(run.rejectCodes)) rejectCodes[k] = (rejectCodes[k] ?? 0) + v;
      for (const [k, v] of Object.entries(run.transportErrors)) transportErrors[k] = (transportErrors[k] ?? 0) + v;
      const udp1 = hostUdpReceiveBufferErrors();
      return { seconds: run.seconds, serverCpu: cpuSeconds(server.pid) - cpu0, pgCpu: treeCpuSeconds(pgPid) - pg0, clientCpu: (u.user + u.system) / 1e6, latencies: run.latencies, tailSeconds: run.tailSeconds, p99ByTransport: run.p99ByTransport, p50ByTransport: run.p50ByTransport, shareByTransport: run.shareByTransport, walBytes, serverP99, udpErrors: udp0 === undefined || udp1 === undefined ? null : udp1 - udp0, transportErrors: run.transportErrors };
    };
    let ceilingPgCpu = 0;
    let ceilingWal = 0;
    const ceiling = async () => {
      await beforePhase();
      log(`${name}: measuring the COPY ceiling`);
      const size0 = await metricStorage(sql);
      const wal0 = await walLsn(sql);
      const c = await copyCeiling(pg.url, METRIC_BLOCKS_COPY, chunks, pgPid);
      ceilingWal = await walSince(sql, wal0);
      ceilingBytes += (await metricStorage(sql)).bytes - size0.bytes;
      ceilingPgCpu = c.pgCpu;
      return c.secs;
    };
    let run: Awaited<ReturnType<typeof e2e>>;
    let ceilingSecs: number;
    if (r % 2 === 0) {
      run = await e2e();
      ceilingSecs = await ceiling();
    } else {
      ceilingSecs = await ceiling();
      run = await e2e();
    }
    const perM = sent / 1e6;
    (warm ? warmRounds : rounds).push({
      samples_per_s: Math.round(sent / run.seconds),
      ceiling_samples_per_s: Math.round(sent / ceilingSecs),
      ratio: round(ceilingSecs / run.seconds),
      server_cpu_s_per_million: round(run.serverCpu / perM),
      postgres_cpu_s_per_million: round(run.pgCpu / perM),
      ceiling_postgres_cpu_s_per_million: round(ceilingPgCpu / perM),
      load_generator_cpu_s_per_million: round(run.clientCpu / perM),
      ack_p50_ms: round(percentile(run.latencies, 50), 1),
      ack_p99_ms: round(percentile(run.latencies, 99), 1),
      // from the last request sent to its ack, the round's wall time spent waiting on stragglers
      tail_s: round(run.tailSeconds, 2),
      ack_p50_ms_by_transport: run.p50ByTransport,
      ack_p99_ms_by_transport: run.p99ByTransport,
      // the share of the round's samples each transport carried (its workers are equal in number)
      share_by_transport: run.shareByTransport,
      // WAL PostgreSQL wrote during the phase, per sample: full-page images after the checkpoint included
      wal_bytes_per_sample: round(run.walBytes / sent, 2),
      ceiling_wal_bytes_per_sample: round(ceilingWal / sent, 2),
      // the same seen by the server (the bucket of its ingest_ack_seconds holding p99): a tail the
      // client sees and the server does not is the transport's or the client's
      server_ack_p99_ms_at_most_by_transport: run.serverP99,
      // datagrams the host dropped for a full UDP receive buffer while this round sent (HTTP/3)
      udp_rcvbuf_errors: run.udpErrors,
      transport_errors: run.transportErrors,
    });
    log(`${name}: ${JSON.stringify((warm ? warmRounds : rounds).at(-1))}`);
    if (vm) {
      // the same samples into VictoriaMetrics, its series existing already (steady state)
      const requests = vmRequests(frames);
      await beforePhase();
      // and ours done too (autovacuum, the server's timers), so VictoriaMetrics pays for neither
      await waitIdle(() => cpuSeconds(server.pid) + treeCpuSeconds(pgPid));
      // its sender is this process, as ours is (the requests are built above, as our frames are)
      const sender0 = process.cpuUsage();
      const v = await vm.ingest(requests, VM_SENDERS);
      const sender = process.cpuUsage(sender0);
      // what it deferred past its acks, done before the next round measures ServerMind
      const later = await vm.settle();
      (warm ? vmWarmRounds : vmRounds).push({ samples_per_s: Math.round(sent / v.seconds), cpu_s_per_million: round(v.cpuSeconds / (sent / 1e6)), deferred_cpu_s_per_million: round(later.cpuSeconds / (sent / 1e6)), sender_cpu_s_per_million: round((sender.user + sender.system) / 1e6 / (sent / 1e6)), settle_s: round(later.seconds, 1) });
      log(`${name}: victoria-metrics ${JSON.stringify((warm ? vmWarmRounds : vmRounds).at(-1))}`);
    }
  }
  const rss = rssMb(server.pid);
  // ServerMind's bytes: the metric tables (every partition, index and TOAST) less what the ceiling's rows added
  const storage = await metricStorage(sql);
  const smSamples = regSamples + sent * (WARMUP + ROUNDS);
  log(`metric relations counted: ${JSON.stringify(storage.tables)}; ceiling rows' share ${ceilingBytes} bytes subtracted`);
  let vmResult: Record<string, unknown> = {};
  if (vm) {
    log("victoria-metrics: flush and forced merge");
    await vm.compact();
    const vmRows = await vm.rows();
    const vmBytes = vm.diskBytes();
  const vmSplit = vm.diskSplit();
    const vmSps = median(vmRounds.map((x) => x.samples_per_s));
    vmResult = {
      vm_samples_per_s: vmSps,
      vm_create_samples_per_s: Math.round(regSamples / vmCreate!.seconds),
      vm_cpu_s_per_million: median(vmRounds.map((x) => x.cpu_s_per_million)),
      vm_deferred_cpu_s_per_million: median(vmRounds.map((x) => x.deferred_cpu_s_per_million)),
      vm_sender_cpu_s_per_million: median(vmRounds.map((x) => x.sender_cpu_s_per_million)),
      vm_bytes_per_sample: round(vmBytes / smSamples, 2),
    vm_index_bytes_per_sample: round(vmSplit.index / smSamples, 2),
      vm_samples_stored: vmRows,
      vm_per_round: vmRounds,
      vm_warmup_per_round: vmWarmRounds,
      vm_import: { path: VM_PATH === "import" ? "/api/v1/import" : "/api/v1/write", senders: VM_SENDERS, frames_per_request: VM_FRAMES_PER_REQUEST },
    };
    if (vmRows !== smSamples) log(`victoria-metrics holds ${vmRows} samples, ${smSamples} were sent`);
    await vm.stop();
  }

  // compressed blocks are counted by decoding them (src/store/postgres/metric-blocks.ts)
  const census = await sampleCensus(sql, 1_000_000_000);
  const stored = census.stored - regSamples;
  const duplicated = census.duplicated;
  const lost = Math.max(0, sent * (WARMUP + ROUNDS) - (stored - duplicated));

  // Logs workload
  log(`logs: ${LOG_LINES} lines in frames of 200`);
  const logFrames: Uint8Array[] = [];
  for (let i = 0; i < LOG_LINES / 200; i++) logFrames.push(logsFrame(agents[i % agents.length]!, 200, base + i));
  const logJobs: Job[] = [];
  for (let i = 0; i < logFrames.length; i += PER_REQUEST) logJobs.push({ frames: logFrames.slice(i, i + PER_REQUEST), samples: 0 });
  await sql`checkpoint`;
  const logRun = await drive(server.url, agents, logJobs, TRANSPORTS);
  for (const st of streams.values()) st.close();
  const logBodies = logFrames.map((f) => {
    const e = splitFrames(f)[0]!.frame!;
    return { agent: e.header.agentId + 1_000_000_000, batch: e.header.batchId, body: decodeFrameBody(e.header, e.body).body as LogsBody };
  });
  await sql`checkpoint`;
  const logCeilingSecs = (await copyCeiling(pg.url, LOGS_COPY, encodeChunks(logBodies, 50, encodeLogs))).secs;
  const [lc] = await sql`select count(*)::bigint as n from logs where agent_id < 1000000000`;

  // --clickhouse: ship what PostgreSQL committed into ClickHouse, against a raw insert of the same rows, and time the range reads on both tiers
  const clickhouse = flag("clickhouse")
    ? await runClickhouseBench({ sql, names, historyDays: Number(arg("history-days", quick ? "7" : "30")), maxBatches: Number(arg("ch-batches", "256")), queryRuns: Number(arg("query-runs", quick ? "30" : "100")), log })
    : undefined;

  // what the store keeps once the hours have closed: the ceiling's rows (agents >= 1e9) removed,
  // then the rollup job, which compacts every hour's raw rows (the server stopped first, so its
  // own job does not race this one)
  await server.stop();
  const udpErrors1 = hostUdpReceiveBufferErrors();
  sysctl.restore();
  await sql`delete from metric_blocks where agent_id >= 1000000000`;
  await sql`delete from metric_rollup_dirty where agent_id >= 1000000000`;
  const compaction = await compactForBench(sql, log);
  const compacted = await metricStorage(sql);
  log(`metric relations counted after the rollup job and compaction: ${JSON.stringify(compacted.tables)}`);
  await db.close();

  type Round = (typeof rounds)[number];
  // the rounds' plain numbers, the fields that have a median
  type NumberField = { [K in keyof Round]: Round[K] extends number ? K : never }[keyof Round];
  const med = (k: NumberField) => median(rounds.map((x) => x[k]));
  latencies.sort((a, b) => a - b);
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
    auth: AUTH,
    workload: WORKLOAD,
    samples: sent,
    rounds: ROUNDS,
    warmup_rounds: WARMUP,
    // medians over the rounds; each round's own numbers are under `per_round`
    samples_per_s: med("samples_per_s"),
    ceiling_samples_per_s: med("ceiling_samples_per_s"),
    ratio: med("ratio"),
    registration_samples_per_s: Math.round(regSamples / reg.seconds),
    ...(sessionsPerS ? { sessions_opened_per_s: Math.round(sessionsPerS) } : {}),
    server_cpu_s_per_million: med("server_cpu_s_per_million"),
    server_rss_mb: Math.round(rss),
    postgres_cpu_s_per_million: med("postgres_cpu_s_per_million"),
    // PostgreSQL's CPU for the same rows by raw COPY: what the end-to-end path adds on its side
    ceiling_postgres_cpu_s_per_million: med("ceiling_postgres_cpu_s_per_million"),
    load_generator_cpu_s_per_million: med("load_generator_cpu_s_per_million"),
    wal_bytes_per_sample: med("wal_bytes_per_sample"),
    ceiling_wal_bytes_per_sample: med("ceiling_wal_bytes_per_sample"),
    ack_p50_ms: round(percentile(latencies, 50), 1),
    ack_p99_ms: round(percentile(latencies, 99), 1),
    // the UDP receive buffer the server's HTTP/3 socket had (the package's setting when the bench could apply it) and the host's drops while the server ran
    udp_rmem_default: sysctl.settings["net.core.rmem_default"] ?? null,
    udp_rcvbuf_errors: udpErrors0 === undefined || udpErrors1 === undefined ? null : udpErrors1 - udpErrors0,
    lost,
    duplicated,
    rejected,
    reject_codes: rejectCodes,
    transport_errors: transportErrors,
    per_round: rounds,
    warmup_per_round: warmRounds,
    log_lines: Number(lc!.n),
    log_lines_per_s: Math.round(LOG_LINES / logRun.seconds),
    log_ceiling_lines_per_s: Math.round(LOG_LINES / logCeilingSecs),
    log_ratio: round(LOG_LINES / logRun.seconds / (LOG_LINES / logCeilingSecs)),
    ...(clickhouse ? { clickhouse } : {}),
    // on disk, registration + every round (ServerMind: the metric tables after the rollup job compacted them, and as ingested less the ceiling's rows; VictoriaMetrics: after a forced merge)
    // samples per series on disk: bytes per sample fall as series get longer (per-series costs spread thinner)
    points_per_series: round(smSamples / (AGENTS * METRICS), 1),
    bytes_per_sample: round(compacted.bytes / smSamples, 2),
    bytes_per_sample_uncompacted: round((storage.bytes - ceilingBytes) / smSamples, 2),
    rollup_bytes_per_sample: round(compacted.rollupBytes / smSamples, 2),
    metric_relations: compacted.tables,
    compaction,
    ...vmResult,
    ...(vm ? { vs_vm: round(med("samples_per_s") / (vmResult.vm_samples_per_s as number)) } : {}),
  };
  console.log(JSON.stringify(result));
  if (lost || duplicated || rejected) process.exitCode = 1;
}

await main();
