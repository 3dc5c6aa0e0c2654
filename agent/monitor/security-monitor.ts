/**
 * Monitor's security side, ready for the supervisor to start: real-time FIM, a CIS scan on a
 * schedule and on a signed `cis.scan` request, and a periodic `fim.status` event so the
 * console shows watches, the cap, ignore rules, rate limiting and rescans. Read-only: nothing
 * here changes the system. Everything it reports goes out through `emit` as security events
 * (kind 4, `packSecurity`); Monitor's outbox batches and spools them.
 */
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import type { KeyObject } from "node:crypto";
import type { SecurityEvent } from "../../src/ingest/frame/frame.ts";
import { createNonceSet, verifyCommand } from "../../src/ingest/frame/commands.ts";
import { createFim, hostPath, type Fim } from "./fim/fim.ts";
import { defaultFimOptions, type FimOptions } from "./fim/config.ts";
import { createPackageManagerDetector } from "./fim/package-manager.ts";
import { scanEvent, scanRoot } from "./cis/scan.ts";

export interface SecurityMonitorOptions {
  /** "/" in production; a prepared root in tests. */
  root: string;
  /** Monitor's state directory (the FIM baseline lives here). */
  stateDir: string;
  agentId: number;
  /** Server command key (public half) for `cis.scan` requests; none = requests refused. */
  commandKey?: KeyObject;
  cisIntervalMs?: number;
  statusIntervalMs?: number;
  fim?: Partial<FimOptions>;
  emit(events: SecurityEvent[]): void;
}

export const MONITOR_ACTIONS: ReadonlySet<string> = new Set(["cis.scan"]);

export async function startSecurityMonitor(o: SecurityMonitorOptions) {
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  const fimOptions: FimOptions = { ...defaultFimOptions(join(o.stateDir, "fim.db"), o.root), ...o.fim };
  // FIM labels host paths under its watched paths only: the detector remembers just those
  const pm = createPackageManagerDetector({ root: o.root, within: fimOptions.paths.map((p) => hostPath(o.root, p)) });
  const fim: Fim = createFim(fimOptions, o.emit, { packageLabel: (p) => pm.label(p) });
  const nonces = createNonceSet();
  let scanning = false;

  /** Scans and emits the `cis.scan` event; null when a scan is already running. */
  const scanNow = () => {
    if (scanning) return null;
    scanning = true;
    try {
      const report = scanRoot(o.root);
      o.emit([scanEvent(report) as SecurityEvent]);
      return { summary: report.summary, startedMs: report.startedMs, durationMs: Math.round(report.durationMs) };
    } finally {
      scanning = false;
    }
  };
  const status = () =>
    o.emit([{ ts: Date.now(), type: "fim.status", severity: 0, data: { ...fim.stats(), paths: fimOptions.paths, ignore: fimOptions.ignore, maxWatches: fimOptions.maxWatches, ratePerSecond: fimOptions.ratePerSecond, rateBurst: fimOptions.rateBurst, rescanIntervalMs: fimOptions.rescanIntervalMs } }]);

  await fim.start();
  status();
  scanNow();
  const timers = [setInterval(() => scanNow(), o.cisIntervalMs ?? 6 * 3600_000), setInterval(status, o.statusIntervalMs ?? 5 * 60_000)];

  return {
    fim,
    scanNow,
    /**
     * A signed request from the server (via Platform); only `cis.scan` is accepted here. The
     * answer carries the summary and the scan's start time (the `ts` of its `cis.scan` event).
     */
    handleCommand(signed: unknown): { ok: boolean; error?: string; action?: string; summary?: unknown; startedMs?: number; durationMs?: number } {
      if (!o.commandKey) return { ok: false, error: "no server command key is installed; every command is refused" };
      const v = verifyCommand(signed, { publicKey: o.commandKey, agentId: o.agentId, allow: MONITOR_ACTIONS, seen: nonces });
      if (!v.ok) return { ok: false, error: v.reason };
      const scan = scanNow();
      return scan ? { ok: true, action: "cis.scan", ...scan } : { ok: false, error: "a scan is already running" };
    },
    async stop() {
      timers.forEach(clearInterval);
      await fim.stop();
    },
  };
}
