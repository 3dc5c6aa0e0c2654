/** Runs a metric collector over recorded fixture roots and returns what it emitted, by name. */
import { join } from "node:path";
import { createHostFs, type CollectorOptions, type MetricCollector } from "../../agent/collect/collector.ts";

export const COLLECT_DIR = join(import.meta.dir, "../../agent/collect");

export function fixtureRoot(collector: string, ...parts: string[]): string {
  return join(COLLECT_DIR, collector, "fixtures", ...parts);
}

/** Collects once per root in order, advancing an injected clock by `stepMs`, and returns the last emission. */
export function collectOver(factory: (o: CollectorOptions) => MetricCollector, roots: string[], stepMs = 1000): Map<string, number> {
  let t = 1_700_000_000_000;
  let root = roots[0]!;
  const fs = new Proxy(createHostFs(root), {
    get: (_t, k) => (createHostFs(root) as any)[k],
  });
  const c = factory({ fs, now: () => t });
  let out = new Map<string, number>();
  for (const r of roots) {
    root = r;
    out = new Map();
    c.collect((n, v) => out.set(n, v));
    t += stepMs;
  }
  return out;
}
