/**
 * On-demand CIS scans with the compiled agent against the real server: POST
 * /api/security/hosts/:id/scan signs a `cis.scan` command, Platform routes it to Monitor over
 * Monitor's own socket, Monitor verifies it, scans and answers with the summary; the results
 * arrive as a `cis.scan` security event, and the posture job, started by their commit as
 * src/main.ts wires it (src/security/jobs.ts), turns them into a cis_scans row. A scan command with a bad signature is refused by
 * Monitor and scans nothing.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { audit, type AuditEvent } from "../../src/audit/audit.ts";
import { issueCommand } from "../../src/security/issue.ts";
import { signCommand } from "../../src/ingest/frame/commands.ts";
import { consumeScanEvents } from "../../src/security/posture.ts";
import { startSecurityJobs } from "../../src/security/jobs.ts";
import { consoleHarness } from "../support/console-app.ts";
import { lookupUser } from "../../agent/supervisor/layout.ts";
import { agentBinary, agentDirs, credentials, enrollAgent, runAgent, startE2eServer, until, type AgentRun, type E2eServer } from "../support/agent-harness.ts";
import { requireComponent } from "../support/ci.ts";

setDefaultTimeout(180_000);
const isRoot = process.getuid?.() === 0;

let server: E2eServer;
let agent: AgentRun;
let agentId: number;

beforeAll(async () => {
  const bin = await agentBinary();
  server = await startE2eServer();
  const { dir, env } = agentDirs();
  Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "1000", SERVERMIND_AGENT_WATCH_FILES: join(dir, "watched.conf") });
  agentId = await enrollAgent(bin, env, server);
  agent = runAgent(bin, dir, env);
});

afterAll(async () => {
  await agent?.stop();
  await server?.close();
});

const deps = () => ({ sql: server.db.sql, commandKey: server.commandKey, audit: (e: AuditEvent) => audit(server.db.sql, e).then(() => {}), dispatch: server.dispatch });
const who = { type: "user" as const, id: 1, name: "e2e" };
const scanEvents = async () => (await server.db.sql`select count(*)::int as n from security_events where agent_id = ${agentId} and type = 'cis.scan'`)[0]!.n as number;

describe("on-demand CIS scan with the compiled agent", () => {
  test("POST scan -> Monitor scans -> a fresh cis_scans row in PostgreSQL within seconds", async () => {
    // the command channel is up once a ping comes back from Control
    // (one attempt waits up to the dispatcher's 30 s while the channel is not up yet)
    await until("ping answered", async () => ((await issueCommand(deps(), who, agentId, "ping", {})).result as { ok?: boolean })?.ok, 90_000, 500);
    // the scan Monitor runs at start, so the on-demand one below is the only new one
    await until("start-up scan", async () => (await scanEvents()) >= 1, 30_000);
    await consumeScanEvents(server.db.sql);
    const jobs = startSecurityJobs(server.db.sql, deps());
    server.ingest.deps.onStored = jobs.onStored;
    // the console's API through its guard, over the server's database and command channel
    const h = await consoleHarness(server.db, { security: { commandKey: server.commandKey, dispatch: server.dispatch } });
    const alice = await h.userWith(["compliance.scan"], "alice");

    const t0 = performance.now();
    const res = await h.send(`/api/security/hosts/${agentId}/scan`, { session: alice, json: {} });
    const replyMs = performance.now() - t0;
    const body = (await res.json()) as { command: string; result: { ok: boolean; action: string; summary: Record<string, number>; startedMs: number; durationMs: number } };
    expect(res.status).toBe(200);
    expect(body.result.ok).toBe(true);
    expect(body.result.action).toBe("cis.scan");
    const scannedAt = new Date(body.result.startedMs);
    const row = await until("cis_scans row", async () =>
      (await server.db.sql`select passed, failed, not_applicable, errors from cis_scans where agent_id = ${agentId} and scanned_at = ${scannedAt}`)[0], 15_000, 50);
    const landedMs = performance.now() - t0;
    jobs.stop();
    await h.close();
    server.ingest.deps.onStored = undefined;
    console.log(`on-demand scan: reply after ${replyMs.toFixed(0)} ms (scan took ${body.result.durationMs} ms in Monitor), cis_scans row after ${landedMs.toFixed(0)} ms`);
    expect({ passed: row.passed, failed: row.failed, not_applicable: row.not_applicable, errors: row.errors }).toEqual({
      passed: body.result.summary.pass!, failed: body.result.summary.fail!, not_applicable: body.result.summary.notapplicable!, errors: body.result.summary.error!,
    });
    expect(landedMs).toBeLessThan(5_000); // no 30 s wait for the periodic job
    const [cmd] = await server.db.sql`select status, action from security_commands where id = ${body.command}`;
    expect(cmd).toMatchObject({ status: "ok", action: "cis.scan" });
    expect(agent.output()).toContain('platform: command "cis.scan" -> monitor: done');
  });

  test("a cis.scan with a bad signature is refused by Monitor and scans nothing; a replay is refused too", async () => {
    const before = await scanEvents();
    const forged = await issueCommand({ ...deps(), commandKey: generateKeyPairSync("ed25519").privateKey }, who, agentId, "cis.scan", {});
    expect(forged.result).toMatchObject({ ok: false, error: expect.stringContaining("signature does not verify") });
    expect(agent.output()).toContain('platform: command "cis.scan" -> monitor: refused: command signature does not verify');
    const good = await issueCommand(deps(), who, agentId, "cis.scan", {});
    expect(good.result).toMatchObject({ ok: true });
    // the same signed command again (Ed25519 signatures are deterministic): its nonce was used
    expect(await server.dispatch(agentId, signCommand(good.cmd, server.commandKey))).toMatchObject({ ok: false, error: expect.stringContaining("already used") });
    await until("the one good scan", async () => (await scanEvents()) === before + 1, 15_000);
    await Bun.sleep(2000); // and nothing more
    expect(await scanEvents()).toBe(before + 1);
  });

  test("Monitor runs as its own user and serves commands from a directory only Platform can enter", async () => {
    if (!requireComponent(isRoot, "root (the privilege split needs it)")) return;
    const sup = agent.supervisor();
    const monitor = sup.processes.find((p) => p.name === "monitor")!;
    const monitorUser = lookupUser("servermind-monitor")!;
    const platformUser = lookupUser("servermind-platform")!;
    expect(credentials(monitor.pid!).uid).toBe(monitorUser.uid);
    const st = statSync(dirname(join(agent.env.SERVERMIND_AGENT_RUN_DIR!, "monitor-commands", "monitor.sock")));
    expect({ mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }).toEqual({ mode: 0o750, uid: monitorUser.uid, gid: platformUser.gid });
  });

  test("Monitor reads every file but holds no other capability, and cannot see Platform's identity or any disk", async () => {
    if (!requireComponent(isRoot, "root (the privilege split needs it)")) return;
    const running = (name: string) => {
      try {
        const pid = agent.supervisor().processes.find((p) => p.name === name)?.pid;
        return pid && existsSync(`/proc/${pid}/status`) ? pid : undefined;
      } catch {
        return undefined; // the supervisor has not written its state yet
      }
    };
    const pid = await until("Monitor running", () => running("monitor"));
    await until("Platform running", () => running("platform"));
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (k: string) => status.match(new RegExp(`^${k}:\\s*(\\S+)$`, "m"))?.[1];
    // CAP_DAC_READ_SEARCH (bit 2) and nothing else, in every set; no way to gain more
    for (const k of ["CapEff", "CapPrm", "CapBnd", "CapAmb"]) expect(field(k)).toBe("0000000000000004");
    expect(field("NoNewPrivs")).toBe("1");
    // Monitor's view of the file system, through its own root (we are root, so we may look)
    const state = agent.env.SERVERMIND_AGENT_DIR!;
    const view = (path: string) => readdirSync(`/proc/${pid}/root${path}`).sort();
    expect(readdirSync(join(state, "platform"))).toContain("identity.db");
    expect(view(join(state, "platform"))).toEqual([]);
    expect(view(join(state, "control", "snapshots"))).toEqual([]);
    expect(view("/dev")).toEqual(["fd", "full", "null", "random", "stderr", "stdin", "stdout", "urandom", "zero"]);
    expect(readFileSync(`/proc/${pid}/mountinfo`, "utf8")).toContain("servermind-hidden");
    // a process with Monitor's credentials in Monitor's mount namespace: what can it read?
    const platformPid = agent.supervisor().processes.find((p) => p.name === "platform")!.pid!;
    const asMonitor = (path: string) => {
      const r = Bun.spawnSync(["nsenter", "-t", String(pid), "-m", "--", "setpriv", `--reuid=${lookupUser("servermind-monitor")!.uid}`, `--regid=${lookupUser("servermind-monitor")!.gid}`, "--clear-groups",
        "--inh-caps=-all,+dac_read_search", "--ambient-caps=-all,+dac_read_search", "--bounding-set=-all,+dac_read_search", "--no-new-privs", "--", "head", "-c", "1", path], { stderr: "pipe", stdout: "pipe" });
      return r.exitCode === 0 ? "read" : r.stderr.toString().trim().replace(/^head: /, "");
    };
    expect(asMonitor("/etc/shadow")).toBe("read");
    expect(asMonitor(join(state, "platform", "machine.secret"))).toContain("No such file");
    expect(asMonitor(`/proc/${platformPid}/root${join(state, "platform", "machine.secret")}`)).toContain("Permission denied");
    expect(asMonitor(`/proc/${platformPid}/mem`)).toContain("Permission denied");
    // and it does read root-only files: the read-only scan judged /etc/shadow's content
    const r = await until("a scan recorded", async () => {
      await consumeScanEvents(server.db.sql);
      return (await server.db.sql`select r.status, r.observed from cis_results r where r.agent_id = ${agentId} and r.control_id = 'smx.accounts.empty-passwords'`)[0];
    });
    expect(r!.status).not.toBe("error");
    expect(String(r!.observed)).not.toMatch(/permission denied|EACCES/i);
  });
});
