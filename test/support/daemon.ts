/**
 * A server process a test starts on 127.0.0.1 (sshd, apache2, vsftpd, pyftpdlib, smbd for the backup
 * destinations): started with a config in a temp dir, waited for on its port, and stopped with
 * every process it forked (a daemon serves each connection from a child, which must die too when
 * a test "stops the server mid-upload").
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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
