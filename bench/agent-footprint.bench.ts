/**
 * Footprint of the agent: the compiled binary's four processes (plus the supervisor) at the
 * default 10 s interval against the real server, measured from /proc: CPU % of one core over
 * the window and RSS. Prints one JSON line.
 *
 *   bun bench/agent-footprint.bench.ts [--seconds 120] [--interval-ms 10000]
 */
import { readFileSync, statSync } from "node:fs";
import { agentBinary, agentDirs, enrollAgent, runAgent, startE2eServer, until } from "../test/support/agent-harness.ts";
import { stopTestServer } from "../test/support/db.ts";
import { cpuSeconds, environment } from "./support.ts";

const args = process.argv.slice(2);
const arg = (n: string, d: number) => {
  const i = args.indexOf(n);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const seconds = arg("--seconds", 120);
const intervalMs = arg("--interval-ms", 10_000);
function rssKb(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
}
/** Proportional set size: shared pages (the 100 MB executable mapped by all five) counted once overall. */
function pssKb(pid: number): number {
  return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
}

const bin = await agentBinary();
const server = await startE2eServer();
const { dir, env } = agentDirs();
env.SERVERMIND_AGENT_INTERVAL_MS = String(intervalMs);
await enrollAgent(bin, env, server);
const agent = runAgent(bin, dir, env);
try {
  const sup = await until("processes running", () => {
    const s = agent.supervisor();
    return s.processes.every((p) => p.state === "running") ? s : undefined;
  });
  await Bun.sleep(15_000); // start-up, first inventory, first ticks
  const pids: Record<string, number> = { supervisor: sup.pid, ...Object.fromEntries(sup.processes.map((p) => [p.name, p.pid!])) };
  const start = Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, cpuSeconds(pid)]));
  const t0 = performance.now();
  const maxRss: Record<string, number> = {};
  const maxPss: Record<string, number> = {};
  while (performance.now() - t0 < seconds * 1000) {
    for (const [n, pid] of Object.entries(pids)) {
      maxRss[n] = Math.max(maxRss[n] ?? 0, rssKb(pid));
      maxPss[n] = Math.max(maxPss[n] ?? 0, pssKb(pid));
    }
    await Bun.sleep(5000);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpuPct: Record<string, number> = {};
  const rssMb: Record<string, number> = {};
  const pssMb: Record<string, number> = {};
  for (const [n, pid] of Object.entries(pids)) {
    cpuPct[n] = Math.round(((cpuSeconds(pid) - start[n]!) / wall) * 100 * 1000) / 1000;
    rssMb[n] = Math.round((Math.max(maxRss[n] ?? 0, rssKb(pid)) / 1024) * 10) / 10;
    pssMb[n] = Math.round((Math.max(maxPss[n] ?? 0, pssKb(pid)) / 1024) * 10) / 10;
  }
  const sum = (o: Record<string, number>) => Math.round(Object.values(o).reduce((a, b) => a + b, 0) * 1000) / 1000;
  const st = agent.status();
  console.log(JSON.stringify({
    bench: "agent-footprint", interval_ms: intervalMs, seconds: Math.round(wall),
    cpu_pct_of_one_core: { total: sum(cpuPct), ...cpuPct },
    rss_mb_max: { total: Math.round(sum(rssMb) * 10) / 10, ...rssMb },
    pss_mb_max: { total: Math.round(sum(pssMb) * 10) / 10, ...pssMb },
    binary_mb: Math.round((statSync(bin).size / 1048576) * 10) / 10,
    acked_frames: st.ackedFrames, transport: st.transport,
    ...environment(),
  }));
} finally {
  await agent.stop();
  await server.close();
  await stopTestServer();
}
