/**
 * File descriptors: what this process may open and what it has open (Linux /proc; elsewhere
 * both are unknown and nothing here acts). Every connection holds one, so the limit bounds the
 * agents a node can hold.
 *
 * - fileLimitWarning(): at start, says when the limit is below what the settings need.
 * - AcceptGuard: near the limit, stops accepting connections (the port refuses them) instead of
 *   letting the accept loop fail on every wake-up, which kept a core busy and left queued
 *   clients hanging; accepts again once descriptors are free. Logs each change once.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Config } from "../config.ts";
import { Counter, Gauge } from "../metrics/registry.ts";

/** The soft limit on open files (`ulimit -n`), or undefined when it cannot be read. */
export function fileLimit(limits: string = readLimits()): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  if (!m) return undefined;
  return m[1] === "unlimited" ? Infinity : Number(m[1]);
}

function readLimits(): string {
  try {
    return readFileSync("/proc/self/limits", "utf8");
  } catch {
    return "";
  }
}

/** Descriptors open now; Infinity when the table is full (counting needs one); undefined when they cannot be counted. */
export function openFiles(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch (e) {
    const code = (e as { code?: string }).code;
    return code === "EMFILE" || code === "ENFILE" ? Infinity : undefined;
  }
}

/** Descriptors the settings need: one per agent connection, unauthenticated clients, the database pool, and slack. */
export function filesNeeded(config: Pick<Config, "dbPoolSize" | "clients">): number {
  return config.clients.maxAgents + Math.min(config.clients.maxUnauthenticatedPerIp * 4, 4096) + config.dbPoolSize + FILE_SLACK;
}

/** Files the process needs besides connections: its database files, logs, certificates, a margin. */
const FILE_SLACK = 256;

export function fileLimitWarning(config: Pick<Config, "dbPoolSize" | "clients">, limit = fileLimit()): string | undefined {
  if (limit === undefined) return undefined;
  const need = filesNeeded(config);
  if (limit >= need) return undefined;
  return (
    `warning: the open-files limit is ${limit}, below the ${need} that SERVERMIND_MAX_AGENTS=${config.clients.maxAgents} needs ` +
    `(one per agent connection, plus unauthenticated clients, the database pool and ${FILE_SLACK} spare); ` +
    `raise it (ulimit -n, or LimitNOFILE= in the systemd unit) or lower SERVERMIND_MAX_AGENTS. ` +
    `Near the limit the server stops accepting connections until some close (docs/operations.md, Sizing)`
  );
}

export interface AcceptGuardOptions {
  limit: number;
  /** Stop accepting when fewer than this many descriptors remain; accept again above twice it. */
  reserve: number;
  pause(): void;
  resume(): void;
  count?: () => number | undefined;
  log?: (line: string) => void;
  /** How often the descriptors are counted near the limit (slower far from it). */
  intervalMs?: number;
}

export class AcceptGuard {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  paused = false;
  readonly pauses = new Counter("server_accept_pauses_total", "Times the server stopped accepting connections because it was near its open-files limit.");
  readonly metrics: Array<{ render(): string }>;
  private last = 0;

  constructor(private readonly o: AcceptGuardOptions) {
    this.metrics = [
      this.pauses,
      new Gauge("server_accept_paused", "1 while the server refuses new connections near its open-files limit.", () => (this.paused ? 1 : 0)),
      new Gauge("server_open_files", "File descriptors open (at the last check).", () => this.last),
      new Gauge("server_open_files_limit", "The open-files limit (ulimit -n).", () => (Number.isFinite(o.limit) ? o.limit : -1)),
    ];
  }

  start(): this {
    if (Number.isFinite(this.o.limit)) this.check();
    return this;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Counts now and acts; then again soon, sooner the nearer the limit. */
  check(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const n = (this.o.count ?? openFiles)();
    if (n === undefined) return;
    this.last = Math.min(n, this.o.limit);
    const free = this.o.limit - n;
    const log = this.o.log ?? ((l: string) => console.error(l));
    if (!this.paused && free < this.o.reserve) {
      this.paused = true;
      this.pauses.inc();
      log(`open files ${Number.isFinite(n) ? n : "at the limit"} of ${this.o.limit}: not accepting new connections until ${2 * this.o.reserve} are free (raise ulimit -n; see docs/operations.md, Sizing)`);
      this.o.pause();
    } else if (this.paused && free >= 2 * this.o.reserve) {
      this.paused = false;
      log(`open files ${n} of ${this.o.limit}: accepting connections again`);
      this.o.resume();
    }
    const base = this.o.intervalMs ?? 250;
    const wait = this.paused || free < 8 * this.o.reserve ? base : base * 8;
    this.timer = setTimeout(() => this.check(), wait);
    this.timer.unref?.();
  }
}
