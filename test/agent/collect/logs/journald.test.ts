/**
 * The journal tail against the real journalctl, reading real journal files that
 * systemd-journal-remote writes into a temporary directory (no running systemd needed).
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createJournalTail, MAX_RECORD_CHARS, parseJournalRecord, type JournalTail, type JournalTailOptions } from "../../../../agent/collect/logs/journald.ts";
import { MAX_MESSAGE_CHARS, type LogLine } from "../../../../agent/collect/logs/line.ts";
import { requireComponent } from "../../../support/ci.ts";
import { journalRemoteAvailable, writeJournal, type JournalEntry } from "../../../support/journal.ts";

const available = requireComponent(journalRemoteAvailable(), "systemd-journal-remote and journalctl (apt: systemd-journal-remote)");
const real = available ? test : test.skip;

const tails: JournalTail[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const t of tails) t.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function journalDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sm-journal-"));
  dirs.push(d);
  return d;
}

function startTail(dir: string, over: Partial<JournalTailOptions> = {}): JournalTail {
  const t = createJournalTail({ cursorPath: join(dir, "cursor"), directory: join(dir, "journal"), ...over });
  tails.push(t);
  return t;
}

/** Polls until `n` lines arrived (or 10 s passed), then for `settleMs` more to catch extras. */
async function collect(t: JournalTail, n: number, settleMs = 300): Promise<LogLine[]> {
  let lines: LogLine[] = [];
  for (const end = Date.now() + 10_000; lines.length < n && Date.now() < end; ) {
    await Bun.sleep(25);
    lines = lines.concat(t.poll());
  }
  await Bun.sleep(settleMs);
  return lines.concat(t.poll());
}

/**
 * A tail without a cursor starts at the end of the journal, so entries written before journalctl
 * has opened it are (rightly) not shown. Write markers until the last one written comes through:
 * from then on every appended entry is followed, and the marker lines are consumed.
 */
async function untilFollowing(t: JournalTail, file: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const marker = `following-${i}`;
    writeJournal(file, [{ MESSAGE: marker }]);
    for (let w = 0; w < 8; w++) {
      await Bun.sleep(25);
      if (t.poll().some((l) => l.message === marker)) return;
    }
  }
  throw new Error("journalctl --follow never showed the marker entries written to " + file);
}

/** A journal with one entry in a fresh directory, and a tail that follows it. */
async function followingTail(over: Partial<JournalTailOptions> = {}, first = "before"): Promise<{ dir: string; file: string; t: JournalTail }> {
  const dir = journalDir();
  const file = join(dir, "journal", "a.journal");
  writeJournal(file, [{ MESSAGE: first }]);
  const t = startTail(dir, over);
  await untilFollowing(t, file);
  return { dir, file, t };
}

const messages = (lines: LogLine[]) => lines.map((l) => l.message);

/** The journalctl processes this test process started for the journal directory `dir`. */
function journalctlsFor(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (ppid === process.pid && argv.includes(`--directory=${dir}`)) pids.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await Bun.sleep(25)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

test("rejects records that are not usable journal entries", () => {
  expect(parseJournalRecord("{not json")).toBeUndefined();
  expect(parseJournalRecord(JSON.stringify({ MESSAGE: "no cursor" }))).toBeUndefined();
  expect(parseJournalRecord(JSON.stringify({ __CURSOR: "s=1" }))).toBeUndefined();
});

real("follows real journal files: message, priority -> severity, unit/identifier/comm -> source, timestamp; appends and new files in the directory", async () => {
  const { dir, file, t } = await followingTail({}, "written before the tail started");

  const us = Date.now() * 1000 + 456_789; // sub-millisecond part is cut, not rounded
  const entries: JournalEntry[] = [
    { MESSAGE: "sshd failed", PRIORITY: "3", _SYSTEMD_UNIT: "ssh.service", SYSLOG_IDENTIFIER: "sshd", _COMM: "sshd", __REALTIME_TIMESTAMP: String(us) },
    { MESSAGE: "from cron", PRIORITY: "4", SYSLOG_IDENTIFIER: "CRON", _COMM: "cron", __REALTIME_TIMESTAMP: String(us + 1000) },
    { MESSAGE: "only a command", PRIORITY: "7", _COMM: "bash", __REALTIME_TIMESTAMP: String(us + 2000) },
    { MESSAGE: "no priority, no source", __REALTIME_TIMESTAMP: String(us + 3000) },
    { MESSAGE: "priority out of range", PRIORITY: "9", __REALTIME_TIMESTAMP: String(us + 4000) },
  ];
  writeJournal(file, entries); // appended to the file journalctl is watching
  const lines = await collect(t, entries.length);
  const ms = Math.floor(us / 1000);
  expect(lines).toEqual([
    { ts: ms, severity: 3, source: "journal:ssh.service", message: "sshd failed" },
    { ts: ms + 1, severity: 4, source: "journal:CRON", message: "from cron" },
    { ts: ms + 2, severity: 7, source: "journal:bash", message: "only a command" },
    { ts: ms + 3, severity: 6, source: "journal:journal", message: "no priority, no source" },
    { ts: ms + 4, severity: 6, source: "journal:journal", message: "priority out of range" },
  ]);

  // a second file appearing in the directory (as after a rotation) is followed too
  writeJournal(join(dir, "journal", "b.journal"), [{ MESSAGE: "in a new file" }, { MESSAGE: "also new" }]);
  writeJournal(file, [{ MESSAGE: "old file again" }]);
  expect(messages(await collect(t, 3))).toEqual(["in a new file", "also new", "old file again"]);
  expect(t.dropped()).toBe(0);
  expect(t.running()).toBe(true);
}, 30_000);

real("resumes after the committed cursor: nothing lost, nothing committed read twice", async () => {
  const dir = journalDir();
  const file = join(dir, "journal", "a.journal");
  writeJournal(file, [{ MESSAGE: "before" }]);
  const cursorPath = join(dir, "cursor");
  const t1 = startTail(dir);
  await untilFollowing(t1, file);

  writeJournal(file, [{ MESSAGE: "a1" }, { MESSAGE: "a2" }, { MESSAGE: "a3" }]);
  expect(messages(await collect(t1, 3))).toEqual(["a1", "a2", "a3"]);
  t1.commit(); // a1..a3 are in the spool
  const committed = readFileSync(cursorPath, "utf8");
  expect(committed).toStartWith("s=");

  writeJournal(file, [{ MESSAGE: "a4" }]);
  expect(messages(await collect(t1, 1))).toEqual(["a4"]); // handed out, never committed
  t1.close();

  // written while no tail runs: one appended to the old file, two in a new file
  writeJournal(file, [{ MESSAGE: "b1" }]);
  writeJournal(join(dir, "journal", "b.journal"), [{ MESSAGE: "b2" }, { MESSAGE: "b3" }]);
  expect(readFileSync(cursorPath, "utf8")).toBe(committed);

  const t2 = startTail(dir);
  expect(messages(await collect(t2, 4))).toEqual(["a4", "b1", "b2", "b3"]);
  writeJournal(file, [{ MESSAGE: "c1" }]);
  expect(messages(await collect(t2, 1))).toEqual(["c1"]);
  t2.commit();
  t2.close();

  const t3 = startTail(dir);
  writeJournal(file, [{ MESSAGE: "d1" }]);
  expect(messages(await collect(t3, 1))).toEqual(["d1"]);
}, 30_000);

real("binary and non-UTF-8 MESSAGE fields arrive decoded; long and multi-valued ones are kept", async () => {
  const { dir, file, t } = await followingTail();

  const long = "x".repeat(MAX_MESSAGE_CHARS + 100);
  writeJournal(file, [
    { MESSAGE: new TextEncoder().encode("café \u0001bell") }, // binary form, valid UTF-8 with a control byte
    { MESSAGE: "first line\nsecond line" }, // binary form because of the newline
    { MESSAGE: new Uint8Array([0x62, 0x61, 0x64, 0x20, 0xff, 0xfe, 0x20, 0x65, 0x6e, 0x64]) }, // not UTF-8
    { MESSAGE: "y".repeat(5000) }, // over journalctl's 4096-byte field cut-off without --all
    { MESSAGE: long },
    { MESSAGE: ["first value", "second value"], PRIORITY: ["2", "5"] }, // a field given twice
  ]);
  const lines = await collect(t, 6);
  expect(messages(lines)).toEqual([
    "café \u0001bell",
    "first line\nsecond line",
    "bad \ufffd\ufffd end",
    "y".repeat(5000),
    long.slice(0, MAX_MESSAGE_CHARS - 1) + "…",
    "first value\nsecond value",
  ]);
  expect(lines[5]!.severity).toBe(2);
}, 30_000);

real("the buffer is bounded: overflow is counted, the lines kept are the oldest", async () => {
  const { dir, file, t } = await followingTail({ maxBuffered: 3 });

  writeJournal(file, [1, 2, 3, 4, 5].map((i) => ({ MESSAGE: `m${i}` })));
  for (const end = Date.now() + 10_000; t.dropped() < 2 && Date.now() < end; ) await Bun.sleep(25);
  expect(t.dropped()).toBe(2);
  expect(messages(t.poll())).toEqual(["m1", "m2", "m3"]);
}, 30_000);

real("a journalctl that exits is restarted after the last line read: none lost, none repeated", async () => {
  const { dir, file, t } = await followingTail();
  writeJournal(file, [{ MESSAGE: "m1" }]);
  expect(messages(await collect(t, 1, 0))).toEqual(["m1"]);
  t.commit();
  writeJournal(file, [{ MESSAGE: "m2" }]);
  expect(messages(await collect(t, 1, 0))).toEqual(["m2"]); // handed out, not yet committed

  const before = journalctlsFor(join(dir, "journal"));
  expect(before).toHaveLength(1);
  process.kill(before[0]!, "SIGKILL");
  await until(() => !t.running(), "the tail to notice journalctl exited");
  writeJournal(file, [{ MESSAGE: "m3" }]); // written while no journalctl runs
  await until(() => t.running(), "journalctl to be restarted");
  writeJournal(file, [{ MESSAGE: "m4" }]);
  expect(messages(await collect(t, 2))).toEqual(["m3", "m4"]);
}, 30_000);

real("a record over MAX_RECORD_CHARS is counted as dropped, the next one still arrives", async () => {
  const { dir, file, t } = await followingTail();
  writeJournal(file, [{ MESSAGE: "huge ".repeat(MAX_RECORD_CHARS / 4) }, { MESSAGE: "after the huge one" }]);
  expect(messages(await collect(t, 1))).toEqual(["after the huge one"]);
  expect(t.dropped()).toBe(1);
}, 30_000);

real("a directory that does not exist yields nothing and no cursor", async () => {
  const dir = journalDir();
  const t = startTail(dir);
  await Bun.sleep(500);
  expect(t.poll()).toEqual([]);
  t.commit();
  expect(existsSync(join(dir, "cursor"))).toBe(false);
});
