/**
 * The server as its own process (src/main.ts, as `npm start` runs it) on a test database, for
 * tests that need what only a process has: its own file-descriptor limit (`ulimit`), its own
 * CPU time in /proc, the full composition root. Listens on 127.0.0.1; stop() ends it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/store/postgres/embedded.ts";
import { testDatabase, type TestDb } from "./db.ts";
import { stopChild } from "./process.ts";

export interface ServerProcess {
  url: string;
  port: number;
  pid: number;
  db: TestDb;
  child: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** `env` may be a function of the port (e.g. SERVERMIND_PUBLIC_URL). */
export async function startServerProcess(env: Record<string, string> | ((port: number) => Record<string, string>) = {}, opts: { ulimitFiles?: number; waitMs?: number } = {}): Promise<ServerProcess> {
  const db = await testDatabase(4);
  const dir = mkdtempSync(join(tmpdir(), "servermind-proc-"));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const fullEnv = { ...process.env, DATABASE_URL: db.url, SERVERMIND_DATA: dir, SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1", SERVERMIND_HTTP3: "false", SERVERMIND_AGENT_BUILD: "false", ...(typeof env === "function" ? env(port) : env) };
  const cmd = `${opts.ulimitFiles ? `ulimit -n ${opts.ulimitFiles}; ` : ""}exec "${process.execPath}" src/main.ts`;
  const child = spawn("bash", ["-c", cmd], { env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const deadline = Date.now() + (opts.waitMs ?? 30_000);
  while (!out.includes("listening on") && Date.now() < deadline && child.exitCode === null) await Bun.sleep(50);
  if (!out.includes("listening on")) {
    await stopChild(child);
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`server process did not start: ${out}`);
  }
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    db,
    child,
    output: () => out,
    async stop() {
      await stopChild(child, 8000);
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
