/** Maps collector names to their factories; the Collector process builds the enabled ones from here. */
import type { CollectorOptions, MetricCollector } from "./collector.ts";
import { createCpuCollector } from "./cpu/index.ts";
import { createDiskCollector } from "./disk/index.ts";
import { createDiskioCollector } from "./diskio/index.ts";
import { createFdCollector } from "./fd/index.ts";
import { createLoadCollector } from "./load/index.ts";
import { createMemoryCollector } from "./memory/index.ts";
import { createNetCollector } from "./net/index.ts";
import { createProcCollector } from "./proc/index.ts";
import { createTcpCollector } from "./tcp/index.ts";
import { createUptimeCollector } from "./uptime/index.ts";

export const METRIC_COLLECTORS: Record<string, (o: CollectorOptions) => MetricCollector> = {
  cpu: createCpuCollector,
  memory: createMemoryCollector,
  load: createLoadCollector,
  disk: createDiskCollector,
  diskio: createDiskioCollector,
  net: createNetCollector,
  proc: createProcCollector,
  fd: createFdCollector,
  tcp: createTcpCollector,
  uptime: createUptimeCollector,
};

export function createMetricCollectors(o: CollectorOptions, names: string[] = Object.keys(METRIC_COLLECTORS)): MetricCollector[] {
  return names.map((n) => {
    const f = METRIC_COLLECTORS[n];
    if (!f) throw new Error(`unknown collector "${n}" (known: ${Object.keys(METRIC_COLLECTORS).join(", ")})`);
    return f(o);
  });
}
