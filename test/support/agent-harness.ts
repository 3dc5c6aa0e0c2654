/**
 * Runs the compiled agent against a real server for end-to-end tests and the footprint bench:
 * builds the binary once, starts the server on 127.0.0.1 (restartable on the same port with the
 * same certificate and database), enrolls, and runs `servermind-agent run` with its own dirs.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { buildAgent, binaryName } from "../../agent/build.ts";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { generateKeyPairSync, createPublicKey, type KeyObject } from "node:crypto";
import { startClusterBus, type ClusterBus } from "../../src/cluster/bus.ts";
import { commandDispatcher, startCommandReplies } from "../../src/cluster/command-replies.ts";
import { storeCommandOutput } from "../../src/cluster/command-output.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { testDatabase, type TestDb } from "./db.ts";

let built: Promise<string> | undefined;

/** Builds the linux binary for this machine once per run (dist/agent-test/). */
export function agentBinary(): Promise<string> {
  built ??= (async () => {
    const target = process.arch === "arm64" ? "linux-arm64" : "linux-x64";
    const outDir = resolve(import.meta.dir, "../../dist/agent-test");
    const [r] = await buildAgent({ outDir, targets: [target], bytecode: true });
    if (!r || r.error) throw new Error(`building the agent failed: ${r?.error}`);
    return join(outDir, binaryName(target));
  })();
  return built;
}

export interface E2eServer {
  db: TestDb;
  certPem: string;
  keyPem: string;
  url: string;
  port: number;
  fingerprint: string;
  token(): Promise<string>;
  /** The server's command key; agents get its public half at enrollment. */
  commandKey: KeyObject;
  /** Sends a signed command down the agent's stream and waits for its answer, as src/main.ts wires it. */
  dispatch(agentId: number, command: { id: string }, timeoutMs?: number): Promise<unknown>;
  /** The running server's ingest path (its deps carry the hooks src/main.ts sets). */
  readonly ingest: RunningServer["ingest"];
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startE2eServer(): Promise<E2eServer> {
  const db = await testDatabase();
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(db.sql, t);
  const c = createSelfSigned(["127.0.0.1", "localhost"]);
  const cert = { cert: c.certPem, key: c.keyPem, fingerprint: c.fingerprint, generated: true, path: "" };
  let port = 0;
  let s: RunningServer | undefined;
  const commandKey = generateKeyPairSync("ed25519").privateKey;
  const commandPub = Buffer.from(createPublicKey(commandKey).export({ format: "jwk" }).x!, "base64url").toString("base64");
  const replies = await startCommandReplies(db.sql);
  let bus: ClusterBus | undefined;
  const start = async () => {
    s = startServer({ config: loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: String(port) }), sql: db.sql, cert, commandKey: commandPub });
    port = s.port;
    s.ingest.deps.onCommandResult = (agentId, id, result) => replies.deliver(agentId, id, result);
    s.ingest.deps.onCommandOutput = (agentId, id, seq, lines) => storeCommandOutput(db.sql, agentId, id, seq, lines);
    bus = await startClusterBus({ sql: db.sql, streams: s.ingest.deps.streams!, directory: s.ingest.deps.directory });
  };
  await start();
  return {
    db,
    certPem: c.certPem,
    keyPem: c.keyPem,
    get ingest() {
      return s!.ingest;
    },
    get url() {
      return `https://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    fingerprint: c.fingerprint,
    token: async () => (await createActivationToken(db.sql, { createdBy: "e2e" })).token,
    commandKey,
    dispatch: (agentId, command, timeoutMs = 30_000) => commandDispatcher(bus!, replies, timeoutMs)(agentId, command),
    async stop() {
      await bus?.stop();
      bus = undefined;
      await s?.stop();
      s = undefined;
    },
    async restart() {
      await start();
    },
    async close() {
      await replies.stop();
      await bus?.stop();
      await s?.stop();
      await db.drop();
    },
  };
}

export interface AgentRun {
  dir: string;
  env: Record<string, string>;
  proc: Subprocess;
  output(): string;
  supervisor(): { pid: number; processes: Array<{ name: string; pid: number | null; state: string; restarts: number }> };
  status(): any;
  stop(): Promise<void>;
}

/** A fresh state/run/log directory tree that the service users can traverse. */
export function agentDirs(): { dir: string; env: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), "sm-agent-e2e-"));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, "logs"), { mode: 0o755 });
  chmodSync(join(dir, "logs"), 0o755);
  return {
    dir,
    env: {
      SERVERMIND_AGENT_DIR: join(dir, "state"),
      SERVERMIND_AGENT_RUN_DIR: join(dir, "run"),
      SERVERMIND_AGENT_LOG_FILES: join(dir, "logs"),
      SERVERMIND_AGENT_JOURNALD: "false",
    },
  };
}

export async function enrollAgent(bin: string, env: Record<string, string>, server: E2eServer): Promise<number> {
  const p = Bun.spawn([bin, "enroll", "--server", server.url, "--token", await server.token(), "--fingerprint", server.fingerprint], {
    env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe", timeout: 30_000,
  });
  const out = await new Response(p.stdout).text();
  const err = await new Response(p.stderr).text();
  if ((await p.exited) !== 0) throw new Error(`enroll failed: ${err}`);
  return JSON.parse(out).agentId;
}

export function runAgent(bin: string, dir: string, env: Record<string, string>): AgentRun {
  let out = "";
  const proc = Bun.spawn([bin, "run"], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const drain = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const c of s) {
      out += d.decode(c);
      if (out.length > 1 << 20) out = out.slice(-(1 << 19));
    }
  };
  void drain(proc.stdout as ReadableStream<Uint8Array>);
  void drain(proc.stderr as ReadableStream<Uint8Array>);
  const read = (f: string) => JSON.parse(readFileSync(f, "utf8"));
  return {
    dir,
    env,
    proc,
    output: () => out,
    supervisor: () => read(join(env.SERVERMIND_AGENT_DIR!, "supervisor.json")),
    status: () => read(join(env.SERVERMIND_AGENT_DIR!, "platform", "status.json")),
    async stop() {
      let pids: number[] = [];
      try {
        pids = read(join(env.SERVERMIND_AGENT_DIR!, "supervisor.json")).processes.map((p: { pid: number | null }) => p.pid).filter(Boolean);
      } catch {
        pids = [];
      }
      proc.kill("SIGTERM");
      const ok = await Promise.race([proc.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
      if (!ok) proc.kill("SIGKILL");
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* already gone, as it should be */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Per-status-file credentials of a process, from /proc/PID/status. */
export function credentials(pid: number): { uid: number; gid: number; groups: number[] } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (k: string) => (new RegExp(`^${k}:[ \\t]*(.*)$`, "m").exec(s)?.[1] ?? "").trim().split(/\s+/).filter(Boolean).map(Number);
  return { uid: field("Uid")[0]!, gid: field("Gid")[0]!, groups: field("Groups") };
}

export async function until<T>(what: string, f: () => T | Promise<T>, ms = 30_000, every = 100): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(every);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last})` : ""}`);
}
