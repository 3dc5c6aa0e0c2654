/**
 * End to end: the compiled agent binary against the real server (real TLS, embedded PostgreSQL).
 * Enrollment with a pinned certificate, metrics/logs/inventory in PostgreSQL, the privilege
 * split as seen in /proc, kill -9 of each process, and a 30 s server outage after which every
 * sample is stored exactly once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, readFileSync, writeFileSync, chmodSync, rmSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { issueCommand } from "../../src/security/issue.ts";
import { audit, type AuditEvent } from "../../src/audit/audit.ts";
import { join } from "node:path";
import { lookupUser } from "../../agent/supervisor/layout.ts";
import { agentBinary, agentDirs, credentials, enrollAgent, runAgent, startE2eServer, until, type AgentRun, type E2eServer } from "../support/agent-harness.ts";
import { requireComponent } from "../support/ci.ts";
import { consoleHarness } from "../support/console-app.ts";
import { readBlockRows } from "../../src/store/postgres/metric-blocks.ts";

setDefaultTimeout(240_000);
const INTERVAL = 1000;
const isRoot = process.getuid?.() === 0;

let server: E2eServer;
let agent: AgentRun;
let agentId: number;
let bin: string;

beforeAll(async () => {
  bin = await agentBinary();
  server = await startE2eServer();
  const { dir, env } = agentDirs();
  Object.assign(env, {
    SERVERMIND_AGENT_INTERVAL_MS: String(INTERVAL), SERVERMIND_AGENT_LOGS_MS: "500", SERVERMIND_AGENT_REPLAY_RATE: "200",
    SERVERMIND_AGENT_WATCH_FILES: join(dir, "watched.conf"), SERVERMIND_AGENT_QUIC_PROBE_MS: "5000",
  });
  writeFileSync(join(dir, "watched.conf"), "PermitRootLogin no\n", { mode: 0o644 });
  writeFileSync(join(dir, "logs", "app.log"), "");
  chmodSync(join(dir, "logs", "app.log"), 0o644);
  agentId = await enrollAgent(bin, env, server);
  agent = runAgent(bin, dir, env);
});

afterAll(async () => {
  await agent?.stop();
  await server?.close();
});

/** Timestamps of one series with how many times each is stored (either block layout). */
/** The ids of this agent's series of one name. */
async function seriesIds(name: string): Promise<Set<number>> {
  return new Set((await server.db.sql<{ id: number }[]>`select id::int as id from metric_series where agent_id = ${agentId} and name = ${name}`).map((r) => r.id));
}

async function samples(name: string): Promise<Array<{ ts: number; n: number }>> {
  const ids = await seriesIds(name);
  const count = new Map<number, number>();
  for (const r of await readBlockRows(server.db.sql, agentId)) {
    if (!r.series.some((sid) => ids.has(sid))) continue;
    for (const off of r.tsOff) count.set(r.t0 + off, (count.get(r.t0 + off) ?? 0) + 1);
  }
  return [...count].sort((x, y) => x[0] - y[0]).map(([ts, n]) => ({ ts, n }));
}

/** The ticks missing from `from` on, as ISO times. */
function gaps(s: Array<{ ts: number }>, from = 0): string[] {
  const out: string[] = [];
  const w = s.filter((x) => x.ts >= from);
  for (let i = 1; i < w.length; i++) {
    for (let t = w[i - 1]!.ts + INTERVAL; t < w[i]!.ts; t += INTERVAL) out.push(`${new Date(t).toISOString()} missing`);
  }
  return out;
}

/** The latest stored value of one series. */
async function latestValue(name: string): Promise<number | undefined> {
  const ids = await seriesIds(name);
  let best: { ts: number; v: number } | undefined;
  for (const r of await readBlockRows(server.db.sql, agentId)) {
    const nts = r.tsOff.length;
    r.series.forEach((sid, k) => {
      if (!ids.has(sid)) return;
      for (let j = 0; j < nts; j++) if (!best || r.t0 + r.tsOff[j]! > best.ts) best = { ts: r.t0 + r.tsOff[j]!, v: r.vals[k * nts + j]! };
    });
  }
  return best?.v;
}

/**
 * The ticks the Collector said it did not collect ("collector: not collected: 1 tick, T (...)" or
 * "N ticks, A to B (...)"), as the ISO times `gaps` lists, each with the line that said so.
 */
function notCollected(output = agent.output()): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of output.split("\n")) {
    const m = /^collector: not collected: (\d+) ticks?, (\S+?)(?: to \S+)? \(/.exec(line);
    if (!m) continue;
    const first = Date.parse(m[2]!);
    for (let k = 0; k < Number(m[1]); k++) out.set(`${new Date(first + k * INTERVAL).toISOString()} missing`, line);
  }
  return out;
}

/**
 * The ticks missing from `from` on that the Collector did not name as skipped by a late timer (its
 * process starved of CPU on a loaded machine, which is not what the tests below are about). A
 * Collector that was not running at a tick (a restart slower than an interval) still counts.
 */
function unexplainedGaps(s: Array<{ ts: number }>, from = 0): string[] {
  const said = notCollected();
  return gaps(s, from).filter((m) => !said.get(m)?.includes("its timer fired"));
}

/** The ticks from `from` on that are stored more than once. */
function repeats(s: Array<{ ts: number; n: number }>, from = 0): string[] {
  return s.filter((x) => x.ts >= from && x.n !== 1).map((x) => `${new Date(x.ts).toISOString()} stored ${x.n} times`);
}

/** The last tick the Collector had spooled (its grid file, written once Platform has it). */
function lastSpooledTick(): number {
  try {
    return Number(readFileSync(join(agent.env.SERVERMIND_AGENT_DIR!, "collector", "last-tick"), "utf8")) || 0;
  } catch {
    return 0;
  }
}

/** What the agent printed, for a failed check: the supervisor's and Collector's lines. */
function agentLog(): string {
  return agent.output().split("\n").filter((l) => /^(supervisor|collector|platform): /.test(l)).slice(-40).join("\n");
}

describe("compiled agent against the real server", () => {
  test("metrics, logs and inventory arrive in PostgreSQL, over HTTP/3 first", async () => {
    await until("metrics", async () => (await samples("mem.used_bytes")).length >= 3);
    // status.json is rewritten every 2 s
    await until("status shows HTTP/3", () => agent.status().transport === "h3", 10_000);
    expect(agent.status().h3).toBe("ok");
    appendFileSync(join(agent.dir, "logs", "app.log"), "e2e first line\ne2e error: second line\n");
    const logs = await until("logs", async () => {
      const r = await server.db.sql`select message, severity, source from logs where agent_id = ${agentId} and message like 'e2e %' order by message`;
      return r.length === 2 ? r : undefined;
    });
    expect(logs.map((r) => r.message)).toEqual(["e2e error: second line", "e2e first line"]);
    expect(logs[0]!.severity).toBe(3);
    const inv = await until("inventory", async () => (await server.db.sql`select data from inventory_current where agent_id = ${agentId}`)[0]);
    expect(inv.data.os.id).toBe("debian");
    expect(inv.data.users.some((u: { name: string }) => u.name === "root")).toBe(true);
    // pending updates (issue #17 item 8): the Collector's own check with this machine's apt, sent
    // as a second inventory once done (bounded by the reader's 120 s timeout)
    const upd = await until("pending updates in the inventory", async () => (await server.db.sql`select data->'updates' as u from inventory_current where agent_id = ${agentId}`)[0]?.u ?? undefined, 150_000, 500);
    expect(upd).toMatchObject({ status: "ok", source: "apt" });
    expect(upd.total).toBe(upd.security + upd.other);
    const names = (await server.db.sql`select name from metric_series where agent_id = ${agentId}`).map((r) => r.name as string);
    for (const n of ["cpu.usage_pct", "cpu.cores", "load.1", "mem.used_pct", "swap.used_bytes", "proc.total", "proc.threads", "fd.allocated", "tcp.listen", "system.uptime_s"]) expect(names).toContain(n);
    expect(names.some((n) => n.startsWith('disk.used_pct{mount="/"'))).toBe(true);
    expect(names.some((n) => n.startsWith("diskio.") )).toBe(true);
    expect(names.some((n) => n.startsWith('cpu.usage_pct{cpu="0"}'))).toBe(true);
  });

  test("a NUL in a watched log file is stored exactly and blocks nothing (issue #13)", async () => {
    appendFileSync(join(agent.dir, "logs", "app.log"), "e2e nul x\0y\ne2e after the nul\n");
    const rows = await until("the NUL line and the next", async () => {
      const r = await server.db.sql<{ message: string; message_raw: Buffer | null }[]>`
        select message, message_raw from logs where agent_id = ${agentId} and message like 'e2e nul%' or agent_id = ${agentId} and message = 'e2e after the nul' order by message`;
      return r.length === 2 ? r : undefined;
    });
    expect(rows[0]!.message).toBe("e2e after the nul");
    expect(rows[0]!.message_raw).toBeNull();
    expect(rows[1]!.message).toBe("e2e nul x\uFFFDy");
    expect(Buffer.from(rows[1]!.message_raw!).toString("utf8")).toBe("e2e nul x\0y");
    // metrics keep arriving: no writer is wedged
    const before = (await samples("mem.used_bytes")).length;
    await until("metrics after the NUL", async () => (await samples("mem.used_bytes")).length >= before + 2);
    // a wedged writer stays idle in a transaction; a live one passes through that state between
    // its statements in milliseconds (a snapshot caught one once), so only a lingering one counts
    const stuck = await server.db.sql`
      select state from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'
        and state_change < now() - interval '2 seconds'`;
    expect(stuck.length).toBe(0);
  });

  test("Monitor reports a changed watched file as a security event", async () => {
    await Bun.sleep(2 * INTERVAL); // the baseline
    writeFileSync(join(agent.dir, "watched.conf"), "PermitRootLogin yes\n");
    const ev = await until("security event", async () => (await server.db.sql`select type, path, severity from security_events where agent_id = ${agentId} and type = 'file.changed'`)[0]);
    expect(ev).toMatchObject({ type: "file.changed", path: join(agent.dir, "watched.conf"), severity: 5 });
  });

  test("Monitor runs the security monitor on the real system: FIM status and a CIS scan arrive", async () => {
    const types = await until("FIM status and CIS scan", async () => {
      const rows = await server.db.sql`select distinct type from security_events where agent_id = ${agentId}`;
      const t = rows.map((r) => r.type as string);
      return t.includes("fim.status") && t.some((x) => x.startsWith("cis.")) ? t : undefined;
    });
    expect(types).toContain("fim.status");
    const [st] = await server.db.sql`select data from security_events where agent_id = ${agentId} and type = 'fim.status' order by ts desc limit 1`;
    expect(st!.data.watches).toBeGreaterThan(0);
    // a real change under /etc, seen by inotify in the real agent, lands in PostgreSQL
    // and on the host's page in the console, read by a signed-in user as a browser would
    const console_ = await consoleHarness(server.db);
    try {
      const viewer = await console_.userWith(["hosts.view", "compliance.view", "fim.view"]);
      // 20 changes, one after another: created file -> row in PostgreSQL -> on the host page
      const paths: string[] = [];
      const inPg: number[] = [];
      const onPage: number[] = [];
      try {
        for (let i = 0; i < 20; i++) {
          const path = `/etc/servermind-e2e-${process.pid}-${i}.conf`;
          paths.push(path);
          const t0 = Date.now();
          writeFileSync(path, `e2e ${i}\n`);
          const ev = await until("FIM create event", async () => (await server.db.sql`select type from security_events where agent_id = ${agentId} and path = ${path}`)[0], 20_000, 10);
          expect(String(ev.type)).toMatch(/^fim\./);
          inPg.push(Date.now() - t0);
          await until("FIM event on the host page", async () => (await (await console_.send(`/hosts/${agentId}/security`, { session: viewer })).text()).includes(path), 20_000, 10);
          onPage.push(Date.now() - t0);
        }
      } finally {
        for (const p of paths) rmSync(p, { force: true });
      }
      const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.ceil((q / 100) * xs.length) - 1]!;
      console.log(`e2e FIM, 20 files created under /etc: in PostgreSQL p50 ${p(inPg, 50)} ms, p95 ${p(inPg, 95)} ms; on the console's host page p50 ${p(onPage, 50)} ms, p95 ${p(onPage, 95)} ms`);
      expect(p(onPage, 95)).toBeLessThan(2000); // the target: visible in the console within 2 s at p95
    } finally {
      await console_.close();
    }
  });

  test("signed commands reach the real Control over the command channel; answers come back; forgeries are refused", async () => {
    const deps = { sql: server.db.sql, commandKey: server.commandKey, audit: (e: AuditEvent) => audit(server.db.sql, e).then(() => {}), dispatch: server.dispatch };
    const who = { type: "user" as const, id: 1, name: "e2e" };
    // the agent keeps a WebSocket command channel open even while it ships over HTTP/3
    const ping = await until("ping answered", async () => {
      const r = await issueCommand(deps, who, agentId, "ping", {});
      return (r.result as { ok?: boolean })?.ok ? r : undefined;
    }, 30_000);
    expect(ping.result).toEqual({ ok: true, result: "pong" });
    const dry = await issueCommand(deps, who, agentId, "cis.remediate", { controls: ["smx.login.pass-max-days"], dryRun: true });
    expect(dry.result).toMatchObject({ ok: true, action: "cis.remediate", dryRun: true, commandId: dry.cmd.id });
    const [row] = await server.db.sql`select status from security_commands where id = ${dry.cmd.id}`;
    expect(row!.status).toBe("ok");
    const forged = await issueCommand({ ...deps, commandKey: generateKeyPairSync("ed25519").privateKey }, who, agentId, "ping", {});
    expect(forged.result).toMatchObject({ ok: false });
    expect(String((forged.result as { error?: string }).error)).toMatch(/signature/);
  });

  test("each process runs with its own credentials; Collector cannot read Platform's identity", async () => {
    if (!requireComponent(isRoot, "root (the privilege split needs it)")) return;
    const sup = await until("all running", () => {
      const s = agent.supervisor();
      return s.processes.every((p) => p.state === "running" && p.pid) ? s : undefined;
    });
    const creds = Object.fromEntries(sup.processes.map((p) => [p.name, credentials(p.pid!)]));
    console.log(`e2e credentials from /proc/PID/status: ${JSON.stringify({ supervisor: credentials(sup.pid), ...creds })}`);
    const users = { platform: lookupUser("servermind-platform")!, collector: lookupUser("servermind-collector")!, monitor: lookupUser("servermind-monitor")! };
    expect(creds.platform).toMatchObject({ uid: users.platform.uid, gid: users.platform.gid });
    expect(creds.collector).toMatchObject({ uid: users.collector.uid, gid: users.collector.gid });
    expect(creds.monitor).toMatchObject({ uid: users.monitor.uid, gid: users.monitor.gid });
    expect(creds.control!.uid).toBe(0);
    expect(creds.collector!.uid).not.toBe(creds.platform!.uid);
    expect(creds.collector!.groups).not.toContain(0);
    // Collector's credentials (runuser applies its supplementary groups too) cannot read the identity
    const identity = join(agent.env.SERVERMIND_AGENT_DIR!, "platform", "identity.db");
    const asUser = (user: string, ...cmd: string[]) => Bun.spawnSync(["runuser", "-u", user, "--", ...cmd], { stderr: "pipe" });
    const read = asUser("servermind-collector", "cat", identity);
    expect(read.exitCode).not.toBe(0);
    expect(read.stderr.toString()).toContain("Permission denied");
    expect(asUser("servermind-monitor", "cat", identity).exitCode).not.toBe(0);
    expect(asUser("servermind-platform", "cat", identity).exitCode).toBe(0);
    // sockets: only the intended peer can reach each one
    const run = agent.env.SERVERMIND_AGENT_RUN_DIR!;
    expect(asUser("servermind-monitor", "test", "-x", join(run, "collector")).exitCode).not.toBe(0);
    expect(asUser("servermind-collector", "test", "-x", join(run, "collector")).exitCode).toBe(0);
    expect(asUser("servermind-collector", "test", "-x", join(run, "monitor")).exitCode).not.toBe(0);
    expect(asUser("servermind-collector", "test", "-x", join(run, "control")).exitCode).not.toBe(0);
    expect(asUser("servermind-platform", "test", "-x", join(run, "control")).exitCode).toBe(0);
  });

  test("the four processes run JavaScriptCore without its JIT (the default of SERVERMIND_AGENT_JIT)", async () => {
    const sup = await until("all running", () => {
      const s = agent.supervisor();
      return s.processes.every((p) => p.state === "running" && p.pid) ? s : undefined;
    });
    for (const p of sup.processes) {
      const environ = readFileSync(`/proc/${p.pid}/environ`, "utf8").split("\0");
      expect(environ).toContain("BUN_JSC_useJIT=0");
    }
  });

  test("kill -9 of each process in turn: it comes back and no tick is missing", async () => {
    // The promise: a Collector killed after spooling tick T and back before interval T+1 ends
    // emits T+1 at once. Each process is killed just after a tick is spooled, so the restart has
    // the rest of the interval plus the next one (about 1.9 s here) whatever the load; killed at a random
    // moment, a restart slower than one interval (0.3 s idle, 0.7 s beside three busy loops on 2 cores,
    // more on a busier CI machine) can miss a tick of this test's 1 s grid; a 10 s grid cannot.
    const from = (await until("a stored tick", async () => (await samples("mem.used_bytes")).at(-1))).ts;
    const kills: string[] = [];
    for (const name of ["collector", "platform", "monitor", "control"]) {
      const spooled = lastSpooledTick();
      await until("the next tick spooled", () => lastSpooledTick() > spooled, 10_000, 5);
      const before = agent.supervisor().processes.find((p) => p.name === name)!;
      process.kill(before.pid!, "SIGKILL");
      const killedAt = Date.now();
      const after = await until(`${name} restarted`, () => {
        const p = agent.supervisor().processes.find((x) => x.name === name)!;
        return p.state === "running" && p.pid !== before.pid ? p : undefined;
      }, 30_000, 10);
      kills.push(`${name} killed ${new Date(killedAt).toISOString()}, running again ${Date.now() - killedAt} ms later`);
      expect(after.restarts).toBe(before.restarts + 1);
      await Bun.sleep(2 * INTERVAL);
    }
    const t = Date.now();
    await until("spool drained", () => agent.status().spool.frames === 0 && agent.status().lastAckMs > t);
    const s = await samples("mem.used_bytes");
    const why = `${kills.join("\n")}\n${agentLog()}`;
    expect(unexplainedGaps(s, from), why).toEqual([]);
    expect(repeats(s, from), why).toEqual([]);
    // the restarted Collector took its first rates against the last reading of the one killed
    expect(agent.output()).toContain("collector: rates continue from the last Collector's reading");
    expect(unexplainedGaps(await samples("cpu.usage_pct"), from), why).toEqual([]);
  });

  test("server down for 30 s: samples are spooled, then every one arrives exactly once", async () => {
    const before = (await samples("mem.used_bytes")).at(-1)!.ts;
    const logFrom = agent.output().length;
    await server.stop();
    const downAt = Date.now();
    await Bun.sleep(30_000);
    const spooled = agent.status().spool.frames;
    expect(spooled).toBeGreaterThanOrEqual(25);
    expect(agent.status().state).toBe("backoff");
    await server.restart();
    const upAt = Date.now();
    const firstAck = await until("first ack after the restart", () => (agent.status().lastAckMs > upAt ? agent.status().lastAckMs - upAt : 0), 90_000, 20);
    await until("backlog replayed", () => agent.status().spool.frames === 0 && agent.status().lastAckMs > upAt, 90_000);
    const drainedMs = Date.now() - upAt;
    const s = await samples("mem.used_bytes");
    const during = s.filter((x) => x.ts > before && x.ts <= downAt + 30_000);
    console.log(`e2e outage: ${spooled} frames spooled in 30 s, first ack ${firstAck} ms and backlog replayed ${drainedMs} ms after the restart (backoff with jitter), reconnect ${agent.status().lastReconnectMs} ms after the loss`);
    expect(during.length).toBeGreaterThanOrEqual(29);
    // and says so, for whoever watches it
    expect(agent.output().slice(logFrom).match(/connected to https:\/\/\S+ over (HTTP\/3|HTTP\/2|WebSocket) again after \d+ s/g)?.length, agentLog()).toBeGreaterThanOrEqual(1);
    expect(unexplainedGaps(s, before), agentLog()).toEqual([]);
    expect(repeats(s, before), agentLog()).toEqual([]);
  });

  test("a server that answers garbage, then one that never answers, crashes nothing and loses nothing", async () => {
    const restartsBefore = agent.supervisor().processes.map((p) => p.restarts);
    const before = (await samples("mem.used_bytes")).at(-1)!.ts;
    await server.stop();
    for (const mode of ["garbage", "silent"] as const) {
      let hits = 0;
      const bad = Bun.serve({
        hostname: "127.0.0.1", port: server.port, tls: { cert: server.certPem, key: server.keyPem },
        async fetch(req, srv) {
          hits++;
          if (new URL(req.url).pathname === "/api/v1/stream" && srv.upgrade(req, { data: undefined })) return undefined;
          if (mode === "silent") await Bun.sleep(60_000);
          return new Response("\u0000garbage{", { status: 200 });
        },
        websocket: {
          open(ws) {
            if (mode === "garbage") ws.send("{\"type\":\"challenge\",\"nonce\":" + "9".repeat(50));
            // silent: accept the connection and never say anything
          },
          message(ws) {
            ws.send(new Uint8Array([1, 2, 3]));
          },
        },
      });
      await Bun.sleep(8000);
      bad.stop(true);
      expect(hits).toBeGreaterThan(0);
      expect(agent.status().state).toBe("backoff");
    }
    expect(agent.supervisor().processes.map((p) => p.restarts)).toEqual(restartsBefore);
    expect(agent.supervisor().processes.every((p) => p.state === "running")).toBe(true);
    await server.restart();
    const upAt = Date.now();
    await until("backlog replayed", () => agent.status().spool.frames === 0 && agent.status().lastAckMs > upAt, 90_000);
    const s = await samples("mem.used_bytes");
    expect(s.filter((x) => x.ts > before).length).toBeGreaterThanOrEqual(15);
    expect(unexplainedGaps(s, before), agentLog()).toEqual([]);
    expect(repeats(s, before), agentLog()).toEqual([]);
  });

  test("status reports connection, transport, spool, last ack and processes", async () => {
    // after the outages above the agent is back on HTTP/3 once its next QUIC probe succeeds
    await until("back on HTTP/3", () => agent.status().transport === "h3", 30_000);
    const p = Bun.spawnSync([bin, "status"], { env: { ...process.env, ...agent.env }, stdout: "pipe" });
    const st = JSON.parse(p.stdout.toString());
    expect(p.exitCode).toBe(0);
    expect(st.connection).toBe("connected");
    expect(st.transport).toBe("h3");
    expect(st.http3).toBe("ok");
    expect(st.spool.frames).toBeGreaterThanOrEqual(0);
    expect(Date.parse(st.lastAck)).toBeGreaterThan(Date.now() - 30_000);
    expect(st.processes.map((x: { name: string }) => x.name).sort()).toEqual(["collector", "control", "monitor", "platform"]);
    // the compiled agent seals its frames with a session (docs/protocol.md 3.5), and says so in its heartbeats
    expect(st.session).toBe("open");
    expect(st.sealedFrames).toBeGreaterThan(0);
    await until("a heartbeat reporting the session", async () => ((await server.db.sql`select status->>'session' as s from agents where id = ${agentId}`)[0]?.s === "open" ? true : undefined), 15_000);
    expect(agent.output()).not.toMatch(/smt_/); // the token never appears in the agent's output
  });

  test("a Collector frozen for 2.5 s (SIGSTOP) names the ticks it did not collect and counts them; nothing else is missing", async () => {
    const from = (await until("a stored tick", async () => (await samples("mem.used_bytes")).at(-1))).ts;
    const said = new Set(notCollected().keys());
    const spooled = lastSpooledTick();
    await until("the next tick spooled", () => lastSpooledTick() > spooled, 10_000, 5);
    const collector = agent.supervisor().processes.find((p) => p.name === "collector")!;
    process.kill(collector.pid!, "SIGSTOP");
    await Bun.sleep(2_500);
    process.kill(collector.pid!, "SIGCONT");
    const resumedAt = Date.now();
    await until("a tick stored after the freeze", async () => (await samples("mem.used_bytes")).some((x) => x.ts > resumedAt));
    const reported = [...notCollected().keys()].filter((k) => !said.has(k));
    const missing = gaps(await samples("mem.used_bytes"), from);
    // the same process, not restarted: its timer fired late and it said which ticks it skipped
    expect(agent.supervisor().processes.find((p) => p.name === "collector")!.pid).toBe(collector.pid);
    expect(missing.length, agentLog()).toBeGreaterThanOrEqual(1);
    expect(reported, agentLog()).toEqual(missing);
    const count = await until("the count stored", async () => {
      const v = await latestValue("agent.collector_ticks_not_collected");
      return v !== undefined && v >= missing.length ? v : undefined;
    });
    expect(count).toBeGreaterThanOrEqual(missing.length);
  });

  test("over the whole run, through the kills, outages and freeze above, every tick is stored exactly once but those the Collector said it did not collect", async () => {
    // A tick the Collector did not collect (its process starved of CPU for an interval or more on a
    // loaded machine, or frozen above) is a gap it names in its log and counts; every tick it did
    // collect must be stored, once.
    const s = await samples("mem.used_bytes");
    expect(s.length).toBeGreaterThan(60);
    const said = notCollected();
    const missing = gaps(s);
    console.log(`e2e whole run: ${s.length} ticks stored, ${missing.length} not collected by the Collector${missing.length ? `: ${[...new Set(missing.map((m) => said.get(m)))].join("; ")}` : ""}`);
    expect(missing.filter((m) => !said.has(m)), agentLog()).toEqual([]);
    expect(repeats(s), agentLog()).toEqual([]);
  });

  test("kill -9 of the supervisor: the children stop themselves instead of running unsupervised", async () => {
    const sup = agent.supervisor();
    const pids = sup.processes.map((p) => p.pid!);
    process.kill(sup.pid, "SIGKILL");
    await until("children gone", () => pids.every((pid) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }), 10_000);
  });
});
