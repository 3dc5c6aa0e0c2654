/**
 * The embedded PostgreSQL under the real server process (src/main.ts): restarted after it is
 * killed, its log kept in data/pg.log, an orphaned postmaster (server SIGKILLed) stopped and
 * replaced at the next start, and SIGTERM finishing in bounded time whether PostgreSQL is
 * frozen, down, or the store writers are wedged on a lock.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/store/postgres/embedded.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { enroll, metricsFrame, post } from "../support/sim-agent.ts";
import { postmasterTree, signalTree } from "../support/pg-freeze.ts";

const STOP_TIMEOUT_MS = 10_000;
const SLACK_MS = 3000;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "servermind-supervise-"));
  chmodSync(dir, 0o755);
});

afterAll(() => {
  const tree = postmasterTree(join(dir, "pg"));
  signalTree(tree, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

interface Proc {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<number | null>;
}

async function startServer(): Promise<Proc> {
  const port = await freePort();
  const env: Record<string, string | undefined> = { ...process.env, SERVERMIND_DATA: dir, SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1", SERVERMIND_HTTP3: "false" };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, ["src/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  const deadline = Date.now() + 90_000;
  while (!out.includes("fingerprint") && Date.now() < deadline && child.exitCode === null) await Bun.sleep(100);
  if (!out.includes("fingerprint")) {
    child.kill("SIGKILL");
    throw new Error(`server did not start: ${out}`);
  }
  return { child, url: `https://127.0.0.1:${port}`, output: () => out, exited };
}

const healthz = async (url: string) => (await fetch(`${url}/healthz`, { tls: { rejectUnauthorized: false } }).catch(() => ({ status: 0 }))).status;

/** SIGTERM, and how long until the process is gone (it is SIGKILLed after `capMs`). */
async function sigterm(p: Proc, capMs = STOP_TIMEOUT_MS + 10_000): Promise<number> {
  const t = performance.now();
  p.child.kill("SIGTERM");
  const done = await Promise.race([p.exited.then(() => true), Bun.sleep(capMs).then(() => false)]);
  if (!done) p.child.kill("SIGKILL");
  return performance.now() - t;
}

function postmasterGone(): boolean {
  return postmasterTree(join(dir, "pg")).length === 0;
}

test("killed postmaster: restarted with backoff and logged in data/pg.log; the server answers again", async () => {
  const p = await startServer();
  try {
    const [pm] = postmasterTree(join(dir, "pg"));
    expect(pm).toBeGreaterThan(0);
    signalTree([pm!], "SIGKILL");
    let ok = false;
    const t = Date.now();
    while (!ok && Date.now() - t < 45_000) {
      await Bun.sleep(250);
      ok = p.output().includes("embedded PostgreSQL restarted") && (await healthz(p.url)) === 200;
    }
    expect(p.output()).toContain("without being asked to; restarting in 1 s");
    if (!ok) throw new Error(`not back within 45 s; server output:\n${p.output().slice(-4000)}\npg.log:\n${readFileSync(join(dir, "pg.log"), "utf8").slice(-4000)}`);
    const [pm2] = postmasterTree(join(dir, "pg"));
    expect(pm2).not.toBe(pm);
    const log = readFileSync(join(dir, "pg.log"), "utf8");
    expect(log).toContain("database system is ready to accept connections");
    expect(log).toContain("restarting in 1 s");
  } finally {
    expect(await sigterm(p)).toBeLessThan(STOP_TIMEOUT_MS + SLACK_MS);
  }
  expect(postmasterGone()).toBe(true);
}, 120_000);

test("SIGTERM with PostgreSQL down (killed, restart pending): the server exits in bounded time and no postmaster is left", async () => {
  const p = await startServer();
  signalTree(postmasterTree(join(dir, "pg")).slice(0, 1), "SIGKILL");
  await Bun.sleep(300);
  expect(await sigterm(p)).toBeLessThan(STOP_TIMEOUT_MS + SLACK_MS);
  await Bun.sleep(2500); // past the first restart delay: nothing may start it again
  expect(postmasterGone()).toBe(true);
}, 120_000);

test("SIGTERM with PostgreSQL frozen (SIGSTOP): the server exits within the stop timeout and ends the postmaster", async () => {
  const p = await startServer();
  const tree = postmasterTree(join(dir, "pg"));
  signalTree(tree, "SIGSTOP");
  try {
    expect(await sigterm(p)).toBeLessThan(STOP_TIMEOUT_MS + SLACK_MS);
    expect(p.output()).toMatch(/did not finish within/);
  } finally {
    signalTree(tree, "SIGCONT");
  }
  for (let i = 0; i < 40 && !postmasterGone(); i++) await Bun.sleep(100);
  expect(postmasterGone()).toBe(true);
}, 120_000);

test("SIGTERM with the store writers wedged on a lock: bounded; nothing acknowledged is lost", async () => {
  const p = await startServer();
  const port = Number(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[3]);
  const password = readFileSync(join(dir, "pg.secret"), "utf8").trim();
  const sql = createPgClient(`postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`, 2);
  try {
    const a = await enroll(p.url, (await createActivationToken(sql, { createdBy: "test" })).token, "wedge-1");
    const acked = await post(p.url, metricsFrame(a, 10, 10, Date.now() - 20_000));
    expect(acked.status).toBe(200);
    const locker = sql.reserve();
    const conn = await locker;
    await conn`begin`;
    await conn`lock table ingest_batches in access exclusive mode`;
    const wedged = post(p.url, metricsFrame(a, 10, 10, Date.now())).catch(() => null);
    await Bun.sleep(500);
    expect(await sigterm(p)).toBeLessThan(STOP_TIMEOUT_MS + SLACK_MS);
    const w = await wedged;
    if (w) expect(w.status).not.toBe(200); // never acknowledged
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
  for (let i = 0; i < 40 && !postmasterGone(); i++) await Bun.sleep(100);
  expect(postmasterGone()).toBe(true);
  // the acknowledged frame is there after a restart
  const q = await startServer();
  try {
    const port2 = Number(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[3]);
    const sql2 = createPgClient(`postgres://postgres:${encodeURIComponent(readFileSync(join(dir, "pg.secret"), "utf8").trim())}@127.0.0.1:${port2}/postgres`, 1);
    const [c] = await sql2`select count(*)::int as n from metric_blocks b join agents a on a.id = b.agent_id where a.hostname = 'wedge-1'`;
    await sql2.end();
    expect(c!.n).toBeGreaterThanOrEqual(1);
  } finally {
    await sigterm(q);
  }
}, 180_000);

test("an orphaned postmaster (its server SIGKILLed) is stopped and replaced at the next start, and stopped with the new server", async () => {
  const p = await startServer();
  const [orphan] = postmasterTree(join(dir, "pg"));
  p.child.kill("SIGKILL");
  await p.exited;
  expect(postmasterTree(join(dir, "pg"))[0]).toBe(orphan!); // still running, nobody's child
  const q = await startServer();
  try {
    expect(q.output()).toContain(`stopping an orphaned PostgreSQL (pid ${orphan}`);
    const [pm] = postmasterTree(join(dir, "pg"));
    expect(pm).not.toBe(orphan);
    expect(await healthz(q.url)).toBe(200);
    // the CLI next to a running server shares its PostgreSQL (and leaves it running)
    const env: Record<string, string | undefined> = { ...process.env, SERVERMIND_DATA: dir };
    delete env.DATABASE_URL;
    const cli = Bun.spawn([process.execPath, "src/cli.ts", "token", "create", "--label", "ci"], { env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
    expect((await new Response(cli.stdout).text()).trim()).toMatch(/^smt_/);
    expect(await cli.exited).toBe(0);
    expect(postmasterTree(join(dir, "pg"))[0]).toBe(pm!);
    expect(await healthz(q.url)).toBe(200);
  } finally {
    expect(await sigterm(q)).toBeLessThan(STOP_TIMEOUT_MS + SLACK_MS);
  }
  expect(existsSync(join(dir, "pg", "postmaster.pid"))).toBe(false);
}, 180_000);
