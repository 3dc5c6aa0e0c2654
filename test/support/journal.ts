/**
 * Real systemd journal files for tests, without a running systemd: entries are written in the
 * journal export format (`journalctl -o export`) and piped into systemd-journal-remote, which
 * creates the .journal file or appends to it. The real `journalctl --directory` reads them.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { journalctlAvailable } from "../../agent/collect/logs/journald.ts";

export const JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote";

export function journalRemoteAvailable(): boolean {
  return existsSync(JOURNAL_REMOTE) && journalctlAvailable();
}

/**
 * One journal entry: field name to value. A Uint8Array, or a string holding a newline, is written
 * in the export format's binary form; an array writes the field once per value.
 * `__REALTIME_TIMESTAMP` (µs) defaults to now, strictly increasing across calls.
 */
export type JournalEntry = Record<string, string | Uint8Array | Array<string | Uint8Array>>;

const BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id";
const BOOT_ID = existsSync(BOOT_ID_FILE) ? readFileSync(BOOT_ID_FILE, "utf8").trim().replaceAll("-", "") : "0123456789abcdef0123456789abcdef";
let lastRealtimeUs = 0;
let monotonicUs = 1;

function exportField(name: string, value: string | Uint8Array): Buffer {
  if (typeof value === "string" && !value.includes("\n")) return Buffer.from(`${name}=${value}\n`);
  const data = typeof value === "string" ? Buffer.from(value) : Buffer.from(value);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(data.length));
  return Buffer.concat([Buffer.from(`${name}\n`), size, data, Buffer.from("\n")]);
}

/** The export format of `entries`: fields one per line (or binary), entries ended by a blank line. */
export function exportEntries(entries: JournalEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const realtime = typeof e.__REALTIME_TIMESTAMP === "string" ? Number(e.__REALTIME_TIMESTAMP) : Math.max(Date.now() * 1000, lastRealtimeUs + 1);
    lastRealtimeUs = Math.max(lastRealtimeUs, realtime);
    const fields: JournalEntry = { _BOOT_ID: BOOT_ID, __MONOTONIC_TIMESTAMP: String(monotonicUs++), ...e, __REALTIME_TIMESTAMP: String(realtime) };
    for (const [name, value] of Object.entries(fields)) {
      for (const v of Array.isArray(value) ? value : [value]) parts.push(exportField(name, v));
    }
    parts.push(Buffer.from("\n"));
  }
  return Buffer.concat(parts);
}

/**
 * Writes `entries` into the journal file `file` (must end in .journal; its directory is created),
 * appending if it exists.
 */
export function writeJournal(file: string, entries: JournalEntry[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const p = spawnSync(JOURNAL_REMOTE, [`--output=${file}`, "-"], { input: exportEntries(entries), timeout: 10_000 });
  const stderr = p.stderr?.toString() ?? "";
  if (p.status !== 0 || !stderr.includes(`writing ${entries.length} entries`)) {
    throw new Error(`systemd-journal-remote --output=${file} exited ${p.status} for ${entries.length} entries: ${stderr.trim()}`);
  }
}
