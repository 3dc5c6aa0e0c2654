/**
 * A fleet at full rate while slow and unauthenticated clients attack (npm run bench:attack
 * [-- --quick]). Everything on 127.0.0.1 (attackers on other 127.0.0.x addresses), bounded in time.
 *
 * 1. Starts an embedded PostgreSQL and the server as its own process, with its default limits.
 * 2. Inserts `agents` agents, opens a session for each (frames sealed, as our agent does) and
 *    registers their series.
 * 3. Rounds alternate: without attack, then with (`--rounds`, 4; 2 with --quick). In each the
 *    fleet sends `samples` samples of 1,000-sample frames over `connections` connections
 *    (HTTP/2 and WebSocket), each request waiting for its ack. During an attack round a child
 *    process (this file with --attacker) keeps up, reconnecting whatever the server cuts:
 *    - `slowloris` POSTs to /api/v1/ingest declaring 10 MB (`--slowloris-bytes`; 64 KiB or less
 *      gets a body the server reads whole, with the time its declared length allows) and
 *      sending a byte every 2 s;
 *    - `silent` WebSockets that never say hello and ping every second;
 *    - `forgers` connections (one address each) sending, 20 ms after each answer, requests of
 *      8 frames naming a real agent but signed with another key;
 *    - `capped` silent WebSockets from one address, beyond the per-address cap.
 *    The attack starts `--warmup` seconds before the fleet's round so it is in place.
 * 4. Reports the fleet's rate without and with the attack (medians) and the ratio (goal >= 0.9):
 *    the median over pairs of each attack round and the round just before it (the machine's
 *    speed drifts between distant rounds), with the ratio of the two medians beside it;
 *    what the attackers got (408s, 4408 closes, 401s, 429s), server CPU and RSS; one JSON line last.
 */
import { spawn } from "node:child_process";
import { freePort } from "../src/store/postgres/embedded.ts";
import { metricNames, metricsFrame, newKeys, openSession, openStream, post, type SimAgent } from "../test/support/sim-agent.ts";
import { repeatPost, silentSocket, slowPost } from "../test/support/raw-clients.ts";
import { arg, cpuSeconds, environment, flag, median, percentile, round, rssMb, spawnServer, benchDatabase } from "./support.ts";

/** The server this bench starts scrapes its own /metrics with this token. */
const METRICS_TOKEN = "bench-attack-metrics";

const quick = flag("quick");
const log = (s: string) => console.error(`[attack] ${s}`);

// ---------------------------------------------------------------- the attacker child process

async function attacker(): Promise<void> {
  const port = Number(arg("port", "0"));
  const seconds = Number(arg("seconds", "30"));
  const agentId = Number(arg("agent", "1"));
  const slowloris = Number(arg("slowloris", "256"));
  const slowlorisBytes = Number(arg("slowloris-bytes", "10000000"));
  const silent = Number(arg("silent", "256"));
  const forgers = Number(arg("forgers", "16"));
  const capped = Number(arg("capped", "160"));
  const end = Date.now() + seconds * 1000;
  const stats: Record<string, number> = {};
  const count = (k: string) => (stats[k] = (stats[k] ?? 0) + 1);
  // 4 attackers per address from 127.0.0.2 on, so the per-address cap is not what stops them
  const address = (i: number) => `127.0.${1 + Math.floor(i / 4 / 250)}.${2 + (Math.floor(i / 4) % 250)}`;
  const left = () => end - Date.now();

  const loops: Promise<void>[] = [];
  for (let i = 0; i < slowloris; i++) {
    loops.push((async () => {
      while (left() > 500) {
        const r = await slowPost({ port, localAddress: address(i), contentLength: slowlorisBytes, everyMs: 2000, maxMs: left() }).done;
        count(r.gaveUp ? "slowloris_held_to_end" : `slowloris_${r.status}`);
        if (!r.gaveUp && r.status === 0) await Bun.sleep(200);
      }
    })());
  }
  for (let i = 0; i < silent; i++) {
    loops.push((async () => {
      while (left() > 500) {
        const r = await silentSocket({ port, localAddress: address(slowloris + i), pingEveryMs: 1000, maxMs: left() }).done;
        count(r.gaveUp ? "silent_held_to_end" : r.status === 101 ? `silent_closed_${r.closeCode}` : `silent_${r.status}`);
        if (!r.gaveUp && r.status !== 101) await Bun.sleep(200);
      }
    })());
  }
  for (let i = 0; i < capped; i++) {
    loops.push((async () => {
      while (left() > 500) {
        const r = await silentSocket({ port, localAddress: "127.0.0.250", pingEveryMs: 1000, maxMs: left() }).done;
        count(r.gaveUp ? "capped_held_to_end" : r.status === 101 ? `capped_closed_${r.closeCode}` : `capped_${r.status}`);
        if (!r.gaveUp) await Bun.sleep(r.status === 429 ? 2000 : 200);
      }
    })());
  }
  for (let i = 0; i < forgers; i++) {
    loops.push((async () => {
      const forger: SimAgent = { id: agentId, ...newKeys(), seq: 1e9 + i * 1e6, batch: 1e9 };
      // signed once, sent again and again (each costs the server signature checks all the same)
      const body = Buffer.concat(Array.from({ length: 8 }, () => metricsFrame(forger, 10, 10, Date.now())));
      const got = await repeatPost({ port, localAddress: `127.0.3.${2 + i}`, path: "/api/v1/ingest", body, pauseMs: 20, maxMs: left() });
      for (const [status, n] of Object.entries(got)) stats[`forged_${status}`] = (stats[`forged_${status}`] ?? 0) + n;
    })());
  }
  await Promise.all(loops);
  console.log(JSON.stringify(stats));
}

// ---------------------------------------------------------------- the fleet and the rounds

const AGENTS = Number(arg("agents", quick ? "200" : "1000"));
const METRICS = 100;
const STAMPS = 10;
const SAMPLES = Number(arg("samples", quick ? "2000000" : "4000000"));
const CONNECTIONS = Number(arg("connections", "64"));
const PER_REQUEST = 4;
const ROUNDS = Number(arg("rounds", quick ? "4" : "6"));
const WARMUP_S = Number(arg("warmup", "4"));
const ATTACK = {
  slowloris: Number(arg("slowloris", quick ? "128" : "256")),
  "slowloris-bytes": Number(arg("slowloris-bytes", "10000000")),
  silent: Number(arg("silent", quick ? "128" : "256")),
  forgers: Number(arg("forgers", quick ? "8" : "16")),
  capped: Number(arg("capped", quick ? "150" : "160")),
};

async function startServer(dbUrl: string, dataDir: string) {
  // --server-dir runs another checkout's server (e.g. the code before a change) against the same attack
  return spawnServer({
    port: await freePort(),
    cwd: arg("server-dir", "."),
    env: { DATABASE_URL: dbUrl, SERVERMIND_DATA: dataDir, SERVERMIND_HTTP3: "false", SERVERMIND_METRICS_TOKEN: METRICS_TOKEN },
  });
}

function startAttack(port: number, seconds: number, agentId: number) {
  const args = ["bench/attack.bench.ts", "--attacker", "--port", String(port), "--seconds", String(seconds), "--agent", String(agentId)];
  for (const [k, v] of Object.entries(ATTACK)) args.push(`--${k}`, String(v));
  // At the lowest priority: real attackers bring their own machines, so theirs should not be
  // the CPU the fleet and the server lose on this shared one (their CPU is reported).
  const child = spawn("nice", ["-n", "19", process.execPath, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const done = new Promise<Record<string, number>>((resolve) => child.once("exit", () => resolve(JSON.parse(out.trim().split("\n").at(-1) || "{}"))));
  return { done, cpu: () => cpuSeconds(child.pid!), stop: () => child.kill("SIGTERM") };
}

async function drive(url: string, agents: SimAgent[], jobs: Uint8Array[][]) {
  let next = 0;
  let busy = 0;
  let failed = 0;
  const latencies: number[] = [];
  const worker = async (w: number) => {
    const stream = w % 2 ? await openStream(url, agents[w % agents.length]!) : undefined;
    for (;;) {
      const i = next++;
      if (i >= jobs.length) break;
      for (let attempt = 0; ; attempt++) {
        const t = performance.now();
        let again = false;
        if (stream) {
          const m = await stream.send(jobs[i]!);
          again = (m.rejects ?? []).some((r: { code: string }) => r.code === "busy");
        } else {
          const r = await post(url, jobs[i]!, "http2").catch(() => ({ status: 0, body: {}, retryAfter: null }));
          again = r.status === 503 || r.status === 0;
          if (r.status === 0) failed++;
        }
        if (again && attempt < 50) {
          busy++;
          await Bun.sleep(200);
          continue;
        }
        latencies.push(performance.now() - t);
        break;
      }
    }
    stream?.close();
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)));
  return { seconds: (performance.now() - t0) / 1000, busy, failed, latencies: latencies.sort((a, b) => a - b) };
}

async function main() {
  const db = await benchDatabase({ prefix: "servermind-attack-" });
  const { dir, sql, pg } = db;
  const agents: SimAgent[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const k = newKeys();
    const [r] = await sql`insert into agents (hostname, public_key) values (${`attack-${i}`}, ${Buffer.from(k.publicKeyB64, "base64")}) returning id`;
    agents.push({ id: Number(r!.id), ...k, seq: 0, batch: 0 });
  }
  const server = await startServer(pg.url, dir);
  log(`server pid ${server.pid} at ${server.url}`);
  let n = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (n < agents.length) await openSession(server.url, agents[n++]!, "http2");
  }));
  const names = metricNames(METRICS);
  const base = Date.now() - 3_600_000;
  const frameCount = Math.ceil(SAMPLES / (METRICS * STAMPS));
  let stamp = 0;
  const build = () => {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < frameCount; i++) {
      if (i % agents.length === 0) stamp++;
      frames.push(metricsFrame(agents[i % agents.length]!, METRICS, STAMPS, base + stamp * STAMPS * 10_000, names));
    }
    const jobs: Uint8Array[][] = [];
    for (let i = 0; i < frames.length; i += PER_REQUEST) jobs.push(frames.slice(i, i + PER_REQUEST));
    return jobs;
  };
  await drive(server.url, agents, build()); // registration and warm-up, not counted

  const rounds: Array<{ attack: boolean; samples_per_s: number; server_cores: number; attacker_cores: number; busy_retries: number; failed: number; ack_p50_ms: number; ack_p99_ms: number }> = [];
  const attackStats: Record<string, number> = {};
  const sent = frameCount * METRICS * STAMPS;
  for (let r = 0; r < ROUNDS; r++) {
    const underAttack = r % 2 === 1;
    const jobs = build();
    await sql`checkpoint`;
    let attack: ReturnType<typeof startAttack> | undefined;
    if (underAttack) {
      // long enough to outlast the round; killed once the round is over
      attack = startAttack(server.port, WARMUP_S + 120, agents[0]!.id);
      log(`round ${r + 1}: attack (${JSON.stringify(ATTACK)}) starting, ${WARMUP_S} s before the fleet`);
      await Bun.sleep(WARMUP_S * 1000);
    }
    const cpu0 = cpuSeconds(server.pid);
    const attackCpu0 = attack?.cpu() ?? 0;
    const run = await drive(server.url, agents, jobs);
    const cores = (cpuSeconds(server.pid) - cpu0) / run.seconds;
    const attackerCores = attack ? (attack.cpu() - attackCpu0) / run.seconds : 0;
    if (attack) {
      attack.stop();
      await attack.done.catch(() => undefined);
    }
    rounds.push({
      attack: underAttack,
      samples_per_s: Math.round(sent / run.seconds),
      server_cores: round(cores, 2),
      attacker_cores: round(attackerCores, 2),
      busy_retries: run.busy,
      failed: run.failed,
      ack_p50_ms: round(percentile(run.latencies, 50), 1),
      ack_p99_ms: round(percentile(run.latencies, 99), 1),
    });
    log(`round ${r + 1}: ${JSON.stringify(rounds.at(-1))}`);
    if (underAttack) await Bun.sleep(2000); // let the server close what the attack left
  }

  // A last, timed attack alone, to see what the attackers get (the child reports when it ends)
  log(`attack alone for ${quick ? 15 : 30} s, to count what the attackers get`);
  const alone = startAttack(server.port, quick ? 15 : 30, agents[0]!.id);
  const cpu0 = cpuSeconds(server.pid);
  const t0 = performance.now();
  Object.assign(attackStats, await alone.done);
  const attackAloneCores = (cpuSeconds(server.pid) - cpu0) / ((performance.now() - t0) / 1000);
  const metricsText = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` }, tls: { rejectUnauthorized: false } } as RequestInit)).text();
  const serverCounters = Object.fromEntries(
    metricsText.split("\n").filter((l) => /^(ingest_client_timeouts_total|ingest_unauthenticated_refused_total|ingest_unauthenticated_cut_total)\{/.test(l)).map((l) => {
      const i = l.lastIndexOf(" ");
      return [l.slice(0, i), Number(l.slice(i + 1))];
    }),
  );
  const rss = rssMb(server.pid);
  await server.stop();
  await db.close();

  const without = median(rounds.filter((x) => !x.attack).map((x) => x.samples_per_s));
  const withAttack = median(rounds.filter((x) => x.attack).map((x) => x.samples_per_s));
  // each attack round against the round just before it: this machine's speed drifts more between distant rounds
  const pairRatios = rounds.flatMap((x, i) => (x.attack && i > 0 ? [x.samples_per_s / rounds[i - 1]!.samples_per_s] : []));
  console.log(JSON.stringify({
    bench: "attack",
    ...environment(),
    quick,
    agents: AGENTS,
    connections: CONNECTIONS,
    transport: "h2+wss",
    samples_per_round: sent,
    attack: ATTACK,
    samples_per_s_without_attack: without,
    samples_per_s_under_attack: withAttack,
    // median over the pairs (attack round / the round before it)
    ratio: round(median(pairRatios)),
    pair_ratios: pairRatios.map((r) => round(r)),
    ratio_of_medians: round(withAttack / without),
    goal: 0.9,
    attack_alone_server_cores: round(attackAloneCores, 2),
    attackers_got: attackStats,
    server_counters: serverCounters,
    server_rss_mb: Math.round(rss),
    per_round: rounds,
  }));
}

if (flag("attacker")) await attacker();
else await main();
