/**
 * The contract every metric collector implements, and the one place that reads host files
 * under the injectable root (so tests feed recorded /proc and /sys data).
 * A collector only sees `emit`; it never knows about frames, the spool or the network.
 */
import { readdirSync, readFileSync, statfsSync } from "node:fs";
import { join } from "node:path";

export type Emit = (name: string, value: number) => void;

export interface MetricCollector {
  readonly name: string;
  /** Reads the host once and emits samples. Throws only for a broken host; the runner counts it. */
  collect(emit: Emit): void;
  /**
   * Rate-based collectors: the last reading, as JSON, so that a restarted Collector takes its
   * first rates against it instead of priming (agent/collect/process.ts keeps it per tick).
   */
  saveReading?(): unknown;
  /** Takes a reading from saveReading; returns false, keeping nothing, when it is malformed. */
  loadReading?(saved: unknown): boolean;
}

/** A saved reading of counters by key (cpu id, interface, device): at least `width` finite numbers each, checked field by field. */
export function readingOf(saved: unknown, width: number): Map<string, number[]> | undefined {
  if (!Array.isArray(saved) || saved.length > 4096) return undefined;
  const out = new Map<string, number[]>();
  for (const e of saved) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || e[0].length > 256) return undefined;
    const v = e[1];
    if (!Array.isArray(v) || v.length < width || v.length > 64 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) return undefined;
    out.set(e[0], v);
  }
  // nothing to take a rate against: the caller primes, as on a first start
  return out.size ? out : undefined;
}

/** A saved reading with the time it was taken (`{ at, counters }`, for per-second rates). */
export function timedReadingOf(saved: unknown, width: number): { at: number; counters: Map<string, number[]> } | undefined {
  const at = (saved as { at?: unknown } | null)?.at;
  const counters = readingOf((saved as { counters?: unknown } | null)?.counters, width);
  return counters && typeof at === "number" && Number.isFinite(at) ? { at, counters } : undefined;
}

export interface HostFs {
  readonly root: string;
  /** Text of `path` under the root, undefined when missing or unreadable. */
  read(path: string): string | undefined;
  list(path: string): string[];
  /** Filesystem usage of the mount point `path` (under the root). */
  statfs(path: string): { total: number; free: number; avail: number; files: number; filesFree: number } | undefined;
}

export interface CollectorOptions {
  fs: HostFs;
  /** Clock in ms, injected so rate tests advance time instead of sleeping. */
  now: () => number;
}

export function createHostFs(root: string): HostFs {
  const at = (p: string) => join(root, p);
  return {
    root,
    read(p) {
      try {
        return readFileSync(at(p), "utf8");
      } catch {
        return undefined;
      }
    },
    list(p) {
      try {
        return readdirSync(at(p));
      } catch {
        return [];
      }
    },
    statfs(p) {
      try {
        const s = statfsSync(at(p));
        return { total: s.blocks * s.bsize, free: s.bfree * s.bsize, avail: s.bavail * s.bsize, files: s.files, filesFree: s.ffree };
      } catch {
        return undefined;
      }
    },
  };
}

/** Rate per second between two readings of a monotonic counter; undefined on the first reading or a reset. */
export function rate(prev: number | undefined, cur: number, dtSec: number): number | undefined {
  if (prev === undefined || dtSec <= 0 || cur < prev) return undefined;
  return (cur - prev) / dtSec;
}
