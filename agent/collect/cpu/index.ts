/** CPU time split from /proc/stat, total and per core, as percentages of the interval; the core count. */
import { readingOf, type CollectorOptions, type MetricCollector } from "../collector.ts";

const FIELDS = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"] as const;

export function createCpuCollector({ fs }: CollectorOptions): MetricCollector {
  let prev = new Map<string, number[]>();
  return {
    name: "cpu",
    collect(emit) {
      const text = fs.read("proc/stat");
      if (!text) throw new Error("proc/stat is not readable");
      const cur = new Map<string, number[]>();
      for (const line of text.split("\n")) {
        if (!line.startsWith("cpu")) continue;
        const f = line.trim().split(/\s+/);
        const v = f.slice(1, 9).map(Number);
        if (v.length < 8 || v.some((x) => !Number.isFinite(x))) continue;
        cur.set(f[0]!, v);
      }
      for (const [id, v] of cur) {
        const p = prev.get(id);
        if (!p) continue;
        const d = v.map((x, i) => x - p[i]!);
        const total = d.reduce((a, b) => a + b, 0);
        if (total <= 0 || d.some((x) => x < 0)) continue;
        const label = id === "cpu" ? "" : `{cpu="${id.slice(3)}"}`;
        const idle = d[3]! + d[4]!;
        emit(`cpu.usage_pct${label}`, (100 * (total - idle)) / total);
        if (!label) {
          for (let i = 0; i < FIELDS.length; i++) emit(`cpu.${FIELDS[i]}_pct`, (100 * d[i]!) / total);
        }
      }
      // every tick: a constant series costs next to nothing stored, and a chart of any range has it
      // (emitted on the first reading only, it went out with the start-up reading nobody sends)
      emit("cpu.cores", [...cur.keys()].filter((k) => k !== "cpu").length);
      prev = cur;
    },
    saveReading: () => [...prev],
    loadReading(saved) {
      const r = readingOf(saved, FIELDS.length);
      if (r) prev = r;
      return r !== undefined;
    },
  };
}
