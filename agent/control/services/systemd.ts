/**
 * systemd through `systemctl` and `journalctl` (their stable command-line interfaces, which talk
 * D-Bus to the manager for us): list-units as JSON (plain text on systemctl versions without
 * --output=json), `show` for one unit's properties, the unit's journal as JSON, and the six
 * operations. Every user-supplied unit name was validated by the caller and is passed after
 * `--` (or as the value of --unit=, which cannot be taken for an option).
 */
import type { ServiceOp } from "../../../src/ingest/frame/service-commands.ts";
import type { ActionOutcome, JournalLine, ServiceManager, UnitRow, UnitStatus } from "./manager.ts";
import { ServiceError } from "./manager.ts";
import { followProgram, runProgram, type RunResult } from "./run.ts";
import { NO_OUTPUT, type OutputSink } from "../output.ts";

export interface SystemdOptions {
  /** talk to the calling user's manager (`systemctl --user`) instead of the system one */
  user?: boolean;
  timeoutMs?: number;
  systemctl?: string;
  journalctl?: string;
  /** extra environment for the programs (e.g. XDG_RUNTIME_DIR of a user instance) */
  env?: Record<string, string>;
  /** read the journal from this directory (`journalctl --directory`) instead of the system's */
  journalDir?: string;
  /** how often the unit's state is read while an operation runs (ms, default 250) */
  statePollMs?: number;
}

const SHOW_PROPS = ["Id", "Description", "LoadState", "ActiveState", "SubState", "UnitFileState", "MainPID", "ActiveEnterTimestamp", "FragmentPath"];

/** `systemctl list-units --output=json` → rows (fields missing from an entry become ""). */
export function parseListUnitsJson(text: string): UnitRow[] {
  const v = JSON.parse(text) as unknown;
  if (!Array.isArray(v)) throw new ServiceError("systemctl list-units did not print a JSON list");
  return v.filter((x) => x && typeof x === "object" && typeof x.unit === "string").map((x) => ({
    unit: String(x.unit),
    load: String(x.load ?? ""),
    active: String(x.active ?? ""),
    sub: String(x.sub ?? ""),
    description: String(x.description ?? ""),
  }));
}

/** `systemctl list-units --plain --no-legend` → rows: UNIT LOAD ACTIVE SUB DESCRIPTION... */
export function parseListUnitsPlain(text: string): UnitRow[] {
  const rows: UnitRow[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/^[●*]\s*/, "").trim();
    if (!line) continue;
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m) rows.push({ unit: m[1]!, load: m[2]!, active: m[3]!, sub: m[4]!, description: m[5]! });
  }
  return rows;
}

/** `systemctl show` output (KEY=VALUE lines) → a map; a value may contain "=". */
export function parseShow(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** `journalctl -o json` (one object per line) → lines, oldest first; byte-array messages decoded. */
export function parseJournal(text: string): JournalLine[] {
  const out: JournalLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    let message = "";
    if (typeof e.MESSAGE === "string") message = e.MESSAGE;
    else if (Array.isArray(e.MESSAGE)) message = Buffer.from(e.MESSAGE.filter((b): b is number => typeof b === "number")).toString("utf8");
    const us = Number(e.__REALTIME_TIMESTAMP);
    const pr = Number(e.PRIORITY);
    out.push({ ts: Number.isFinite(us) ? Math.floor(us / 1000) : 0, priority: e.PRIORITY === undefined || !Number.isFinite(pr) ? null : pr, message: message.slice(0, 2048) });
  }
  return out;
}

const trimOutput = (r: RunResult) => `${r.stdout}${r.stderr}`.trim().slice(0, 8192);

export function createSystemd(o: SystemdOptions = {}): ServiceManager {
  const systemctl = o.systemctl ?? "systemctl";
  const journalctl = o.journalctl ?? "journalctl";
  const scope = o.user ? ["--user"] : [];
  const ctl = (args: string[]) => runProgram([systemctl, ...scope, "--no-pager", ...args], { timeoutMs: o.timeoutMs, env: o.env });
  const journalArgs = (unit: string) => [journalctl, ...(o.journalDir ? [`--directory=${o.journalDir}`] : []), "--no-pager", "-o", "json", o.user ? `--user-unit=${unit}` : `--unit=${unit}`];
  const failed = (what: string, r: RunResult) =>
    new ServiceError(r.timedOut ? `${what} did not finish within ${Math.round((o.timeoutMs ?? 30_000) / 1000)} s` : `${what} failed (exit ${r.code}): ${trimOutput(r) || "no output"}`);

  async function show(unit: string): Promise<Record<string, string>> {
    const r = await ctl(["show", `--property=${SHOW_PROPS.join(",")}`, "--", unit]);
    if (r.code !== 0) throw failed(`systemctl show ${unit}`, r);
    return parseShow(r.stdout);
  }

  /**
   * enabled / disabled / static / masked ...: `is-enabled` reads the unit files now, where the
   * manager's UnitFileState property can lag until its next reload.
   */
  async function enabledState(unit: string, fallback: string): Promise<string> {
    const r = await ctl(["is-enabled", "--", unit]);
    const first = r.stdout.trim().split("\n")[0]?.trim() ?? "";
    return /^[a-z-]+$/.test(first) ? first : fallback;
  }

  return {
    name: o.user ? "systemd (user instance)" : "systemd",
    async list() {
      const r = await ctl(["--plain", "--all", "list-units", "--output=json"]);
      if (r.code === 0 && r.stdout.trimStart().startsWith("[")) return parseListUnitsJson(r.stdout);
      if (r.timedOut) throw failed("systemctl list-units", r);
      // systemctl before v246 has no --output=json
      const p = await ctl(["--plain", "--all", "--no-legend", "list-units"]);
      if (p.code !== 0) throw failed("systemctl list-units", p);
      return parseListUnitsPlain(p.stdout);
    },
    async status(unit, lines) {
      const p = await show(unit);
      const n = Math.max(0, Math.min(200, Math.floor(lines)));
      let journal: JournalLine[] = [];
      let journalNote: string | undefined;
      if (n > 0) {
        const j = await runProgram([...journalArgs(unit), "-n", String(n)], { timeoutMs: o.timeoutMs, env: o.env });
        if (j.code === 0) journal = parseJournal(j.stdout);
        else journalNote = j.timedOut ? "journalctl did not finish in time" : `journalctl failed: ${trimOutput(j).slice(0, 300) || `exit ${j.code}`}`;
        if (!journal.length && !journalNote && /No journal files/i.test(j.stderr)) journalNote = "no journal files on this host";
      }
      const pid = Number(p.MainPID);
      return {
        unit: p.Id || unit,
        description: p.Description ?? "",
        load: p.LoadState ?? "",
        active: p.ActiveState ?? "",
        sub: p.SubState ?? "",
        enabled: await enabledState(unit, p.UnitFileState ?? ""),
        mainPid: Number.isFinite(pid) && pid > 0 ? pid : null,
        since: p.ActiveEnterTimestamp ?? "",
        fragment: p.FragmentPath ?? "",
        journal,
        ...(journalNote ? { journalNote } : {}),
      };
    },
    /**
     * With a live `out`, while systemctl runs: its output lines as printed ("systemctl"), the
     * unit's journal entries from the start of the operation on ("journal", `journalctl -f`),
     * and each change of its state, read every statePollMs ("state"). All three stop when
     * systemctl ends (the journal a moment later, for entries still in flight).
     */
    async action(unit, op: ServiceOp, out: OutputSink = NO_OUTPUT): Promise<ActionOutcome> {
      const live = out !== NO_OUTPUT;
      const t0 = Date.now();
      let following = live;
      let journal: { stop(): Promise<void> } | undefined;
      let polling: Promise<void> | undefined;
      if (live) {
        journal = followProgram([...journalArgs(unit), "-f", `--since=@${Math.floor(t0 / 1000)}`], (l) => {
          for (const e of parseJournal(l)) if (e.ts >= t0 - 50) out.line("journal", e.message, e.ts);
        }, { env: o.env, maxMs: (o.timeoutMs ?? 30_000) + 5000 });
        polling = (async () => {
          let last = "";
          while (following) {
            const r = await ctl(["show", "--property=ActiveState,SubState", "--", unit]);
            const p = parseShow(r.stdout);
            const state = `${p.ActiveState ?? "?"} (${p.SubState ?? "?"})`;
            if (r.code === 0 && following && state !== last) {
              last = state;
              out.line("state", `${unit}: ${state}`);
            }
            await Bun.sleep(o.statePollMs ?? 250);
          }
        })();
      }
      const r = await runProgram([systemctl, ...scope, "--no-pager", op, "--", unit], { timeoutMs: o.timeoutMs, env: o.env, onLine: live ? (l) => out.line("systemctl", l) : undefined });
      if (live) {
        following = false;
        await polling;
        await Bun.sleep(300);
        await journal!.stop();
      }
      let after: ActionOutcome["after"] = null;
      try {
        const p = await show(unit);
        after = { active: p.ActiveState ?? "", sub: p.SubState ?? "", enabled: await enabledState(unit, p.UnitFileState ?? "") };
      } catch {
        after = null;
      }
      const ok = r.code === 0;
      return {
        ok,
        exitCode: r.code,
        timedOut: r.timedOut,
        output: trimOutput(r),
        after,
        ...(ok ? {} : { error: r.timedOut ? `systemctl ${op} did not finish in time` : `systemctl ${op} ${unit} failed (exit ${r.code})` }),
      };
    },
  };
}
