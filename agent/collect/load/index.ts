/** Load averages and runnable/total scheduling entities from /proc/loadavg. */
import type { CollectorOptions, MetricCollector } from "../collector.ts";

export function createLoadCollector({ fs }: CollectorOptions): MetricCollector {
  return {
    name: "load",
    collect(emit) {
      const f = fs.read("proc/loadavg")?.trim().split(/\s+/);
      if (!f || f.length < 4) throw new Error("proc/loadavg is not readable");
      const [l1, l5, l15] = f.slice(0, 3).map(Number);
      const [running, total] = f[3]!.split("/").map(Number);
      if (![l1, l5, l15].every(Number.isFinite)) throw new Error(`proc/loadavg is malformed: ${f.join(" ").slice(0, 80)}`);
      emit("load.1", l1!);
      emit("load.5", l5!);
      emit("load.15", l15!);
      if (Number.isFinite(running)) emit("load.runnable", running!);
      if (Number.isFinite(total)) emit("load.entities", total!);
    },
  };
}
