/** Open file handles of the whole system from /proc/sys/fs/file-nr. */
import type { CollectorOptions, MetricCollector } from "../collector.ts";

export function createFdCollector({ fs }: CollectorOptions): MetricCollector {
  return {
    name: "fd",
    collect(emit) {
      const f = fs.read("proc/sys/fs/file-nr")?.trim().split(/\s+/).map(Number);
      if (!f || f.length < 3 || f.some((x) => !Number.isFinite(x))) throw new Error("proc/sys/fs/file-nr is not readable");
      emit("fd.allocated", f[0]! - f[1]!);
      emit("fd.max", f[2]!);
      emit("fd.used_pct", f[2]! > 0 ? (100 * (f[0]! - f[1]!)) / f[2]! : 0);
    },
  };
}
