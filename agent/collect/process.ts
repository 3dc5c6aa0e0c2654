/**
 * The Collector process: metrics on wall-clock-aligned ticks, log lines every logsMs, the
 * inventory at start and every inventoryMs, all handed to Platform through the outbox.
 *
 * Ticks are aligned to multiples of the interval and the last emitted tick is remembered, so a
 * restarted Collector (kill -9) continues on the same grid: the tick of the interval it comes back
 * in is emitted at once if it was never spooled. Its rates are taken against the previous
 * Collector's last reading (collectorDir/readings.json, kept at every tick) when that is from this
 * boot and at most two intervals old; otherwise they are primed over PRIMING_MS first.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { replaceFile } from "../state-file.ts";
import { join } from "node:path";
import { packLogs, packMap, packMetrics } from "../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import { agentPaths, type AgentConfig } from "../config.ts";
import { createHostFs, type MetricCollector } from "./collector.ts";
import { createMetricCollectors } from "./registry.ts";
import { createFileTail } from "./logs/files.ts";
import { createJournalTail, journalctlAvailable } from "./logs/journald.ts";
import { toLogsBody } from "./logs/batch.ts";
import type { LogLine } from "./logs/line.ts";
import { collectInventory, runCommand } from "./inventory/index.ts";
import { hasProgram, killRunningChecks, readPendingUpdates, runAsync, type PendingUpdates } from "./inventory/updates.ts";
import { createOutbox } from "./outbox.ts";
import { atPrecision } from "./precision.ts";

const MAX_LINES_PER_FRAME = 1000;
const PRIMING_MS = 250;

export function collectMetrics(collectors: MetricCollector[], errors: Map<string, number>): { names: string[]; values: number[] } {
  const names: string[] = [];
  const values: number[] = [];
  const seen = new Set<string>();
  for (const c of collectors) {
    try {
      c.collect((n, v) => {
        if (seen.has(n) || n.length > 512 || !Number.isFinite(v)) return;
        seen.add(n);
        names.push(n);
        values.push(atPrecision(n, v));
      });
    } catch {
      errors.set(c.name, (errors.get(c.name) ?? 0) + 1);
    }
  }
  return { names, values };
}

/**
 * The readings in a readings.json text when a restarted Collector may take rates against them:
 * written in this boot, at most `maxAgeMs` before `now` and not after it (a clock set back).
 */
export function usableReadings(text: string, bootId: string, now: number, maxAgeMs: number): { at: number; readings: Record<string, unknown> } | undefined {
  let saved: { bootId?: unknown; at?: unknown; readings?: unknown } | null;
  try {
    saved = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!bootId || typeof saved !== "object" || saved === null || saved.bootId !== bootId) return undefined;
  if (typeof saved.at !== "number" || !(saved.at <= now) || now - saved.at > maxAgeMs) return undefined;
  const r = saved.readings;
  return typeof r === "object" && r !== null && !Array.isArray(r) ? { at: saved.at, readings: r as Record<string, unknown> } : undefined;
}

export async function runCollector(c: AgentConfig): Promise<() => Promise<void>> {
  const p = agentPaths(c);
  const log = (m: string) => console.error(`collector: ${m}`);
  const fs = createHostFs(c.root);
  const collectors = createMetricCollectors({ fs, now: Date.now });
  const errors = new Map<string, number>();
  const outbox = createOutbox({ socketPath: p.collectorSocket, log });
  const tickFile = join(p.collectorDir, "last-tick");
  let lastTick = 0;
  try {
    lastTick = Number(readFileSync(tickFile, "utf8")) || 0;
  } catch {
    lastTick = 0;
  }

  const readingsFile = join(p.collectorDir, "readings.json");
  const bootId = fs.read("proc/sys/kernel/random/boot_id")?.trim() ?? "";
  const saveReadings = () => {
    if (!bootId) return;
    const readings: Record<string, unknown> = {};
    for (const m of collectors) if (m.saveReading) readings[m.name] = m.saveReading();
    try {
      replaceFile(readingsFile, JSON.stringify({ bootId, at: Date.now(), readings }));
    } catch {
      /* without it the next start primes its rates */
    }
  };
  /**
   * Loads the previous Collector's readings (same boot, taken within two intervals, all
   * well-formed) and returns when they were taken, or undefined.
   */
  const resumeReadings = (): number | undefined => {
    let text: string | undefined;
    try {
      text = readFileSync(readingsFile, "utf8");
    } catch {
      return undefined;
    }
    const saved = usableReadings(text, bootId, Date.now(), 2 * c.intervalMs);
    if (!saved || !collectors.every((m) => !m.loadReading || m.loadReading(saved.readings[m.name]))) return undefined;
    return saved.at;
  };

  // ticks of the grid this Collector did not collect since it started: it was not running (a
  // restart slower than an interval, an agent stopped), or its timer fired an interval late or more
  // (the process starved of CPU); each is logged and counted, so a gap in a chart has a stated cause
  let notCollected = 0;
  const iso = (t: number) => new Date(t).toISOString();
  const emitTick = (tick: number, lateMs?: number) => {
    if (lastTick > 0 && tick - lastTick > c.intervalMs) {
      const n = Math.round((tick - lastTick) / c.intervalMs) - 1;
      notCollected += n;
      const first = lastTick + c.intervalMs;
      const which = n === 1 ? `1 tick, ${iso(first)}` : `${n} ticks, ${iso(first)} to ${iso(tick - c.intervalMs)}`;
      log(`not collected: ${which} (${lateMs === undefined ? "the Collector was not running" : `its timer fired ${lateMs} ms late`})`);
    }
    const { names, values } = collectMetrics(collectors, errors);
    saveReadings();
    const st = outbox.stats();
    names.push("agent.outbox_dropped_batches");
    values.push(st.dropped);
    names.push("agent.collector_ticks_not_collected");
    values.push(notCollected);
    for (const [name, n] of errors) {
      names.push(`agent.collector_errors{collector="${name}"}`);
      values.push(n);
    }
    if (names.length === 0) return;
    const ts = Float64Array.of(tick);
    outbox.push({
      kind: FrameKind.Metrics, items: names.length, createdMs: tick,
      body: packMetrics({ ts, names, values: Float64Array.from(values) }),
      commit: () => {
        try {
          replaceFile(tickFile, String(tick));
        } catch {
          /* the grid is only an optimisation */
        }
      },
    });
    lastTick = tick;
  };

  // rates against the last Collector's reading if it is recent, else primed; then the tick we are
  // in, if it was never emitted. A rate spans PRIMING_MS at least: a reading taken just before the
  // kill (its tick never spooled, so emitted again now) is waited on until it is that old.
  const resumedAt = resumeReadings();
  if (resumedAt !== undefined) {
    log("rates continue from the last Collector's reading");
    await Bun.sleep(Math.max(0, resumedAt + PRIMING_MS - Date.now()));
  } else {
    collectMetrics(collectors, new Map());
    await Bun.sleep(PRIMING_MS);
  }
  const align = (t: number) => Math.floor(t / c.intervalMs) * c.intervalMs;
  let timer: Timer | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    const next = align(Date.now()) + c.intervalMs;
    timer = setTimeout(() => {
      const tick = align(Date.now());
      if (tick > lastTick) emitTick(tick, Math.round(Date.now() - next));
      schedule();
    }, Math.max(0, next - Date.now()));
  };
  const current = align(Date.now());
  if (current > lastTick) emitTick(current);
  schedule();

  // logs
  const files = createFileTail({ paths: c.logFiles, statePath: join(p.collectorDir, "log-offsets.json") });
  const journal = c.journald && journalctlAvailable()
    ? createJournalTail({ cursorPath: join(p.collectorDir, "journal-cursor"), directory: c.journalDir })
    : undefined;
  if (journal && c.journalDir && !existsSync(c.journalDir)) log(`SERVERMIND_AGENT_JOURNAL_DIR=${c.journalDir} does not exist (yet); journalctl is retried with backoff`);
  const flushLogs = () => {
    let lines: LogLine[];
    try {
      lines = [...files.poll(), ...(journal?.poll() ?? [])];
    } catch (e) {
      errors.set("logs", (errors.get("logs") ?? 0) + 1);
      log(`log poll failed: ${e instanceof Error ? e.message : e}`);
      return;
    }
    for (let i = 0; i < lines.length; i += MAX_LINES_PER_FRAME) {
      const chunk = lines.slice(i, i + MAX_LINES_PER_FRAME);
      const last = i + MAX_LINES_PER_FRAME >= lines.length;
      outbox.push({
        kind: FrameKind.Logs, items: chunk.length, createdMs: Date.now(), body: packLogs(toLogsBody(chunk)),
        // offsets advance only with the last chunk of a poll, once everything before it is spooled
        commit: last ? () => { files.commit(); journal?.commit(); } : undefined,
      });
    }
  };
  const logTimer = setInterval(flushLogs, c.logsMs);

  // inventory
  // Pending updates: the package manager's simulation runs asynchronously (bounded), so metric
  // ticks go on meanwhile. At start the inventory goes out at once with the last result (kept in
  // collectorDir/updates.json), and again when the fresh check is done; hourly, check then send.
  const updatesPath = join(p.collectorDir, "updates.json");
  let updates: PendingUpdates | undefined;
  try {
    const cached = JSON.parse(readFileSync(updatesPath, "utf8"));
    updates = cached && typeof cached === "object" && (cached.status === "ok" || cached.status === "unknown") ? (cached as PendingUpdates) : undefined;
  } catch {
    updates = undefined;
  }
  const sendInventory = () => {
    try {
      const inv: Record<string, unknown> = { ...collectInventory({ fs, run: c.root === "/" ? runCommand : () => undefined }) };
      if (updates) inv.updates = updates;
      outbox.push({ kind: FrameKind.Inventory, items: 1, createdMs: Date.now(), body: packMap(inv) });
    } catch (e) {
      errors.set("inventory", (errors.get("inventory") ?? 0) + 1);
      log(`inventory failed: ${e instanceof Error ? e.message : e}`);
    }
  };
  let checking = false;
  const refreshAndSend = async () => {
    if (checking || stopped) return;
    checking = true;
    try {
      const fresh: PendingUpdates = c.root === "/"
        ? await readPendingUpdates({ run: runAsync, has: hasProgram })
        : { status: "unknown", reason: "collect.root is not / (package manager not queried)" };
      if (stopped) return; // killed by the shutdown: keep the last real result
      updates = fresh;
      try {
        writeFileSync(updatesPath, JSON.stringify(updates));
      } catch { /* the cache is an optimisation */ }
    } catch (e) {
      updates = { status: "unknown", reason: `update check failed: ${e instanceof Error ? e.message : e}` };
    } finally {
      checking = false;
    }
    if (!stopped) sendInventory();
  };
  sendInventory();
  void refreshAndSend();
  const invTimer = setInterval(() => void refreshAndSend(), c.inventoryMs);

  return async () => {
    stopped = true;
    clearTimeout(timer);
    clearInterval(logTimer);
    clearInterval(invTimer);
    killRunningChecks();
    flushLogs();
    await outbox.flush(3000);
    outbox.close();
    files.close();
    journal?.close();
  };
}
