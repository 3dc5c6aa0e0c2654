/**
 * Connections held (npm run bench:connections [-- --quick]): `agents` authenticated WebSocket
 * agents on one server process, each sending a heartbeat every `interval` seconds, as a real
 * fleet idles. Reports what each held connection costs the server: resident memory, file
 * descriptors, CPU at that message rate, and the heartbeats' ack latency. Sizing in
 * docs/operations.md comes from here. Bounded: `--seconds` of heartbeats, then everything stops.
 */
import { readdirSync } from "node:fs";
import { freePort } from "../src/store/postgres/embedded.ts";
import { FrameKind } from "../src/ingest/frame/frame.ts";
import { mapFrame, newKeys, openStream, type SimAgent } from "../test/support/sim-agent.ts";
import { arg, cpuSeconds, environment, flag, percentile, round, rssMb, spawnServer, benchDatabase } from "./support.ts";

const quick = flag("quick");
const AGENTS = Number(arg("agents", quick ? "1000" : "5000"));
const SECONDS = Number(arg("seconds", quick ? "20" : "40"));
const INTERVAL_S = Number(arg("interval", "10"));
const log = (s: string) => console.error(`[connections] ${s}`);
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

async function main() {
  const db = await benchDatabase({ prefix: "servermind-conns-" });
  const { dir, sql, pg } = db;
  const agents: SimAgent[] = [];
  for (let i = 0; i < AGENTS; i += 500) {
    const keys = Array.from({ length: Math.min(500, AGENTS - i) }, () => newKeys());
    const rows = await sql`insert into agents ${sql(keys.map((k, j) => ({ hostname: `held-${i + j}`, public_key: Buffer.from(k.publicKeyB64, "base64") })))} returning id`;
    rows.forEach((r, j) => agents.push({ id: Number(r.id), ...keys[j]!, seq: 0, batch: 0 }));
  }
  const server = await spawnServer({
    port: await freePort(),
    env: { DATABASE_URL: pg.url, SERVERMIND_DATA: dir, SERVERMIND_HTTP3: "false", SERVERMIND_MAX_AGENTS: String(AGENTS) },
  });
  const { url, pid } = server;
  await Bun.sleep(1000);
  const rss0 = rssMb(pid);
  const fds0 = fds(pid);
  log(`server pid ${pid}: ${rss0.toFixed(0)} MB, ${fds0} fds; opening ${AGENTS} streams`);

  const streams: Array<Awaited<ReturnType<typeof openStream>>> = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < agents.length) {
      const a = agents[next++]!;
      const st = await openStream(url, a);
      a.session = st.session;
      streams[agents.indexOf(a)] = st;
    }
  }));
  const openSeconds = (performance.now() - t0) / 1000;
  await Bun.sleep(2000);
  const rss1 = rssMb(pid);
  const fds1 = fds(pid);
  log(`${AGENTS} streams open in ${openSeconds.toFixed(1)} s: ${rss1.toFixed(0)} MB, ${fds1} fds`);

  // Heartbeats, each agent every INTERVAL_S, spread evenly
  const latencies: number[] = [];
  let refused = 0;
  const cpu0 = cpuSeconds(pid);
  const h0 = performance.now();
  const end = h0 + SECONDS * 1000;
  await Promise.all(agents.map(async (a, i) => {
    await Bun.sleep((i / AGENTS) * INTERVAL_S * 1000);
    while (performance.now() < end) {
      const t = performance.now();
      const ack = await streams[i]!.send(mapFrame(a, FrameKind.Heartbeat, { uptime: Math.round(t / 1000) }));
      if (ack.acks?.[0]?.status === "seen") latencies.push(performance.now() - t);
      else refused++;
      await Bun.sleep(Math.max(0, INTERVAL_S * 1000 - (performance.now() - t)));
    }
  }));
  const beatSeconds = (performance.now() - h0) / 1000;
  const cores = (cpuSeconds(pid) - cpu0) / beatSeconds;
  const rss2 = rssMb(pid);
  latencies.sort((x, y) => x - y);
  for (const st of streams) st.close();
  await server.stop();
  await db.close();

  console.log(JSON.stringify({
    bench: "connections",
    ...environment(),
    quick,
    agents: AGENTS,
    interval_s: INTERVAL_S,
    seconds: SECONDS,
    open_seconds: round(openSeconds, 1),
    server_rss_mb_idle: Math.round(rss0),
    server_rss_mb_held: Math.round(rss1),
    server_rss_mb_after_heartbeats: Math.round(rss2),
    rss_kb_per_connection: round(((Math.max(rss1, rss2) - rss0) * 1024) / AGENTS, 1),
    fds_idle: fds0,
    fds_held: fds1,
    fds_per_connection: round((fds1 - fds0) / AGENTS, 3),
    heartbeats: latencies.length,
    refused,
    server_cores: round(cores, 3),
    ack_p50_ms: round(percentile(latencies, 50), 1),
    ack_p99_ms: round(percentile(latencies, 99), 1),
  }));
}

await main();
