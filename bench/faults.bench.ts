/**
 * Reliability under faults, against the real server process and its own embedded PostgreSQL
 * (npm run bench:faults [-- --quick]). A simulated fleet sends metrics throughout, each agent
 * resending a refused frame (same batch id, new sequence number) as our agent does, through:
 *   1. base: nothing wrong, for `--base-s` seconds (the fleet's rate: fleet_rate_base);
 *   2. freeze: SIGSTOP on the embedded postmaster and its processes for `--freeze-s` seconds,
 *      then SIGCONT (time_to_503_ms: how long a request waits before its 503; recovery time);
 *   3. attack: poison frames (NUL in log messages and security data) from other agents, slowloris
 *      POSTs (a large Content-Length trickled a byte a second) and WebSockets that never send a
 *      hello, all at once with the fleet (fleet_rate_attack). Last, since a poison that wedges
 *      the store writers would spoil what follows;
 *   4. drain: every agent resends what is still unacknowledged, then the rows in PostgreSQL are
 *      compared with what the agents were acknowledged: lost (acknowledged, not stored) and
 *      duplicated (stored more than once).
 * Prints one JSON line last.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { Sql } from "postgres";
import { freePort } from "../src/store/postgres/embedded.ts";
import { createPgClient } from "../src/store/postgres/client.ts";
import { encodeFrame, packLogs, packSecurity, restampFrame } from "../src/ingest/frame/encode.ts";
import { FrameKind } from "../src/ingest/frame/frame.ts";
import { metricNames, metricsFrame, newKeys, openSession, post, type SimAgent } from "../test/support/sim-agent.ts";
import { postmasterTree, signalTree } from "../test/support/pg-freeze.ts";
import { arg, environment, flag, round } from "./support.ts";

const quick = flag("quick");
const AGENTS = Number(arg("agents", quick ? "40" : "200"));
const BASE_S = Number(arg("base-s", quick ? "8" : "20"));
// longer than the body pace and hello deadlines (10 s by default), so slow clients are cut within it
const ATTACK_S = Number(arg("attack-s", quick ? "20" : "30"));
const FREEZE_S = Number(arg("freeze-s", quick ? "8" : "20"));
const AFTER_S = Number(arg("after-s", quick ? "6" : "10"));
const INTERVAL_MS = Number(arg("interval-ms", "200")); // each agent's pause between frames
const SLOWLORIS = Number(arg("slowloris", quick ? "50" : "200"));
const IDLE_WS = Number(arg("idle-ws", quick ? "50" : "200"));
const POISONERS = Number(arg("poisoners", "4"));

const log = (s: string) => console.error(`[faults] ${s}`);

async function startServer(dir: string): Promise<{ url: string; port: number; child: ChildProcess; output: () => string }> {
  const port = await freePort();
  const env: Record<string, string | undefined> = { ...process.env, SERVERMIND_DATA: dir, SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1", SERVERMIND_HTTP3: "false", SERVERMIND_AGENT_BUILD: "false" };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, ["src/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out = (out + d).slice(-200_000)));
  const end = Date.now() + 120_000;
  while (!out.includes("listening on") && child.exitCode === null && Date.now() < end) await Bun.sleep(100);
  if (!out.includes("listening on")) throw new Error(`server did not start: ${out.slice(-2000)}`);
  return { url: `https://127.0.0.1:${port}`, port, child, output: () => out };
}

function embeddedSql(dir: string, max = 4): Sql {
  const port = Number(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[3]);
  const password = readFileSync(join(dir, "pg.secret"), "utf8").trim();
  return createPgClient(`postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`, max);
}

async function agentsIn(sql: Sql, n: number, prefix: string): Promise<SimAgent[]> {
  const out: SimAgent[] = [];
  for (let i = 0; i < n; i++) {
    const k = newKeys();
    const [r] = await sql`insert into agents (hostname, public_key) values (${`${prefix}-${i}`}, ${Buffer.from(k.publicKeyB64, "base64")}) returning id`;
    out.push({ id: Number(r!.id), ...k, seq: 0, batch: 0 });
  }
  return out;
}

/** The fleet: each agent sends a 100-sample frame, waits for its answer, resends refused ones. */
function runFleet(url: string, agents: SimAgent[]) {
  const acked = new Map<string, number>(); // "agent:batch" -> times acknowledged
  const ackTimes: number[] = [];
  const statuses: Record<string, number> = {};
  const first503After = { t: 0, at: 0 };
  const firstOkAfter = { t: 0, at: 0 };
  const pending = new Map<number, { batch: number; frame: Uint8Array }>();
  let stopAt = Infinity;
  let drainOnly = false;
  const names = metricNames(10);
  const one = async (a: SimAgent) => {
    while (Date.now() < stopAt) {
      let p = pending.get(a.id);
      if (!p) {
        if (drainOnly) return;
        const frame = metricsFrame(a, 10, 10, Date.now(), names);
        p = { batch: a.batch, frame };
        pending.set(a.id, p);
      } else p.frame = restampFrame(p.frame, ++a.seq, Date.now(), a.session ?? a.privateKey);
      const t = performance.now();
      let status = 0;
      let retryAfter = 1;
      let acks: Array<{ batch: number; status: string }> = [];
      try {
        const r = await post(url, p.frame);
        status = r.status;
        acks = r.body.acks ?? [];
        retryAfter = Number(r.retryAfter ?? 1);
        if (r.status === 401 && r.body.rejects?.[0]?.code === "unknown_session") a.session = undefined; // then signed
      } catch {
        status = 0;
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
      // a request sent after the freeze began: how long it waited for its 503
      if (status === 503 && first503After.t && t >= first503After.t && !first503After.at) first503After.at = performance.now() - t;
      if (status === 200 && firstOkAfter.t && !firstOkAfter.at) firstOkAfter.at = performance.now() - firstOkAfter.t;
      if (status === 200) {
        for (const ack of acks) {
          const key = `${a.id}:${ack.batch}`;
          acked.set(key, (acked.get(key) ?? 0) + 1);
        }
        ackTimes.push(performance.now());
        pending.delete(a.id);
        await Bun.sleep(INTERVAL_MS);
      } else await Bun.sleep(Math.min(retryAfter, 2) * 500);
    }
  };
  const done = Promise.all(agents.map(one));
  return {
    acked, ackTimes, statuses, pending,
    /** Marks `t` (performance.now()) as the start of a fault: the next 503 / 200 are timed from it. */
    timeFaultFrom(t: number) {
      first503After.t = t;
      first503After.at = 0;
    },
    timeRecoveryFrom(t: number) {
      firstOkAfter.t = t;
      firstOkAfter.at = 0;
    },
    get time503() {
      return first503After.at;
    },
    get timeOk() {
      return firstOkAfter.at;
    },
    rate(from: number, to: number) {
      return ackTimes.filter((x) => x >= from && x < to).length / ((to - from) / 1000);
    },
    async drain(maxMs: number) {
      drainOnly = true;
      stopAt = Date.now() + maxMs;
      await done;
    },
    async stop() {
      stopAt = 0;
      await done;
    },
  };
}

/**
 * Poison from their own agents, four kinds in turn: NUL in a log message and NUL in an event's
 * data (stored exactly, docs/protocol.md 4.8: 200), NUL in a log source and in an event's type
 * and path (names: refused at decode as bad_name, 422).
 */
function runPoison(url: string, agents: SimAgent[]) {
  const statuses: Record<string, number> = {};
  let stop = false;
  const one = async (a: SimAgent) => {
    for (let i = 0; !stop; i++) {
      const now = Date.now();
      const logs = (source: string, message: string) =>
        encodeFrame({ kind: FrameKind.Logs, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: now, items: 2 },
          packLogs({ ts: Float64Array.of(now - 1, now), severity: Uint8Array.of(3, 3), sources: [source], sourceIndex: Uint16Array.of(0, 0), messages: [message, "ok line"] }), a.privateKey);
      const event = (type: string, path: string, note: string) =>
        encodeFrame({ kind: FrameKind.SecurityEvents, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: now, items: 1 },
          packSecurity({ events: [{ ts: now, type, severity: 3, path, data: { note } }] }), a.privateKey);
      const frame = [
        () => logs("app.log", "nul \u0000 here"),
        () => event("fim.change", "/etc/passwd", "a\u0000b"),
        () => logs("evil\u0000src", "fine"),
        () => event("fim.change\u0000", "/etc/\u0000passwd", "fine"),
      ][i % 4]!();
      try {
        const r = await post(url, frame);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      } catch {
        statuses["0"] = (statuses["0"] ?? 0) + 1;
      }
      await Bun.sleep(50);
    }
  };
  const done = Promise.all(agents.map(one));
  return { statuses, stop: async () => ((stop = true), await done) };
}

/** Slowloris POSTs: headers with a Content-Length just under the request limit (16 MiB), then one byte a second. */
function runSlowloris(port: number, n: number) {
  const sockets: TLSSocket[] = [];
  let closedByServer = 0;
  let stopping = false;
  for (let i = 0; i < n; i++) {
    const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, () => {
      s.write("POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.servermind.frames\r\nContent-Length: 16000000\r\n\r\n");
    });
    s.on("error", () => {});
    s.on("close", () => void (stopping || closedByServer++));
    sockets.push(s);
  }
  const trickle = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write("x");
  }, 1000);
  return {
    get closedByServer() {
      return closedByServer;
    },
    stop() {
      stopping = true;
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
    },
  };
}

/** WebSockets that take the challenge and never answer with a hello. */
function runIdleWs(url: string, n: number) {
  const sockets: WebSocket[] = [];
  let closedByServer = 0;
  let stopping = false;
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(url.replace(/^https/, "wss") + "/api/v1/stream", { tls: { rejectUnauthorized: false } } as any);
    ws.onclose = () => void (stopping || closedByServer++);
    ws.onerror = () => {};
    sockets.push(ws);
  }
  return {
    get closedByServer() {
      return closedByServer;
    },
    stop() {
      stopping = true;
      for (const ws of sockets) ws.close();
    },
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "servermind-faults-bench-"));
  chmodSync(dir, 0o755);
  const server = await startServer(dir);
  log(`server at ${server.url}, data in ${dir}`);
  const sql = embeddedSql(dir);
  const fleetAgents = await agentsIn(sql, AGENTS, "fleet");
  const poisoners = await agentsIn(sql, POISONERS, "poison");
  for (const a of fleetAgents) await openSession(server.url, a);
  const fleet = runFleet(server.url, fleetAgents);

  log(`base: ${AGENTS} agents for ${BASE_S} s`);
  const t0 = performance.now();
  await Bun.sleep(BASE_S * 1000);
  const tb = performance.now();

  log(`freeze: SIGSTOP the embedded PostgreSQL for ${FREEZE_S} s`);
  await Bun.sleep(1000);
  const tree = postmasterTree(join(dir, "pg"));
  const tf = performance.now();
  signalTree(tree, "SIGSTOP");
  fleet.timeFaultFrom(tf);
  const healthT = performance.now();
  const health = await fetch(`${server.url}/healthz`, { tls: { rejectUnauthorized: false } } as RequestInit).then(async (r) => ({ status: r.status, body: await r.text() }), () => ({ status: 0, body: "" }));
  const healthMs = performance.now() - healthT;
  await Bun.sleep(FREEZE_S * 1000);
  const frozenRate = fleet.rate(tf, performance.now());
  const tc = performance.now();
  signalTree(tree, "SIGCONT");
  fleet.timeRecoveryFrom(tc);
  await Bun.sleep(AFTER_S * 1000);

  log(`attack: ${POISONERS} poisoners, ${SLOWLORIS} slowloris POSTs, ${IDLE_WS} never-hello WebSockets for ${ATTACK_S} s`);
  const t1 = performance.now();
  const poison = runPoison(server.url, poisoners);
  const slow = runSlowloris(server.port, SLOWLORIS);
  const idle = runIdleWs(server.url, IDLE_WS);
  await Bun.sleep(ATTACK_S * 1000);
  const t2 = performance.now();
  await poison.stop();
  const slowClosed = slow.closedByServer;
  const idleClosed = idle.closedByServer;
  slow.stop();
  idle.stop();
  const [poisonStored] = await sql`select
      (select count(*) from logs l join agents a on a.id = l.agent_id where a.hostname like 'poison-%')::int as logs,
      (select count(*) from logs l join agents a on a.id = l.agent_id where a.hostname like 'poison-%' and l.message_raw is not null)::int as logs_exact_raw,
      (select count(*) from security_events s join agents a on a.id = s.agent_id where a.hostname like 'poison-%')::int as events,
      (select count(*) from security_events s join agents a on a.id = s.agent_id where a.hostname like 'poison-%' and s.data_raw is not null)::int as events_exact_raw`
    .catch(() => [{ logs: -1, logs_exact_raw: -1, events: -1, events_exact_raw: -1 }]);

  log("drain: agents resend what is unacknowledged");
  await fleet.drain(60_000);
  const unacked = fleet.pending.size;
  const ids = fleetAgents.map((a) => a.id);
  const rows = await sql<{ agent_id: string; batch_id: string; n: number }[]>`
    select agent_id, batch_id, count(*)::int as n from metric_blocks where agent_id = any(${ids}) group by 1, 2`;
  const stored = new Map(rows.map((r) => [`${r.agent_id}:${r.batch_id}`, r.n]));
  let lost = 0;
  for (const key of fleet.acked.keys()) if (!stored.has(key)) lost++;
  const duplicated = rows.reduce((s, r) => s + Math.max(0, r.n - 1), 0);
  await sql.end();
  const stopT = performance.now();
  server.child.kill("SIGTERM");
  await new Promise((r) => server.child.once("exit", r));
  const stopMs = performance.now() - stopT;
  log(`server output (last lines):\n${server.output().split("\n").slice(-40).join("\n")}`);
  rmSync(dir, { recursive: true, force: true });

  const base = fleet.rate(t0, tb);
  const attack = fleet.rate(t1, t2);
  const result = {
    bench: "faults",
    ...environment(),
    quick,
    agents: AGENTS,
    acknowledged: fleet.acked.size,
    lost,
    duplicated,
    unacknowledged_at_end: unacked,
    fleet_rate_base: round(base, 1),
    fleet_rate_attack: round(attack, 1),
    fleet_rate_ratio: round(attack / base),
    poison: { statuses: poison.statuses, stored: poisonStored },
    slow_clients: { slowloris: SLOWLORIS, slowloris_closed_by_server: slowClosed, idle_ws: IDLE_WS, idle_ws_closed_by_server: idleClosed },
    freeze_s: FREEZE_S,
    time_to_503_ms: Math.round(fleet.time503),
    healthz_frozen: { status: health.status, body: health.body, ms: Math.round(healthMs) },
    fleet_rate_frozen: round(frozenRate, 1),
    time_to_first_ack_after_sigcont_ms: Math.round(fleet.timeOk),
    statuses: fleet.statuses,
    sigterm_ms: Math.round(stopMs),
  };
  console.log(JSON.stringify(result));
  if (lost || duplicated) process.exitCode = 1;
}

await main();
