/** Memory and swap from /proc/meminfo, in bytes and percent used. */
import type { CollectorOptions, MetricCollector } from "../collector.ts";

export function parseMeminfo(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (match) m.set(match[1]!, Number(match[2]) * (line.endsWith("kB") ? 1024 : 1));
  }
  return m;
}

export function createMemoryCollector({ fs }: CollectorOptions): MetricCollector {
  return {
    name: "memory",
    collect(emit) {
      const text = fs.read("proc/meminfo");
      if (!text) throw new Error("proc/meminfo is not readable");
      const m = parseMeminfo(text);
      const total = m.get("MemTotal");
      if (!total) throw new Error("proc/meminfo has no MemTotal");
      const free = m.get("MemFree") ?? 0;
      const available = m.get("MemAvailable") ?? free + (m.get("Cached") ?? 0) + (m.get("Buffers") ?? 0);
      emit("mem.total_bytes", total);
      emit("mem.available_bytes", available);
      emit("mem.used_bytes", total - available);
      emit("mem.used_pct", (100 * (total - available)) / total);
      emit("mem.free_bytes", free);
      emit("mem.cached_bytes", m.get("Cached") ?? 0);
      emit("mem.buffers_bytes", m.get("Buffers") ?? 0);
      const swapTotal = m.get("SwapTotal") ?? 0;
      const swapFree = m.get("SwapFree") ?? 0;
      emit("swap.total_bytes", swapTotal);
      emit("swap.used_bytes", swapTotal - swapFree);
      emit("swap.used_pct", swapTotal > 0 ? (100 * (swapTotal - swapFree)) / swapTotal : 0);
    },
  };
}
