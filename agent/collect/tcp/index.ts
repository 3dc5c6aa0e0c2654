/** TCP connections by state over IPv4 and IPv6, from /proc/net/tcp and /proc/net/tcp6. */
import type { CollectorOptions, MetricCollector } from "../collector.ts";

export const TCP_STATES: Record<string, string> = {
  "01": "established", "02": "syn_sent", "03": "syn_recv", "04": "fin_wait1", "05": "fin_wait2", "06": "time_wait",
  "07": "close", "08": "close_wait", "09": "last_ack", "0A": "listen", "0B": "closing",
};

export function createTcpCollector({ fs }: CollectorOptions): MetricCollector {
  return {
    name: "tcp",
    collect(emit) {
      const counts = Object.fromEntries(Object.values(TCP_STATES).map((s) => [s, 0])) as Record<string, number>;
      let readable = false;
      for (const file of ["proc/net/tcp", "proc/net/tcp6"]) {
        const text = fs.read(file);
        if (text === undefined) continue;
        readable = true;
        const lines = text.split("\n");
        for (let i = 1; i < lines.length; i++) {
          const st = lines[i]!.trim().split(/\s+/)[3];
          const name = st && TCP_STATES[st.toUpperCase()];
          if (name) counts[name]!++;
        }
      }
      if (!readable) throw new Error("proc/net/tcp is not readable");
      for (const [k, v] of Object.entries(counts)) emit(`tcp.${k}`, v);
    },
  };
}
