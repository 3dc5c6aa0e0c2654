/** Network I/O per interface (loopback excluded) from /proc/net/dev, as rates per second. */
import { rate, timedReadingOf, type CollectorOptions, type MetricCollector } from "../collector.ts";

const COLUMNS: Array<[number, string]> = [
  [0, "net.rx_bytes_per_s"], [1, "net.rx_packets_per_s"], [2, "net.rx_errors_per_s"], [3, "net.rx_drops_per_s"],
  [8, "net.tx_bytes_per_s"], [9, "net.tx_packets_per_s"], [10, "net.tx_errors_per_s"], [11, "net.tx_drops_per_s"],
];

export function createNetCollector({ fs, now }: CollectorOptions): MetricCollector {
  let prev = new Map<string, number[]>();
  let prevMs = 0;
  return {
    name: "net",
    collect(emit) {
      const text = fs.read("proc/net/dev");
      if (!text) throw new Error("proc/net/dev is not readable");
      const t = now();
      const dt = (t - prevMs) / 1000;
      const cur = new Map<string, number[]>();
      for (const line of text.split("\n")) {
        const colon = line.indexOf(":");
        if (colon < 0) continue;
        const iface = line.slice(0, colon).trim();
        if (!iface || iface === "lo") continue;
        const v = line.slice(colon + 1).trim().split(/\s+/).map(Number);
        if (v.length < 16 || v.some((x) => !Number.isFinite(x))) continue;
        cur.set(iface, v);
        const p = prev.get(iface);
        if (!p) continue;
        for (const [i, name] of COLUMNS) {
          const r = rate(p[i], v[i]!, dt);
          if (r !== undefined) emit(`${name}{iface="${iface}"}`, r);
        }
      }
      prev = cur;
      prevMs = t;
    },
    saveReading: () => ({ at: prevMs, counters: [...prev] }),
    loadReading(saved) {
      const r = timedReadingOf(saved, 16);
      if (r) ({ at: prevMs, counters: prev } = r);
      return r !== undefined;
    },
  };
}
