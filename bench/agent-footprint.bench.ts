/**
 * Footprint of the agent: the compiled binary's four processes (plus the supervisor; both sums
 * are printed) at the
 * default 10 s interval against the real server, measured from /proc: CPU % of one core over
 * the window, peak RSS, peak PSS and peak private anonymous memory (heap, stacks: what is this
 * process's alone; the rest of RSS is the shared executable's pages). Prints one JSON line.
 *
 *   bun bench/agent-footprint.bench.ts [--seconds 120] [--interval-ms 10000] [--jit ROLES] [--binary PATH]
 *
 * `--jit platform,collector` runs with SERVERMIND_AGENT_JIT set (the JIT kept in those roles);
 * `--binary` measures a given linux build (e.g. one of another commit) instead of building this tree.
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
const text = (n: string) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] ?? "" : undefined;
};
const jit = text("--jit");
/**
 * From smaps_rollup: Rss; Pss, where shared pages (the 100 MB executable mapped by all five) are
 * divided among the processes that map them; Anonymous, the private part.
 */
function memKb(pid: number): { rss: number; pss: number; anon: number } {
  const s = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const f = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? 0);
  return { rss: f("Rss"), pss: f("Pss"), anon: f("Anonymous") };
}

const bin = text("--binary") ?? (await agentBinary());
const server = await startE2eServer();
const { dir, env } = agentDirs();
env.SERVERMIND_AGENT_INTERVAL_MS = String(intervalMs);
if (jit !== undefined) env.SERVERMIND_AGENT_JIT = jit;
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
  const peak: Record<string, { rss: number; pss: number; anon: number }> = {};
  const sample = () => {
    for (const [n, pid] of Object.entries(pids)) {
      const m = memKb(pid);
      const p = (peak[n] ??= { rss: 0, pss: 0, anon: 0 });
      p.rss = Math.max(p.rss, m.rss);
      p.pss = Math.max(p.pss, m.pss);
      p.anon = Math.max(p.anon, m.anon);
    }
  };
  while (performance.now() - t0 < seconds * 1000) {
    sample();
    await Bun.sleep(5000);
  }
  sample();
  const wall = (performance.now() - t0) / 1000;
  const cpuPct: Record<string, number> = {};
  const rssMb: Record<string, number> = {};
  const pssMb: Record<string, number> = {};
  const anonMb: Record<string, number> = {};
  const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
  for (const [n, pid] of Object.entries(pids)) {
    cpuPct[n] = Math.round(((cpuSeconds(pid) - start[n]!) / wall) * 100 * 1000) / 1000;
    rssMb[n] = mb(peak[n]!.rss);
    pssMb[n] = mb(peak[n]!.pss);
    anonMb[n] = mb(peak[n]!.anon);
  }
  const sum = (o: Record<string, number>, digits = 3) => Number(Object.values(o).reduce((a, b) => a + b, 0).toFixed(digits));
  // `four_processes`: Collector, Monitor, Control and Platform, what the footprint target is
  // stated for; `total` adds the supervisor (`run`) that starts them.
  const sums = (o: Record<string, number>, digits: number) => {
    const { supervisor: _, ...four } = o;
    return { total: sum(o, digits), four_processes: sum(four, digits) };
  };
  const st = agent.status();
  console.log(JSON.stringify({
    bench: "agent-footprint", interval_ms: intervalMs, seconds: Math.round(wall),
    cpu_pct_of_one_core: { ...sums(cpuPct, 3), ...cpuPct },
    rss_mb_max: { ...sums(rssMb, 1), ...rssMb },
    pss_mb_max: { ...sums(pssMb, 1), ...pssMb },
    anon_mb_max: { ...sums(anonMb, 1), ...anonMb },
    jit: jit ?? "",
    binary_mb: Math.round((statSync(bin).size / 1048576) * 10) / 10,
    acked_frames: st.ackedFrames, transport: st.transport,
    ...environment(),
  }));
} finally {
  await agent.stop();
  await server.close();
  await stopTestServer();
}
