/**
 * No phone-home: the real server (src/main.ts, as `npm start` runs it) and the compiled agent run
 * together for ~15 s under `strace -f`, which records every connect(), sendto() and sendmsg()
 * with an address that any of their processes and threads attempt, successful or not. Every
 * attempt must go to a configured endpoint: the server to its PostgreSQL (DATABASE_URL), the
 * agent to its server (TCP for HTTP/1.1, HTTP/2 and WebSocket, UDP for HTTP/3), or a Unix
 * socket of the agent's own directories (its processes talk to each other). Anything else (DNS,
 * an update check, telemetry, another host) fails the test. docs/licensing.md, "No other
 * connections", says what this proves and what it does not.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/store/postgres/embedded.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { agentBinary, agentDirs, until } from "../support/agent-harness.ts";
import { requireComponent } from "../support/ci.ts";
import { stopTraced } from "../support/process.ts";

setDefaultTimeout(300_000);
const hasStrace = Bun.spawnSync(["strace", "-V"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
const RUN_MS = 15_000;

interface Attempt {
  pid: number;
  call: string;
  family: string;
  /** "127.0.0.1:5432" for inet, the path for Unix sockets, "" for kernel families. */
  target: string;
  line: string;
}

/** Every connect/sendto/sendmsg with a socket address in a `strace -f` log. */
function attempts(log: string): Attempt[] {
  const out: Attempt[] = [];
  for (const line of log.split("\n")) {
    const m = /^(\d+)\s+(connect|sendto|sendmsg)\(/.exec(line);
    if (!m) continue;
    const fam = /sa_family=(AF_[A-Z0-9]+)/.exec(line);
    if (!fam) continue; // sendto/sendmsg on a connected socket: no address, the connect() was recorded
    const family = fam[1]!;
    let target = "";
    if (family === "AF_INET") {
      const port = /sin_port=htons\((\d+)\)/.exec(line)?.[1];
      const addr = /sin_addr=inet_addr\("([^"]+)"\)/.exec(line)?.[1];
      target = `${addr}:${port}`;
    } else if (family === "AF_INET6") {
      const port = /sin6_port=htons\((\d+)\)/.exec(line)?.[1];
      const addr = /inet_pton\(AF_INET6, "([^"]+)"/.exec(line)?.[1];
      target = `[${addr}]:${port}`;
    } else if (family === "AF_UNIX") {
      target = /sun_path=@?"([^"]*)"/.exec(line)?.[1] ?? "(unnamed)";
    }
    out.push({ pid: Number(m[1]), call: m[2]!, family, target, line });
  }
  return out;
}

let db: TestDb;
let dir: string;
let server: ChildProcess | undefined;
let agent: ChildProcess | undefined;
let serverOut = "";
let skip = false;

beforeAll(async () => {
  if (!requireComponent(hasStrace && process.getuid?.() === 0, "strace, run as root (Debian package strace)")) {
    skip = true;
    return;
  }
  db = await testDatabase(4);
  dir = mkdtempSync(join(tmpdir(), "servermind-noconn-"));
  chmodSync(dir, 0o755);
});

afterAll(async () => {
  if (agent) await stopTraced(agent, 10_000);
  if (server) await stopTraced(server, 8000);
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TRACE = ["strace", "-f", "-qq", "-s", "256", "-e", "trace=connect,sendto,sendmsg", "-e", "signal=none"];

test("the server connects only to its PostgreSQL and the agent only to its server", async () => {
  if (skip) return;
  const bin = await agentBinary();
  const port = await freePort();
  const pg = new URL(db.url);
  const pgTarget = `${pg.hostname === "localhost" ? "127.0.0.1" : pg.hostname}:${pg.port || 5432}`;
  const serverLog = join(dir, "server.strace");
  server = spawn(TRACE[0]!, [...TRACE.slice(1), "-o", serverLog, "--", process.execPath, "src/main.ts"], {
    env: { ...process.env, DATABASE_URL: db.url, SERVERMIND_DATA: join(dir, "data"), SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout!.on("data", (d) => (serverOut += d));
  server.stderr!.on("data", (d) => (serverOut += d));
  await until("server listening", () => serverOut.includes("listening on") || server!.exitCode !== null, 60_000);
  expect(serverOut).toContain("listening on");
  const fingerprint = /fingerprint \(pin it in agents\): ([0-9a-f:]+)/i.exec(serverOut)![1]!;

  const { dir: agentDir, env } = agentDirs();
  Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "1000", SERVERMIND_AGENT_LOGS_MS: "500" });
  writeFileSync(join(agentDir, "logs", "app.log"), "");
  const agentEnv = { ...process.env, ...env };
  const enrollLog = join(dir, "enroll.strace");
  const token = (await createActivationToken(db.sql, { createdBy: "noconn" })).token;
  const enroll = Bun.spawn([...TRACE, "-o", enrollLog, "--", bin, "enroll", "--server", `https://127.0.0.1:${port}`, "--token", token, "--fingerprint", fingerprint], {
    env: agentEnv, stdout: "pipe", stderr: "pipe", timeout: 60_000,
  });
  const enrollErr = await new Response(enroll.stderr).text();
  expect(await enroll.exited, enrollErr).toBe(0);
  const agentLog = join(dir, "agent.strace");
  agent = spawn(TRACE[0]!, [...TRACE.slice(1), "-o", agentLog, "--", bin, "run"], { env: agentEnv, stdio: ["ignore", "ignore", "ignore"] });
  // it works: metrics arrive, then the pair runs on for the rest of the window
  const started = Date.now();
  await until("metrics from the traced agent", async () => (await db.sql`select 1 from metric_blocks limit 1`).length > 0, 60_000, 250);
  await Bun.sleep(Math.max(0, RUN_MS - (Date.now() - started)));
  await stopTraced(agent, 10_000);
  agent = undefined;
  await stopTraced(server, 8000);
  server = undefined;

  const serverAttempts = attempts(readFileSync(serverLog, "utf8"));
  const agentAttempts = [...attempts(readFileSync(enrollLog, "utf8")), ...attempts(readFileSync(agentLog, "utf8"))];
  // the tracing saw the traffic it is meant to see
  expect(serverAttempts.some((a) => a.target === pgTarget)).toBe(true);
  expect(agentAttempts.some((a) => a.family === "AF_INET" && a.target === `127.0.0.1:${port}`)).toBe(true);

  // kernel-only families (netlink: interface and route tables) and AF_UNSPEC (a UDP socket's disconnect) leave the host by no route
  const local = (a: Attempt) => a.family === "AF_NETLINK" || a.family === "AF_UNSPEC";
  const agentDirs_ = [env.SERVERMIND_AGENT_DIR!, env.SERVERMIND_AGENT_RUN_DIR!];
  // glibc's user and group lookups (the privilege split resolves its service users) first ask
  // the host's name-service cache daemon over this local socket: a file on this machine, no network
  // and a program the agent runs (e.g. a CIS check's tool) may log through the host's local
  // syslog socket: also a file on this machine
  const NSCD = ["/var/run/nscd/socket", "/run/nscd/socket", "/dev/log"];
  const badServer = serverAttempts.filter((a) => !local(a) && a.target !== pgTarget);
  const badAgent = agentAttempts.filter((a) => !local(a) && a.target !== `127.0.0.1:${port}` &&
    !(a.family === "AF_UNIX" && (NSCD.includes(a.target) || agentDirs_.some((d) => a.target.startsWith(`${d}/`)))));
  expect(badServer.map((a) => a.line)).toEqual([]);
  expect(badAgent.map((a) => a.line)).toEqual([]);
  console.log(`no-other-connections: server ${serverAttempts.length} socket-address calls (all to ${pgTarget}), agent ${agentAttempts.length} (all to 127.0.0.1:${port} or its own Unix sockets)`);
  rmSync(agentDir, { recursive: true, force: true });
  expect(existsSync(serverLog)).toBe(true);
});

test("the strace reading catches what it must: DNS, IPv6, another host, an abstract Unix socket", () => {
  const log = [
    `101 connect(7, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.2")}, 16) = 0`,
    `102 sendto(8, "\\x12\\x34", 30, MSG_NOSIGNAL, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = 30`,
    `103 connect(9, {sa_family=AF_UNIX, sun_path=@"/tmp/.X11-unix/X0"}, 20) = -1 ECONNREFUSED (Connection refused)`,
    `104 sendto(10, "abc", 3, 0, NULL, 0) = 3`,
    `105 connect(11, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("127.0.0.1")}, 16 <unfinished ...>`,
  ].join("\n");
  expect(attempts(log).map((a) => [a.pid, a.call, a.family, a.target])).toEqual([
    [101, "connect", "AF_INET", "10.0.0.2:53"],
    [102, "sendto", "AF_INET6", "[2001:db8::1]:443"],
    [103, "connect", "AF_UNIX", "/tmp/.X11-unix/X0"],
    [105, "connect", "AF_INET", "127.0.0.1:443"],
  ]);
});
