/** Seconds since boot from /proc/uptime. */
import type { CollectorOptions, MetricCollector } from "../collector.ts";

export function createUptimeCollector({ fs }: CollectorOptions): MetricCollector {
  return {
    name: "uptime",
    collect(emit) {
      const up = Number(fs.read("proc/uptime")?.trim().split(/\s+/)[0]);
      if (!Number.isFinite(up)) throw new Error("proc/uptime is not readable");
      emit("system.uptime_s", up);
    },
  };
}
