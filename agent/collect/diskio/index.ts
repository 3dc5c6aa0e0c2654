/** Disk I/O per whole device (those listed in /sys/block, without loop and ram) from /proc/diskstats. */
import { rate, timedReadingOf, type CollectorOptions, type MetricCollector } from "../collector.ts";

const SECTOR = 512;

export function createDiskioCollector({ fs, now }: CollectorOptions): MetricCollector {
  let prev = new Map<string, number[]>();
  let prevMs = 0;
  return {
    name: "diskio",
    collect(emit) {
      const text = fs.read("proc/diskstats");
      if (!text) throw new Error("proc/diskstats is not readable");
      const devices = new Set(fs.list("sys/block"));
      const t = now();
      const dt = (t - prevMs) / 1000;
      const cur = new Map<string, number[]>();
      for (const line of text.split("\n")) {
        const f = line.trim().split(/\s+/);
        const dev = f[2];
        if (!dev || f.length < 14 || /^(loop|ram|zram)/.test(dev)) continue;
        if (devices.size && !devices.has(dev)) continue;
        // reads completed, sectors read, writes completed, sectors written, ms doing I/O
        const v = [Number(f[3]), Number(f[5]) * SECTOR, Number(f[7]), Number(f[9]) * SECTOR, Number(f[12])];
        if (v.some((x) => !Number.isFinite(x))) continue;
        cur.set(dev, v);
        const p = prev.get(dev);
        if (!p) continue;
        const label = `{device="${dev}"}`;
        const names = ["diskio.reads_per_s", "diskio.read_bytes_per_s", "diskio.writes_per_s", "diskio.write_bytes_per_s"];
        names.forEach((n, i) => {
          const r = rate(p[i], v[i]!, dt);
          if (r !== undefined) emit(n + label, r);
        });
        const busy = rate(p[4], v[4]!, dt);
        if (busy !== undefined) emit(`diskio.util_pct${label}`, Math.min(100, busy / 10));
      }
      prev = cur;
      prevMs = t;
    },
    saveReading: () => ({ at: prevMs, counters: [...prev] }),
    loadReading(saved) {
      const r = timedReadingOf(saved, 5);
      if (r) ({ at: prevMs, counters: prev } = r);
      return r !== undefined;
    },
  };
}
