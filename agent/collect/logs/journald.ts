/**
 * Follows the systemd journal through `journalctl -o json --follow`. Lines are buffered up to a
 * bound (overflow is counted, never silent); the cursor of the last line handed out is saved
 * by `commit()` once those lines are in the spool, and the next start resumes after it. A
 * journalctl that exits is restarted with backoff and continues after the last record read.
 */
import { existsSync, readFileSync } from "node:fs";
import { replaceFile } from "../../state-file.ts";
import { clampMessage, type LogLine } from "./line.ts";

export interface JournalTailOptions {
  cursorPath: string;
  /** argv[0]; default "journalctl" looked up on PATH. */
  journalctl?: string;
  /**
   * Read the journal files in this directory (`journalctl --directory`) instead of the system
   * journal, e.g. a host's /var/log/journal mounted into a container at another path.
   */
  directory?: string;
  maxBuffered?: number;
}

export interface JournalTail {
  poll(): LogLine[];
  commit(): void;
  /** Lines dropped because the buffer was full or the record was over MAX_RECORD_CHARS. */
  dropped(): number;
  running(): boolean;
  close(): void;
}

/**
 * The values of one `journalctl -o json` field: a string; an array of byte values when the value
 * is not printable UTF-8 (decoded here, invalid sequences become U+FFFD); or an array of those
 * when the entry carries the field more than once.
 */
function fieldValues(v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (!Array.isArray(v)) return [];
  if (v.every((b) => typeof b === "number")) return [Buffer.from(v).toString("utf8")];
  return v.flatMap(fieldValues);
}

/** Decodes one `journalctl -o json` record; undefined for anything that is not a usable entry. */
export function parseJournalRecord(line: string): (LogLine & { cursor: string }) | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!r || typeof r !== "object" || typeof r.__CURSOR !== "string") return undefined;
  const messages = fieldValues(r.MESSAGE);
  if (messages.length === 0) return undefined;
  const us = Number(r.__REALTIME_TIMESTAMP);
  const prio = Number(fieldValues(r.PRIORITY)[0]);
  const source = fieldValues(r._SYSTEMD_UNIT)[0] ?? fieldValues(r.SYSLOG_IDENTIFIER)[0] ?? fieldValues(r._COMM)[0] ?? "journal";
  return {
    ts: Number.isFinite(us) ? Math.floor(us / 1000) : Date.now(),
    severity: Number.isInteger(prio) && prio >= 0 && prio <= 7 ? prio : 6,
    source: `journal:${source}`.slice(0, 200),
    message: clampMessage(messages.join("\n")),
    cursor: r.__CURSOR,
  };
}

export function journalctlAvailable(bin = "journalctl"): boolean {
  try {
    const p = Bun.spawnSync([bin, "--version"], { stdout: "ignore", stderr: "ignore", timeout: 5000 });
    return p.exitCode === 0;
  } catch {
    return false;
  }
}

/** Longest `journalctl -o json` line read; longer records are counted as dropped. */
export const MAX_RECORD_CHARS = 1 << 20;

export function createJournalTail(opts: JournalTailOptions): JournalTail {
  const max = opts.maxBuffered ?? 50_000;
  let buffered: Array<LogLine & { cursor: string }> = [];
  let handedCursor: string | undefined;
  /** Cursor of the last record read: a restarted journalctl continues there, not at the saved cursor. */
  let readCursor: string | undefined;
  let drops = 0;
  let closed = false;
  let alive = false;
  let restartDelay = 1000;
  let proc: ReturnType<typeof Bun.spawn> | undefined;

  const start = () => {
    if (closed) return;
    let cursor = readCursor;
    try {
      if (!cursor && existsSync(opts.cursorPath)) cursor = readFileSync(opts.cursorPath, "utf8").trim() || undefined;
    } catch {
      cursor = undefined;
    }
    // --all: without it journalctl prints null for any field over 4096 bytes, losing long messages
    const args = [opts.journalctl ?? "journalctl", "-o", "json", "--all", "--follow", "--no-pager"];
    if (opts.directory) args.push(`--directory=${opts.directory}`);
    if (cursor) args.push(`--after-cursor=${cursor}`);
    else args.push("--lines=0");
    try {
      proc = Bun.spawn(args, { stdout: "pipe", stderr: "ignore", stdin: "ignore" });
    } catch {
      setTimeout(start, (restartDelay = Math.min(restartDelay * 2, 60_000))).unref();
      return;
    }
    alive = true;
    const p = proc;
    (async () => {
      const decoder = new TextDecoder();
      let rest = "";
      let cut = false; // a record over MAX_RECORD_CHARS was counted as dropped; skip its remainder
      for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
        rest += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          const text = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (cut) {
            cut = false;
            continue;
          }
          const rec = parseJournalRecord(text);
          if (!rec) continue;
          readCursor = rec.cursor;
          restartDelay = 1000;
          if (buffered.length >= max) {
            drops++;
            continue;
          }
          buffered.push(rec);
        }
        if (rest.length > MAX_RECORD_CHARS) {
          if (!cut) drops++;
          cut = true;
          rest = "";
        }
      }
    })()
      .catch(() => {})
      .finally(async () => {
        await p.exited;
        alive = false;
        if (!closed) setTimeout(start, (restartDelay = Math.min(restartDelay * 2, 60_000))).unref();
      });
  };
  start();

  return {
    poll() {
      const out = buffered;
      buffered = [];
      if (out.length) handedCursor = out[out.length - 1]!.cursor;
      return out.map(({ cursor: _c, ...l }) => l);
    },
    commit() {
      if (!handedCursor) return;
      replaceFile(opts.cursorPath, handedCursor);
    },
    dropped: () => drops,
    running: () => alive,
    close() {
      closed = true;
      proc?.kill();
    },
  };
}
