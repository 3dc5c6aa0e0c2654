/**
 * Control's backup jobs (docs/backup-format.md, "Jobs on managed hosts"): `backup.run`,
 * `backup.restore`, `backup.snapshots`, `backup.ls` (one directory level of a snapshot, for the
 * console's snapshot browser), `backup.result` (a run's result again, see ./results.ts) and
 * `backup.test`. The command was verified (signature,
 * agent, age, nonce, allow-list BACKUP_ACTIONS) by Control before it gets here. It carries the
 * destination's configuration WITH its credentials and the repository password: they exist on
 * this host only inside the signed command and this process's memory, and are never logged or
 * written to disk (errors are passed through redactText before they leave).
 *
 * The engine (agent/backup) streams straight from this host to the destination; nothing passes
 * through the ServerMind server but progress lines and the final statistics.
 */
import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { backup } from "../../backup/backup.ts";
import { openDestination, SECRET_FIELDS, type ClosableDestination, type DestinationConfig } from "../../backup/destinations.ts";
import { BackupError } from "../../backup/error.ts";
import { forget, prune } from "../../backup/prune.ts";
import { Repository } from "../../backup/repository.ts";
import { restore } from "../../backup/restore.ts";
import { listSnapshots } from "../../backup/snapshots.ts";
import { listTree } from "../../backup/tree.ts";
import { NO_OUTPUT, type OutputSink } from "../output.ts";
import { forgetResult, keepResult, readResult, validIds } from "./results.ts";
import { repositoryBytes } from "./repo-size.ts";

export const BACKUP_ACTIONS: ReadonlySet<string> = new Set(["backup.run", "backup.restore", "backup.snapshots", "backup.ls", "backup.result", "backup.test"]);

export interface DumpSpec {
  kind: "postgres" | "mysql";
  host?: string;
  port?: number;
  user?: string;
  database: string;
  password?: string;
}

export interface BackupHandlerOptions {
  /** where database dumps are written before they are backed up (one folder per job) */
  dumpDir: string;
  /** progress line interval */
  progressMs?: number;
  /** where results of runs and restores are kept until the server has them (default: backup-results beside dumpDir) */
  resultsDir?: string;
}

/** Every secret value of the command, so no error text carries one back. */
function secretsOf(args: Record<string, unknown>): string[] {
  const d = (args.destination ?? {}) as Record<string, unknown>;
  const out = SECRET_FIELDS.map((f) => d[f]).filter((v): v is string => typeof v === "string" && v.length >= 4);
  if (typeof args.password === "string") out.push(args.password);
  const dump = args.dump as Record<string, unknown> | undefined;
  if (typeof dump?.password === "string" && dump.password.length >= 4) out.push(dump.password);
  return out;
}

export function redactText(text: string, secrets: string[]): string {
  let t = text;
  for (const s of secrets) t = t.split(s).join("********");
  return t;
}

const fmt = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

function strings(v: unknown, max = 200): string[] {
  if (!Array.isArray(v)) return [];
  return v.filter((s): s is string => typeof s === "string" && s.length > 0 && s.length <= 4096 && !s.includes("\0")).slice(0, max);
}

/** Runs pg_dump / mysqldump with its stdout streamed to a file (never held in memory), no shell. */
async function dumpDatabase(d: DumpSpec, file: string, out: OutputSink): Promise<number> {
  const env: Record<string, string | undefined> = { ...process.env, LC_ALL: "C" };
  let argv: string[];
  if (d.kind === "postgres") {
    argv = ["pg_dump", "--format=custom", "--no-password", ...(d.host ? ["-h", d.host] : []), ...(d.port ? ["-p", String(d.port)] : []), ...(d.user ? ["-U", d.user] : []), "-d", d.database];
    if (d.password) env.PGPASSWORD = d.password;
  } else {
    argv = ["mysqldump", "--single-transaction", "--routines", ...(d.host ? ["-h", d.host] : []), ...(d.port ? ["-P", String(d.port)] : []), ...(d.user ? ["-u", d.user] : []), "--", d.database];
    if (d.password) env.MYSQL_PWD = d.password;
  }
  out.line("backup", `dumping ${d.kind} database ${d.database} with ${argv[0]}`);
  let p: ReturnType<typeof Bun.spawn>;
  try {
    p = Bun.spawn(argv, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    throw new BackupError("usage", `${argv[0]} could not be started: ${e instanceof Error ? e.message : e}`);
  }
  const sink = createWriteStream(file, { mode: 0o600 });
  let bytes = 0;
  const writing = (async () => {
    for await (const c of p.stdout as ReadableStream<Uint8Array>) {
      bytes += c.length;
      if (!sink.write(c)) await new Promise((r) => sink.once("drain", r));
    }
    await new Promise<void>((r, j) => sink.end((e?: Error | null) => (e ? j(e) : r())));
  })();
  const stderr = new Response(p.stderr as ReadableStream<Uint8Array>).text();
  const [code, err] = await Promise.all([p.exited, stderr, writing]).then(([c, e]) => [c, e] as const);
  if (code !== 0) throw new BackupError("usage", `${argv[0]} failed (exit ${code}): ${err.trim().slice(0, 1000)}`);
  out.line("backup", `dump of ${d.database}: ${fmt(bytes)}`);
  return bytes;
}

function checkDump(v: unknown): DumpSpec | null {
  if (!v || typeof v !== "object") return null;
  const d = v as Record<string, unknown>;
  if (d.kind !== "postgres" && d.kind !== "mysql") throw new BackupError("usage", "dump.kind must be postgres or mysql");
  if (typeof d.database !== "string" || !/^[A-Za-z0-9_.$-]{1,63}$/.test(d.database)) throw new BackupError("usage", "dump.database must be a database name");
  const str = (x: unknown) => (typeof x === "string" && x && !x.startsWith("-") && x.length < 256 ? x : undefined);
  const port = Number(d.port);
  return { kind: d.kind, database: d.database, host: str(d.host), user: str(d.user), port: Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined, password: typeof d.password === "string" ? d.password : undefined };
}

/** Opens the job's repository, creating it when `init` allows and none exists yet. */
async function openRepo(dest: ClosableDestination, password: string, init: boolean, out: OutputSink): Promise<{ repo: Repository; recoveryKey?: string }> {
  try {
    return { repo: await Repository.open(dest, password) };
  } catch (e) {
    if (!(e instanceof BackupError && e.code === "not_found") || !init) throw e;
  }
  out.line("backup", "no repository at the destination yet: creating one");
  const { repo, recoveryKey } = await Repository.init(dest, password);
  return { repo, recoveryKey };
}

/**
 * Runs one verified backup command; never throws (errors become {ok: false, error}). The result of
 * a run or restore is also kept on disk (sealed) until the server fetches it with `backup.result`:
 * an answer lost with the server's restart is not lost with it.
 */
export function createBackupHandler(o: BackupHandlerOptions) {
  const resultsDir = o.resultsDir ?? join(dirname(o.dumpDir), "backup-results");
  const running = new Set<string>();
  const handle = createCommandHandler(o);
  return async (action: string, args: Record<string, unknown>, out: OutputSink = NO_OUTPUT): Promise<Record<string, unknown>> => {
    const ids = validIds(args.job, args.run);
    const password = typeof args.password === "string" ? args.password : "";
    if (action === "backup.result") {
      if (!ids || !password) return { ok: false, action, error: "backup.result needs job, run and the repository password" };
      if (running.has(`${ids.job}-${ids.run}`)) return { ok: true, action, state: "running" };
      try {
        const result = await readResult(resultsDir, ids.job, ids.run, password);
        if (!result) return { ok: true, action, state: "unknown" };
        if (args.forget === true) await forgetResult(resultsDir, ids.job, ids.run);
        return { ok: true, action, state: "done", result };
      } catch (e) {
        return { ok: false, action, error: `the kept result does not open: ${e instanceof Error ? e.message : e}` };
      }
    }
    const durable = (action === "backup.run" || action === "backup.restore") && ids && password;
    if (!durable) return handle(action, args, out);
    const key = `${ids.job}-${ids.run}`;
    running.add(key);
    try {
      const result = await handle(action, args, out);
      await keepResult(resultsDir, ids.job, ids.run, password, result).catch((e) => out.line("backup", `the result could not be kept on this host: ${e instanceof Error ? e.message : e}`));
      return result;
    } finally {
      running.delete(key);
    }
  };
}

function createCommandHandler(o: BackupHandlerOptions) {
  const every = o.progressMs ?? 2000;
  return async (action: string, args: Record<string, unknown>, out: OutputSink = NO_OUTPUT): Promise<Record<string, unknown>> => {
    const secrets = secretsOf(args);
    const t0 = performance.now();
    let dest: ClosableDestination | undefined;
    try {
      const cfg = args.destination as DestinationConfig | undefined;
      if (!cfg || typeof cfg !== "object" || typeof cfg.type !== "string") throw new BackupError("usage", "the command names no destination");
      dest = openDestination(cfg);
      if (action === "backup.test") {
        // reach the destination: list, write, read back and remove one object
        const name = `servermind-test-${Date.now().toString(36)}`;
        await dest.list("keys/");
        await dest.put(name, new TextEncoder().encode("servermind destination test\n"));
        const back = await dest.get(name);
        await dest.delete(name);
        const repository = await dest.exists("config");
        return { ok: back.length === 28, action, repository, ms: Math.round(performance.now() - t0) };
      }
      const password = typeof args.password === "string" ? args.password : "";
      if (!password) throw new BackupError("usage", "the command carries no repository password");
      if (action === "backup.snapshots") {
        const repo = await Repository.open(dest, password);
        const snaps = await listSnapshots(repo);
        return { ok: true, action, snapshots: snaps.slice(-200).map((s) => ({ id: s.id, time: s.time, host: s.host, paths: s.paths, files: s.stats.files, bytes: s.stats.bytes })) };
      }
      if (action === "backup.ls") {
        const snapshot = typeof args.snapshot === "string" && /^([0-9a-f]{32}|latest)$/.test(args.snapshot) ? args.snapshot : null;
        if (!snapshot) throw new BackupError("usage", "snapshot must be a snapshot id or latest");
        const dir = typeof args.path === "string" && args.path.startsWith("/") && !args.path.split("/").includes("..") && args.path.length <= 4096 ? args.path : null;
        if (!dir) throw new BackupError("usage", "path must be an absolute path");
        const repo = await Repository.open(dest, password);
        const level = await listTree(repo, snapshot, dir, 2000);
        return { ok: true, action, ...level };
      }
      if (action === "backup.restore") {
        const repo = await Repository.open(dest, password);
        const snapshot = typeof args.snapshot === "string" && /^([0-9a-f]{32}|latest)$/.test(args.snapshot) ? args.snapshot : null;
        if (!snapshot) throw new BackupError("usage", "snapshot must be a snapshot id or latest");
        const target = typeof args.target === "string" && args.target.startsWith("/") && !args.target.split("/").includes("..") ? resolve(args.target) : null;
        if (!target) throw new BackupError("usage", "target must be an absolute path");
        const include = strings(args.include);
        out.line("backup", `restoring snapshot ${snapshot} to ${target}${include.length ? ` (only ${include.join(", ")})` : ""}`);
        const timer = setInterval(() => out.line("backup", `restoring… ${Math.round((performance.now() - t0) / 1000)} s`), every);
        try {
          const r = await restore(repo, snapshot, target, include.length ? { include } : {});
          out.line("backup", `restored ${r.files} files, ${fmt(r.bytes)}`);
          return { ok: true, action, snapshot, target, files: r.files, bytes: r.bytes, ms: Math.round(performance.now() - t0) };
        } finally {
          clearInterval(timer);
        }
      }
      if (action !== "backup.run") return { ok: false, action, error: `unknown backup action ${action}` };
      const paths = strings(args.paths).map((p) => resolve(p));
      const excludes = strings(args.excludes);
      const dump = checkDump(args.dump);
      const job = Number(args.job);
      if (!paths.length && !dump) throw new BackupError("usage", "the job names no path and no database");
      const { repo, recoveryKey } = await openRepo(dest, password, args.init === true, out);
      const roots = [...paths];
      let dumpFolder: string | undefined;
      if (dump) {
        dumpFolder = join(o.dumpDir, `job-${Number.isSafeInteger(job) ? job : 0}`);
        await mkdir(dumpFolder, { recursive: true, mode: 0o700 });
        await dumpDatabase(dump, join(dumpFolder, `${dump.database}.${dump.kind === "postgres" ? "pgdump" : "sql"}`), out);
        roots.push(dumpFolder);
      }
      out.line("backup", `backing up ${roots.join(", ")}`);
      let chunks = 0;
      const timer = setInterval(() => out.line("backup", `${chunks} new chunks uploaded, ${Math.round((performance.now() - t0) / 1000)} s`), every);
      let snap;
      try {
        snap = await backup(repo, roots, { excludes, onChunk: (n) => (chunks = n) });
      } finally {
        clearInterval(timer);
        if (dumpFolder) await rm(dumpFolder, { recursive: true, force: true }).catch(() => {});
      }
      const s = snap.stats;
      out.line("backup", `snapshot ${snap.id}: ${s.files} files, ${fmt(s.bytes)} read, ${fmt(s.newBytes)} new (${fmt(s.storedBytes)} stored)`);
      const keep = (args.keep ?? {}) as Record<string, unknown>;
      const n = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined);
      const policy = { last: n(keep.last), daily: n(keep.daily), weekly: n(keep.weekly), monthly: n(keep.monthly) };
      let retention: Record<string, unknown> = {};
      if (Object.values(policy).some((v) => v !== undefined)) {
        const f = await forget(repo, policy);
        const p = f.removed.length ? await prune(repo) : { deleted: 0 };
        retention = { kept: f.kept.length, removed: f.removed.length, deletedChunks: p.deleted };
        out.line("backup", `retention: ${f.kept.length} snapshots kept, ${f.removed.length} removed, ${p.deleted} chunks deleted`);
      }
      const repoBytes = await repositoryBytes(cfg, { dest, onError: (why) => out.line("backup", `repository size unknown: ${redactText(why, secrets)}`) });
      return {
        ok: true, action, snapshot: snap.id, files: s.files, bytes: s.bytes, newBytes: s.newBytes, newChunks: s.newChunks, storedBytes: s.storedBytes,
        repoBytes, retention, ms: Math.round(performance.now() - t0), ...(recoveryKey ? { recoveryKey } : {}),
      };
    } catch (e) {
      const msg = e instanceof BackupError ? `${e.message} (${e.code})` : `backup failed: ${e instanceof Error ? e.message : e}`;
      return { ok: false, action, error: redactText(msg, secrets), ms: Math.round(performance.now() - t0) };
    } finally {
      await dest?.close?.().catch(() => {});
    }
  };
}
