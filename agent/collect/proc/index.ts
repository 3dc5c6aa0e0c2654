/** Processes by state and total threads, from /proc/<pid>/stat. */
import type { CollectorOptions, MetricCollector } from "../collector.ts";

const STATES: Record<string, string> = { R: "running", S: "sleeping", D: "blocked", Z: "zombie", T: "stopped", t: "stopped", I: "idle" };

export function createProcCollector({ fs }: CollectorOptions): MetricCollector {
  return {
    name: "proc",
    collect(emit) {
      const counts: Record<string, number> = { running: 0, sleeping: 0, blocked: 0, zombie: 0, stopped: 0, idle: 0, other: 0 };
      let processes = 0;
      let threads = 0;
      for (const pid of fs.list("proc")) {
        if (!/^\d+$/.test(pid)) continue;
        const stat = fs.read(`proc/${pid}/stat`);
        if (!stat) continue; // the process exited between list and read
        // comm may contain spaces and parentheses: fields resume after the last ')'
        const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const state = rest[0] ?? "";
        const nThreads = Number(rest[17]);
        processes++;
        counts[STATES[state] ?? "other"]!++;
        if (Number.isFinite(nThreads)) threads += nThreads;
      }
      if (processes === 0) throw new Error("proc lists no processes");
      emit("proc.total", processes);
      emit("proc.threads", threads);
      for (const [k, v] of Object.entries(counts)) emit(`proc.${k}`, v);
    },
  };
}
