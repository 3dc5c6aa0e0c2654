/**
 * The whole CIS cycle with the compiled agent against the real server, on a prepared root with
 * known-bad settings (SERVERMIND_AGENT_ROOT): an on-demand scan finds the violations, a dry
 * run shows the diff and changes nothing, the confirmed remediation (a command signed by the
 * server, run by Control) fixes the files, a new scan resolves the violations, the rollback
 * restores every byte and mode, and a last scan reopens them. Every step is audited and goes
 * through the security routes with their permission and confirmation checks.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { audit, type AuditEvent } from "../../src/audit/audit.ts";
import { issueCommand } from "../../src/security/issue.ts";
import { startSecurityJobs } from "../../src/security/jobs.ts";
import { consoleHarness, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { agentBinary, agentDirs, enrollAgent, runAgent, startE2eServer, until, type AgentRun, type E2eServer } from "../support/agent-harness.ts";
import { makeCisRoot } from "../support/cis-root.ts";

setDefaultTimeout(180_000);

let server: E2eServer;
let agent: AgentRun;
let agentId: number;
let root: string;
let jobs: ReturnType<typeof startSecurityJobs>;
const audits: AuditEvent[] = [];
const CONTROLS = ["smx.files.passwd", "smx.ssh.root-login", "smx.login.pass-max-days"];
const FILES = ["/etc/passwd", "/etc/ssh/sshd_config", "/etc/login.defs"];

beforeAll(async () => {
  const bin = await agentBinary();
  server = await startE2eServer();
  root = makeCisRoot("bad");
  const { dir, env } = agentDirs();
  Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "2000", SERVERMIND_AGENT_ROOT: root });
  agentId = await enrollAgent(bin, env, server);
  agent = runAgent(bin, dir, env);
  jobs = startSecurityJobs(server.db.sql, deps());
  server.ingest.deps.onStored = jobs.onStored;
  h = await consoleHarness(server.db, { security: { commandKey: server.commandKey, dispatch: server.dispatch } });
  users.alice = await h.userWith(["compliance.view", "compliance.scan", "compliance.remediate"], "alice");
  users.viewer = await h.userWith(["compliance.view"], "viewer");
});

afterAll(async () => {
  jobs?.stop();
  await h?.close();
  await agent?.stop();
  await server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

const deps = () => ({
  sql: server.db.sql,
  commandKey: server.commandKey,
  audit: async (e: AuditEvent) => {
    audits.push(e);
    await audit(server.db.sql, e);
  },
  dispatch: server.dispatch,
});

let h: ConsoleHarness;
const users: Record<string, TestSession> = {};

/** The console's API through its guard, as "alice" (scan and remediate) or "viewer" (compliance.view). */
async function call(method: "GET" | "POST", path: string, body?: Record<string, unknown>, user: "alice" | "viewer" = "alice") {
  if (method === "POST") await h.reauth(users[user]!); // within the 5-minute re-authentication window, however slow the agent
  const res = await h.send(path, { method, session: users[user], json: method === "POST" ? body ?? {} : undefined });
  return { status: res.status, body: (await res.json()) as any };
}

const snapshot = () => FILES.map((f) => ({ f, text: readFileSync(join(root, f), "utf8"), mode: statSync(join(root, f)).mode & 0o7777 }));

/** Scans on demand and waits until the posture job recorded that scan. */
async function scan(): Promise<Map<string, { resolved: boolean }>> {
  let r = await call("POST", `/api/security/hosts/${agentId}/scan`, {});
  // the agent scans once at start: on a busy machine that scan may still be running
  for (let i = 0; i < 60 && r.body.result?.error === "a scan is already running"; i++) {
    await Bun.sleep(500);
    r = await call("POST", `/api/security/hosts/${agentId}/scan`, {});
  }
  expect(r.status).toBe(200);
  expect(r.body.result).toMatchObject({ ok: true });
  const at = new Date(r.body.result.startedMs);
  await until("the scan recorded", async () => (await server.db.sql`select 1 from cis_scans where agent_id = ${agentId} and scanned_at = ${at}`)[0], 15_000, 50);
  const rows = await server.db.sql`select control_id, resolved_at from cis_violations where agent_id = ${agentId} and control_id = any(${CONTROLS}) order by first_seen`;
  // the newest violation of each control decides
  return new Map(rows.map((v) => [v.control_id as string, { resolved: v.resolved_at !== null }]));
}

describe("CIS cycle with the compiled agent on a known-bad root", () => {
  test("scan, dry run, confirmed remediation, verify, rollback, verify", async () => {
    await until("command channel up", async () => ((await issueCommand(deps(), { type: "user", id: 7, name: "alice" }, agentId, "ping", {})).result as { ok?: boolean })?.ok, 90_000, 500);
    const before = snapshot();

    const first = await scan();
    for (const c of CONTROLS) expect(first.get(c)).toEqual({ resolved: false });

    const dry = await call("POST", `/api/security/hosts/${agentId}/remediate`, { controls: CONTROLS });
    expect(dry.status).toBe(200);
    expect(dry.body.result).toMatchObject({ ok: true, dryRun: true });
    expect(dry.body.result.changes.map((c: { path: string }) => c.path).sort()).toEqual([...FILES].sort());
    expect(JSON.stringify(dry.body.result.changes)).toContain("PASS_MAX_DAYS");
    expect(snapshot()).toEqual(before); // a dry run changes nothing

    const unconfirmed = await call("POST", `/api/security/hosts/${agentId}/remediate`, { controls: CONTROLS, dryRun: false });
    expect(unconfirmed.status).toBe(403);
    const phrase = /^Type (.+) exactly/.exec(unconfirmed.body.error.message)![1]!;
    expect(phrase).toBe(`remediate ${(await server.db.sql`select hostname from agents where id = ${agentId}`)[0]!.hostname}`);
    const forbidden = await call("POST", `/api/security/hosts/${agentId}/remediate`, { controls: CONTROLS, dryRun: false, confirm: phrase }, "viewer");
    expect(forbidden.status).toBe(403);
    expect(snapshot()).toEqual(before);

    const applied = await call("POST", `/api/security/hosts/${agentId}/remediate`, { controls: CONTROLS, dryRun: false, confirm: phrase });
    expect(applied.status).toBe(200);
    expect(applied.body.result.ok).toBe(true);
    for (const c of CONTROLS) expect(applied.body.result.verdicts[c]).toBe("pass");
    expect(statSync(join(root, "etc/passwd")).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).toMatch(/^PermitRootLogin no$/m);
    expect(readFileSync(join(root, "etc/login.defs"), "utf8")).toMatch(/^PASS_MAX_DAYS\s+365$/m);

    const second = await scan();
    for (const c of CONTROLS) expect(second.get(c)).toEqual({ resolved: true });

    const rolled = await call("POST", `/api/security/hosts/${agentId}/rollback`, { snapshot: applied.body.result.snapshot, confirm: phrase.replace(/^remediate/, "rollback") });
    expect(rolled.status).toBe(200);
    expect(rolled.body.result.ok).toBe(true);
    expect(snapshot()).toEqual(before); // every byte and mode as it was

    const third = await scan();
    for (const c of CONTROLS) expect(third.get(c)).toEqual({ resolved: false }); // reopened

    // the console audits its requests' commands, with the client's address
    const logged = await server.db.sql`select action, success, actor_name, ip from audit_log where action in ('cis.remediate', 'cis.rollback', 'cis.remediate.dry-run') order by id`;
    for (const a of ["cis.remediate.dry-run", "cis.remediate", "cis.rollback"]) expect(logged).toContainEqual({ action: a, success: true, actor_name: "alice", ip: "192.0.2.10" });
    const cmds = await server.db.sql`select action, status from security_commands where agent_id = ${agentId} and action <> 'ping' and action <> 'cis.scan' order by issued_at`;
    expect(cmds.map((c) => [c.action, c.status])).toEqual([["cis.remediate", "ok"], ["cis.remediate", "ok"], ["cis.rollback", "ok"]]);
  });
});
