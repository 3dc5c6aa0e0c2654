/**
 * A database that hangs or refuses is answered fast: every route class gets 503 + Retry-After
 * within SERVERMIND_DB_TIMEOUT_MS and a generic body (no stack, path or port), /healthz reports
 * the store's state within its own timeout, and after SIGCONT everything recovers with nothing
 * acknowledged lost or stored twice. This file freezes (SIGSTOP) and stops its own embedded
 * PostgreSQL, so other test files keep the shared one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sql } from "postgres";
import { startEmbeddedPg, type EmbeddedPg } from "../../src/store/postgres/embedded.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";
import { migrate } from "../../src/store/postgres/migrate.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { consolePlugin, startConsole } from "../../src/web/plugin.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { createUser } from "../../src/auth/users.ts";
import { roleIdByName } from "../../src/auth/roles.ts";
import { createSession, SESSION_COOKIE } from "../../src/auth/session.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { FrameKind } from "../../src/ingest/frame/frame.ts";
import { enroll, mapFrame, newKeys, metricsFrame, openSession, openStream, post, requestSession, type SimAgent } from "../support/sim-agent.ts";
import { postmasterTree, signalTree } from "../support/pg-freeze.ts";
import { isStoreUnavailable } from "../../src/store/postgres/unavailable.ts";

const DB_TIMEOUT_MS = 2000;
const HEALTH_TIMEOUT_MS = 1000;
/** Scheduling slack on a shared 2-core machine. */
const SLACK_MS = 1500;

let dir: string;
let pg: EmbeddedPg;
let sql: Sql;
let server: RunningServer;
let stopConsole: () => void;
let dataDir: string;
let sessionCookie: string;
let a: SimAgent; // cached by the server before the faults
let fresh: SimAgent[] = []; // enrolled, never seen by the ingest path: their lookups need the database
let tls = { rejectUnauthorized: false };
/** Batch ids of agent `a` refused while the database was down: the agent resends them. */
const refused: number[] = [];
/**
 * Errors no code of ours awaits: postgres.js sockets reset by a PostgreSQL that stops under
 * them. Collected (not ignored): the last test checks they are all connection errors.
 */
const stray: unknown[] = [];
const collect = (e: unknown) => void stray.push(e);
process.on("uncaughtException", collect);
process.on("unhandledRejection", collect);

let cert: ReturnType<typeof createSelfSigned>;

/** The real server (console included) over `db`, with short deadlines. */
async function startFaultServer(db: Sql, background = true): Promise<void> {
  cert ??= createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({
    SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: dataDir,
    SERVERMIND_DB_TIMEOUT_MS: String(DB_TIMEOUT_MS), SERVERMIND_HEALTH_TIMEOUT_MS: String(HEALTH_TIMEOUT_MS),
  });
  const deps = { sql: db, config, dataDir, serverFingerprint: cert.fingerprint };
  stopConsole = background ? (await startConsole(deps, () => {})).stop : () => {}; // (its start-up needs the database)
  server = startServer({ config, sql: db, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" }, plugins: [consolePlugin(deps)] });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "servermind-faults-"));
  chmodSync(dir, 0o755);
  pg = await startEmbeddedPg({ dataDir: join(dir, "pg"), settings: { fsync: "off", shared_buffers: "64MB", max_connections: 50 } });
  sql = createPgClient(pg.url, 6);
  await migrate(sql);
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(sql, t);
  dataDir = join(dir, "data");
  await startFaultServer(sql);
  const token = async () => (await createActivationToken(sql, { createdBy: "test" })).token;
  a = await enroll(server.url, await token(), "faults-a");
  await openSession(server.url, a);
  for (let i = 0; i < 4; i++) fresh.push(await enroll(server.url, await token(), `faults-fresh-${i}`));
  const uid = await createUser(sql, { username: "faults-admin", password: "Correct horse battery staple 1", roleIds: [(await roleIdByName(sql, "admin"))!] }, DEFAULT_SETTINGS.password);
  sessionCookie = `${SESSION_COOKIE}=${(await createSession(sql, uid, "full", "127.0.0.1", "test", DEFAULT_SETTINGS.session)).token}`;
}, 120_000);

afterAll(async () => {
  for (const pid of postmasterTree(join(dir, "pg"))) signalTree([pid], "SIGCONT");
  stopConsole?.();
  await server?.stop();
  await sql?.end({ timeout: 2 });
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

/** What a response may never carry: a stack frame, a file path of this checkout, the database port. */
function expectGeneric(body: string): void {
  expect(body).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/);
  expect(body).not.toContain(process.cwd());
  expect(body).not.toContain(dir);
  expect(body).not.toContain(String(pg.port));
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = performance.now();
  const value = await f();
  return { value, ms: performance.now() - t };
}

/** One request of each route class; each answer must be 503 + Retry-After + a generic body. */
async function everyRouteClass(): Promise<Array<{ route: string; status: number; retryAfter: string | null; body: string; ms: number }>> {
  const go = async (route: string, f: () => Promise<Response>) => {
    const { value: r, ms } = await timed(f);
    return { route, status: r.status, retryAfter: r.headers.get("retry-after"), body: await r.text(), ms };
  };
  const pre = "p".repeat(32);
  return await Promise.all([
    go("ingest", () => {
      refused.push(a.batch + 1);
      return fetch(`${server.url}/api/v1/ingest`, { method: "POST", body: metricsFrame(a, 10, 10, Date.now()), tls } as RequestInit);
    }),
    go("ingest (unknown to this node)", () => fetch(`${server.url}/api/v1/ingest`, { method: "POST", body: metricsFrame(fresh.pop()!, 10, 10, Date.now()), tls } as RequestInit)),
    go("session", () => fetch(`${server.url}/api/v1/session`, { method: "POST", body: mapFrame(fresh.pop()!, FrameKind.Hello, { nonce: "", version: "sim" }, 0), tls } as RequestInit)),
    go("enroll", () => fetch(`${server.url}/api/v1/enroll`, { method: "POST", body: JSON.stringify({ token: "smt_" + "x".repeat(43), publicKey: newKeys().publicKeyB64, hostname: "h", os: "linux", arch: "x64", version: "t" }), tls } as RequestInit)),
    go("console page", () => fetch(`${server.url}/hosts`, { headers: { cookie: sessionCookie, accept: "text/html" }, tls } as RequestInit)),
    go("login", () => fetch(`${server.url}/login`, {
      method: "POST", tls,
      headers: { cookie: `sm_csrf=${pre}`, "content-type": "application/x-www-form-urlencoded", accept: "text/html" },
      body: new URLSearchParams({ _csrf: pre, username: "faults-admin", password: "wrong password here" }).toString(),
    } as RequestInit)),
  ]);
}

/** A WebSocket hello of an agent the node has not cached: answered store_unavailable + close 1013. */
async function helloOverStream(agent: SimAgent): Promise<{ messages: any[]; code: number; ms: number }> {
  const ws = new WebSocket(server.url.replace(/^https/, "wss") + "/api/v1/stream", { tls } as any);
  const messages: any[] = [];
  const t = performance.now();
  const closed = new Promise<number>((r) => (ws.onclose = (e) => r(e.code)));
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    messages.push(m);
    if (m.type === "challenge") ws.send(mapFrame(agent, FrameKind.Hello, { nonce: m.nonce, version: "sim" }, 0) as Uint8Array<ArrayBuffer>);
  };
  const code = await Promise.race([closed, Bun.sleep(15_000).then(() => -1)]);
  if (code === -1) ws.close();
  return { messages, code, ms: performance.now() - t };
}

test("PostgreSQL frozen (SIGSTOP): 503 + Retry-After on every route within the deadline, /healthz degraded within its timeout; SIGCONT recovers, nothing lost or doubled", async () => {
  // frames acknowledged before the freeze
  const before = await post(server.url, metricsFrame(a, 10, 10, Date.now() - 60_000));
  expect(before.status).toBe(200);
  const stream = await openStream(server.url, a);
  const tree = postmasterTree(join(dir, "pg"));
  expect(tree.length).toBeGreaterThan(1);
  expect(pg.pid()).toBe(tree[0]!); // what the benches measure PostgreSQL's CPU by
  signalTree(tree, "SIGSTOP");
  try {
    const health = await timed(() => fetch(`${server.url}/healthz`, { tls } as RequestInit));
    expect(health.value.status).toBe(503);
    expect(await health.value.json()).toEqual({ status: "degraded", store: "timeout" });
    expect(health.ms).toBeLessThan(HEALTH_TIMEOUT_MS + SLACK_MS);

    refused.push(a.batch + 1);
    const [ingest, ...rest] = await Promise.all([post(server.url, metricsFrame(a, 10, 10, Date.now())), everyRouteClass()]).then(([i, r]) => [i, ...r] as const);
    expect(ingest.status).toBe(503);
    expect(ingest.retryAfter).not.toBeNull();
    for (const r of rest.flat()) {
      expect({ route: r.route, status: r.status }).toEqual({ route: r.route, status: 503 });
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
      expect(r.ms).toBeLessThan(DB_TIMEOUT_MS + SLACK_MS);
      expectGeneric(r.body);
    }
    // the sign-in page says what is wrong within the deadline; static files need no database
    const page = await timed(() => fetch(`${server.url}/login`, { headers: { accept: "text/html" }, tls } as RequestInit));
    expect([page.value.status, Number(page.value.headers.get("retry-after")) > 0]).toEqual([503, true]);
    expect(await page.value.text()).toContain("The database is not answering");
    expect(page.ms).toBeLessThan(DB_TIMEOUT_MS + SLACK_MS);
    const css = await timed(() => fetch(`${server.url}/assets/console.css`, { tls } as RequestInit));
    expect(css.value.status).toBe(200);
    expect((await css.value.text()).length).toBeGreaterThan(1000);
    expect(css.ms).toBeLessThan(SLACK_MS);
    // an authenticated stream: the message's frames are refused store_unavailable, and the agent told to pause
    refused.push(a.batch + 1);
    const onStream = await timed(() => stream.send(metricsFrame(a, 10, 10, Date.now())));
    expect(onStream.value).toMatchObject({ type: "ack", acks: [], rejects: [{ code: "store_unavailable" }] });
    expect(onStream.ms).toBeLessThan(DB_TIMEOUT_MS + SLACK_MS);
    expectGeneric(JSON.stringify(onStream.value));
    stream.close();
    const ws = await helloOverStream(fresh.pop()!);
    expect(ws.messages.at(-1)).toMatchObject({ type: "error", code: "store_unavailable" });
    expect(ws.code).toBe(1013);
    expect(ws.ms).toBeLessThan(DB_TIMEOUT_MS + SLACK_MS);
  } finally {
    signalTree(tree, "SIGCONT");
  }
  // recovery: healthy again, the refused frame resent is stored once (dup if its batch committed meanwhile)
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) {
    ok = (await fetch(`${server.url}/healthz`, { tls } as RequestInit)).status === 200;
    if (!ok) await Bun.sleep(200);
  }
  expect(ok).toBe(true);
  // the agent's resend: the same batch ids under new sequence numbers; "dup" if the batch committed meanwhile
  const last = a.batch;
  for (const b of refused.splice(0)) {
    a.batch = b - 1;
    const resent = await post(server.url, metricsFrame(a, 10, 10, Date.now()));
    expect(resent.status).toBe(200);
    expect(["ok", "dup"]).toContain(resent.body.acks![0]!.status);
  }
  a.batch = last;
  const fresher = await post(server.url, metricsFrame(a, 10, 10, Date.now() + 10_000));
  expect(fresher.status).toBe(200);
  const [c] = await sql`select count(*)::int as rows, count(distinct batch_id)::int as batches from metric_blocks where agent_id = ${a.id}`;
  // 10 series = one row per frame: before, frozen (and resent), everyRouteClass's ingest, the stream's, after; each batch once
  expect(c).toEqual({ rows: 5, batches: 5 });
  expect((await requestSession(server.url, fresh[0]!)).status).toBe(200);
}, 60_000);

test("PostgreSQL stopped (refusing): 503 + Retry-After and a generic body on every route, /healthz unreachable, never Bun's error page", async () => {
  // A server whose PostgreSQL is down: connections are refused. (Stopping PostgreSQL under a
  // busy pool can also hit a postgres.js race that throws from a timer; src/main.ts logs those.)
  const oldSql = sql;
  stopConsole();
  await server.stop();
  await oldSql.end({ timeout: 2 });
  await pg.stop();
  expect(pg.pid()).toBeUndefined();
  sql = createPgClient(pg.url, 6);
  await startFaultServer(sql, false);
  const health = await timed(() => fetch(`${server.url}/healthz`, { tls } as RequestInit));
  expect(health.value.status).toBe(503);
  expect(await health.value.json()).toEqual({ status: "degraded", store: "unreachable" });
  expect(health.ms).toBeLessThan(HEALTH_TIMEOUT_MS + SLACK_MS);
  fresh.push(...[0, 1, 2].map((i) => ({ ...fresh[0]!, id: 900_000 + i, seq: 0, batch: 0 })));
  const answers = await everyRouteClass();
  for (const r of answers) {
    expect({ route: r.route, status: r.status }).toEqual({ route: r.route, status: 503 });
    expect(Number(r.retryAfter)).toBeGreaterThan(0);
    expect(r.ms).toBeLessThan(DB_TIMEOUT_MS + SLACK_MS);
    expect(r.body.length).toBeLessThan(2000);
    expect(r.body).not.toContain("bun"); // Bun's development page names itself
    expectGeneric(r.body);
  }
  for (const e of stray) expect({ error: String(e), connection: isStoreUnavailable(e) }).toEqual({ error: String(e), connection: true });
}, 60_000);
