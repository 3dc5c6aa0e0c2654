/**
 * A CIS scan: every control that applies to the root's platform, evaluated read-only.
 * Monitor runs it on a schedule and on demand; the result list is what the server stores.
 */
import { CONTROLS, type Control, type Platform } from "./controls.ts";
import { evaluate, type CheckResult } from "./checks.ts";
import { createRootFs, type RootFs } from "./root-fs.ts";
import { detectPlatform } from "./platform.ts";

export interface ControlResult extends CheckResult {
  id: string;
  title: string;
  severity: number;
  category: string;
}

export interface ScanReport {
  root: string;
  platform: Platform | null;
  os: string;
  startedMs: number;
  durationMs: number;
  results: ControlResult[];
  summary: { pass: number; fail: number; notapplicable: number; error: number };
}

export interface ScanOptions {
  controls?: Control[];
  /** Compare running kernel values too (only meaningful for the live root "/"). */
  runtime?: boolean;
  /** Evaluate every control regardless of platform (used when the platform is unknown). */
  allPlatforms?: boolean;
}

export function scanRoot(root: string | RootFs, o: ScanOptions = {}): ScanReport {
  const fs = typeof root === "string" ? createRootFs(root) : root;
  const startedMs = Date.now();
  const t0 = performance.now();
  const { platform, id, version } = detectPlatform(fs);
  const results: ControlResult[] = [];
  const summary = { pass: 0, fail: 0, notapplicable: 0, error: 0 };
  for (const c of o.controls ?? CONTROLS) {
    let r: CheckResult;
    if (!o.allPlatforms && platform && !c.platforms.includes(platform)) r = { status: "notapplicable", observed: `not for ${platform}`, expected: c.platforms.join(", ") };
    else {
      try {
        r = evaluate(fs, c.check, { runtime: o.runtime ?? fs.root === "/" });
      } catch (e) {
        r = { status: "error", observed: e instanceof Error ? e.message : String(e), expected: "" };
      }
    }
    summary[r.status]++;
    results.push({ id: c.id, title: c.title, severity: c.severity, category: c.category, ...r });
  }
  return { root: fs.root, platform, os: `${id} ${version}`.trim(), startedMs, durationMs: performance.now() - t0, results, summary };
}

/** One security event per scan, ready for packSecurity (kind 4): `cis.scan` with the results. */
export function scanEvent(r: ScanReport): { ts: number; type: string; severity: number; data: Record<string, unknown> } {
  const worst = Math.max(0, ...r.results.filter((x) => x.status === "fail").map((x) => x.severity));
  return {
    ts: r.startedMs,
    type: "cis.scan",
    severity: Math.min(10, worst),
    data: { platform: r.platform, os: r.os, summary: r.summary, results: r.results.map(({ id, status, observed, severity, category }) => ({ id, status, observed, severity, category })) },
  };
}
