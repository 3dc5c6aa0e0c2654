/**
 * A server process a test starts on 127.0.0.1 (sshd, apache2, vsftpd, pyftpdlib, smbd for the backup
 * destinations): started with a config in a temp dir, waited for on its port, and stopped with
 * every process it forked (a daemon serves each connection from a child, which must die too when
 * a test "stops the server mid-upload").
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";

export { freePort } from "../../src/store/postgres/embedded.ts";

/** What every destination server a backup test starts offers (sshd adds keys, apache2 a URL...). */
export interface TestDestinationServer {
  /** a folder on the server for repositories (also a local path: tests look at the raw files) */
  dataDir: string;
  /** kill -9 of the server and its session processes (the server gone mid-upload) */
  kill(): Promise<void>;
  /** start again on the same port with the same keys */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** ... and a user with a password (WebDAV, FTP, SMB). */
export interface TestPasswordServer extends TestDestinationServer {
  username: string;
  password: string;
}

export async function waitForPort(port: number, ms: number, what: string, log: () => string = () => ""): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, "127.0.0.1", () => {
        c.destroy();
        r(true);
      });
      c.on("error", () => r(false));
    });
    if (ok) return;
    await Bun.sleep(50);
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${ms} ms: ${log().slice(-800)}`);
}

/** Every descendant of `pid` (children first found by their parent id in /proc). */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      parentOf.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) if (parent === p) {
      out.push(child);
      walk(child);
    }
  };
  walk(pid);
  return out;
}

export interface Daemon {
  proc: ChildProcess;
  log(): string;
  /** SIGKILL to the daemon and everything it forked; resolves when the daemon has exited. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`, to the daemon and its children. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `cmd`; resolves once it listens on `port` (or at once when `port` is null: the caller waits its own way). */
export async function startDaemon(what: string, cmd: string[], port: number | null, opts: { env?: Record<string, string>; ms?: number } = {}): Promise<Daemon> {
  // its own process group: smbd, for one, signals its whole group when it stops
  const proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env }, detached: true });
  let log = "";
  proc.stdout!.on("data", (d) => (log = (log + String(d)).slice(-20_000)));
  proc.stderr!.on("data", (d) => (log = (log + String(d)).slice(-20_000)));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of [...descendants(proc.pid!), proc.pid!]) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  const d: Daemon = {
    proc,
    log: () => log,
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      signal("SIGKILL");
      await exited;
    },
    async stop(graceMs = 3000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      signal("SIGTERM");
      await Promise.race([exited, Bun.sleep(graceMs)]);
      await d.kill();
    },
  };
  try {
    if (port !== null) await waitForPort(port, opts.ms ?? 15_000, what, () => log);
  } catch (e) {
    await d.kill();
    throw e;
  }
  return d;
}

/** kill -9, restart and stop of a test server run by one daemon. */
export type DaemonControls = Pick<TestDestinationServer, "kill" | "restart" | "stop">;

export interface DirDaemonOptions {
  env?: Record<string, string>;
  /** how long to wait for the port (startDaemon's default when absent) */
  ms?: number;
  /** how the server is killed (kill -9 of the daemon and its children when absent) */
  kill?: (d: Daemon) => Promise<void>;
  /** runs between the kill and the new start of a restart (a stale pid file to remove...) */
  beforeRestart?: () => void;
  /** undoes what the server needed outside `dir` (an account...): after a failed start, and at stop */
  cleanup?: () => void;
  /** runs at stop, after the daemon has stopped and before `dir` is removed */
  onStop?: () => void;
}

/**
 * Starts `cmd`, a test server whose files all lie in the temp dir `dir`, and answers its
 * controls: kill, restart on the same port, and stop, which removes `dir`. When the server does
 * not come up, `dir` is removed (and `cleanup` run) before the error is thrown.
 */
export async function startDirDaemon(what: string, cmd: string[], port: number, dir: string, o: DirDaemonOptions = {}): Promise<DaemonControls> {
  const start = () => startDaemon(what, cmd, port, { env: o.env, ms: o.ms });
  const remove = () => {
    o.cleanup?.();
    rmSync(dir, { recursive: true, force: true });
  };
  let daemon: Daemon;
  try {
    daemon = await start();
  } catch (e) {
    remove();
    throw e;
  }
  const kill = () => (o.kill ? o.kill(daemon) : daemon.kill());
  return {
    kill,
    async restart() {
      await kill();
      o.beforeRestart?.();
      daemon = await start();
    },
    async stop() {
      await daemon.stop();
      o.onStop?.();
      remove();
    },
  };
}
