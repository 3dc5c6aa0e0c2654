/**
 * Backups across two managed hosts, end to end with two compiled agents on one real server:
 * a job of a tag backs up host A; its snapshot is restored onto host B (to a path, compared byte
 * for byte); the snapshot is browsed level by level (the listing read from the destination by
 * an agent through Control, a signed `backup.ls`) and only the ticked entries are restored; a
 * destination is tested from the destinations list with a host picked there. Host scope: a user
 * whose scope lacks B cannot restore onto it nor browse through it, one lacking A can neither read
 * A's runs nor restore or browse A's snapshots, and the destination test only reaches hosts in
 * the caller's scope. A server restart during a first run loses neither its result nor its
 * recovery key: the host keeps the result (sealed) and the server fetches it again.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueCommand } from "../../src/security/issue.ts";
import { reconcileRuns, startBackup } from "../../src/backups/runner.ts";
import { getJob } from "../../src/backups/store.ts";
import { findHost } from "../../src/store/postgres/queries-console.ts";
import { HostScope } from "../../src/auth/host-scope.ts";
import { startCommandReplies } from "../../src/cluster/command-replies.ts";
import { audit as writeAudit } from "../../src/audit/audit.ts";
import { consoleHarness, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { descendants } from "../support/daemon.ts";
import { agentBinary, agentDirs, enrollAgent, runAgent, startE2eServer, until, type AgentRun, type E2eServer } from "../support/agent-harness.ts";

setDefaultTimeout(240_000);

let server: E2eServer;
const agents: AgentRun[] = [];
const agentStates: string[] = [];
let hostA: number;
let hostB: number;
let work: string;
let h: ConsoleHarness;
const users: Record<string, TestSession> = {};
const DAV_PASSWORD = `dav-${randomBytes(9).toString("hex")}`;
const ALL = ["backups.view", "backups.manage", "backups.run", "backups.restore"];

beforeAll(async () => {
  const bin = await agentBinary();
  server = await startE2eServer();
  work = mkdtempSync(join(tmpdir(), "sm-bhosts-e2e-"));
  chmodSync(work, 0o755);
  const ids: number[] = [];
  for (let i = 0; i < 2; i++) {
    const { dir, env } = agentDirs();
    Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "2000" });
    agentStates.push(env.SERVERMIND_AGENT_DIR!);
    ids.push(await enrollAgent(bin, env, server));
    agents.push(runAgent(bin, dir, env));
  }
  [hostA, hostB] = ids as [number, number];
  await server.db.sql`update agents set tags = ${["group:web", "site:a"]} where id = ${hostA}`;
  await server.db.sql`update agents set tags = ${["group:web", "site:b"]} where id = ${hostB}`;
  h = await consoleHarness(server.db, { security: { commandKey: server.commandKey, dispatch: server.dispatch } });
  users.ops = await h.userWith(ALL, "bh-ops");
  users.viewer = await h.userWith(["backups.view"], "bh-viewer");
  users.onlyA = await h.userWith(ALL, "bh-only-a", ["site:a"]);
  users.onlyB = await h.userWith(ALL, "bh-only-b", ["site:b"]);
});

afterAll(async () => {
  await h?.close();
  for (const a of agents) await a.stop();
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function call(method: "GET" | "POST", path: string, body?: Record<string, unknown>, user = "ops", htmx = false) {
  const res = await h.send(path, { method, session: users[user], json: method === "POST" ? (body ?? {}) : undefined, headers: htmx ? { "hx-request": "true" } : {} });
  const text = await res.text();
  return { status: res.status, text, body: (text.startsWith("{") ? JSON.parse(text) : { text }) as any };
}

async function finish(run: number, user = "ops") {
  const end = Date.now() + 180_000;
  for (;;) {
    const r = await call("GET", `/api/backups/runs/${run}`, undefined, user);
    expect(r.status).toBe(200);
    if (r.body.finished) return r.body;
    if (Date.now() > end) throw new Error(`run ${run} did not finish: ${JSON.stringify(r.body)}`);
    await Bun.sleep(300);
  }
}

const ping = (agentId: number) => async () =>
  ((await issueCommand({ sql: server.db.sql, commandKey: server.commandKey, dispatch: server.dispatch, audit: () => {} }, { type: "user", id: 1, name: "t" }, agentId, "ping", {})).result as { ok?: boolean })?.ok;

describe("backups across two hosts, with two compiled agents", () => {
  let jobId: number;
  let snapshot: string;
  let src: string;
  let localDest: number;
  const big = randomBytes(2_000_000);

  test("a backup of host A restored onto host B, compared byte for byte; host scope on both ends", async () => {
    await until("command channel to A", ping(hostA), 90_000, 500);
    await until("command channel to B", ping(hostB), 90_000, 500);
    src = join(work, "src");
    mkdirSync(join(src, "etc/app"), { recursive: true });
    mkdirSync(join(src, "var/data"), { recursive: true });
    writeFileSync(join(src, "etc/app/app.ini"), "[main]\nport = 80\n");
    writeFileSync(join(src, "etc/hosts.extra"), "10.0.0.1 db\n");
    writeFileSync(join(src, "var/data/blob.bin"), big);
    writeFileSync(join(src, "var/data/small.txt"), "small\n");

    const dest = await call("POST", "/api/backups/destinations", { name: "shared-disk", type: "local", settings: JSON.stringify({ path: join(work, "repo") }) });
    expect(dest.status).toBe(200);
    localDest = dest.body.id;
    const job = await call("POST", "/api/backups/jobs", { name: "web-files", tag: "group:web", paths: src, destination: localDest, keep_last: 3, keep_daily: 0, keep_weekly: 0, keep_monthly: 0 });
    expect(job.status).toBe(200);
    jobId = job.body.id;

    const r = await call("POST", `/api/hosts/${hostA}/backups/run`, { job: jobId });
    expect(r.status).toBe(202);
    const run = await finish(r.body.run);
    expect(run).toMatchObject({ status: "ok", files: 4, host: { id: hostA } });
    snapshot = run.snapshot;

    // onto B, from A's repository, to a path
    const onB = join(work, "on-b");
    const rr = await call("POST", `/api/hosts/${hostB}/backups/restore`, { job: jobId, source: hostA, snapshot, target: onB });
    expect(rr.status).toBe(202);
    const restored = await finish(rr.body.run);
    expect(restored).toMatchObject({ status: "ok", kind: "restore", files: 4, host: { id: hostB } });
    expect(readFileSync(join(onB, src, "var/data/blob.bin")).equals(big)).toBe(true);
    expect(readFileSync(join(onB, src, "etc/app/app.ini"), "utf8")).toBe("[main]\nport = 80\n");
    // the command went to B's agent, carrying A's repository
    const [cmd] = await server.db.sql`select agent_id, args, status from security_commands where action = 'backup.restore' order by issued_at desc limit 1`;
    expect(Number(cmd!.agent_id)).toBe(hostB);
    expect(cmd!.args.source.id).toBe(hostA);
    expect(cmd!.status).toBe("ok");

    // a user whose scope lacks B: B is not there for them (the guard answers as for a missing host)
    const noB = await call("POST", `/api/hosts/${hostB}/backups/restore`, { job: jobId, source: hostA, snapshot, target: join(work, "x1") }, "onlyA");
    expect(noB.status).toBe(404);
    // one lacking A: neither A's runs nor a restore from A's repository
    expect((await call("GET", `/api/backups/runs/${r.body.run}`, undefined, "onlyB")).status).toBe(404);
    expect((await call("GET", `/api/backups/runs?job=${jobId}`, undefined, "onlyB")).body.runs.map((x: any) => x.host.id)).not.toContain(hostA);
    const noA = await call("POST", `/api/hosts/${hostB}/backups/restore`, { job: jobId, source: hostA, snapshot, target: join(work, "x2") }, "onlyB");
    expect(noA.status).toBe(400);
    const page = await (await h.send(`/hosts/${hostB}/backups/restore?job=${jobId}&source=${hostA}`, { session: users.onlyB })).text();
    expect(page).not.toContain(snapshot);
    // a viewer cannot restore at all
    expect((await call("POST", `/api/hosts/${hostB}/backups/restore`, { job: jobId, source: hostA, snapshot, target: join(work, "x3") }, "viewer")).status).toBe(403);
    for (const d of ["x1", "x2", "x3"]) expect(existsSync(join(work, d))).toBe(false);
  });

  test("snapshot browser: levels listed by the agent through Control, ticked entries restored", async () => {
    const q = (path: string, via = hostB) => `/api/hosts/${via}/backups/browse?job=${jobId}&source=${hostA}&snapshot=${snapshot}&path=${encodeURIComponent(path)}`;
    // the top: the parents of the backed-up root are listed as directories
    const top = await call("GET", q("/"));
    expect(top.status).toBe(200);
    expect(top.body.snapshot).toBe(snapshot);
    expect(top.body.items.length).toBe(1);
    expect(top.body.items[0].type).toBe("dir");
    const level = await call("GET", q(src));
    expect(level.status).toBe(200);
    expect(level.body.items.map((i: any) => [i.name, i.type])).toEqual([["etc", "dir"], ["var", "dir"]]);
    expect(level.body.items.find((i: any) => i.name === "var")).toMatchObject({ files: 2, size: big.length + 6 });
    const data = await call("GET", q(join(src, "var/data")));
    expect(data.body.items.map((i: any) => [i.name, i.type, i.size])).toEqual([["blob.bin", "file", big.length], ["small.txt", "file", 6]]);
    // a signed command to the agent, recorded like the others (never read by the server itself)
    const [ls] = await server.db.sql`select agent_id, args, status, requested_by from security_commands where action = 'backup.ls' order by issued_at desc limit 1`;
    expect(Number(ls!.agent_id)).toBe(hostB);
    expect(ls!.status).toBe("ok");
    expect(JSON.stringify(ls!.args)).not.toContain("password");
    // the page: a browse button; the partial: checkboxes, links down, ticks carried along
    const restorePage = await (await h.send(`/hosts/${hostB}/backups/restore?job=${jobId}&source=${hostA}`, { session: users.ops })).text();
    expect(restorePage).toContain(`hx-get="/api/hosts/${hostB}/backups/browse"`);
    const partial = await call("GET", `${q(join(src, "etc"))}&include=${encodeURIComponent(join(src, "var/data/small.txt"))}`, undefined, "ops", true);
    expect(partial.status).toBe(200);
    expect(partial.text).toContain(`name="include" value="${join(src, "etc/app")}"`);
    expect(partial.text).toContain(`value="${join(src, "var/data/small.txt")}" checked`);
    expect(partial.text).toMatch(/hx-get="[^"]*backups\/browse\?[^"]*path=[^"]*etc%2Fapp/);

    // restore only what was ticked: a directory of one level and a file of another
    const picked = join(work, "picked");
    const rr = await h.send(`/api/hosts/${hostB}/backups/restore`, { session: users.ops, form: { job: String(jobId), source: String(hostA), snapshot, target: picked, include: [join(src, "etc/app"), join(src, "var/data/small.txt")] } });
    expect(rr.status).toBe(202);
    const done = await finish(((await rr.json()) as any).run);
    expect(done).toMatchObject({ status: "ok", files: 2 });
    expect(readFileSync(join(picked, src, "etc/app/app.ini"), "utf8")).toBe("[main]\nport = 80\n");
    expect(readFileSync(join(picked, src, "var/data/small.txt"), "utf8")).toBe("small\n");
    expect(existsSync(join(picked, src, "var/data/blob.bin"))).toBe(false);
    expect(existsSync(join(picked, src, "etc/hosts.extra"))).toBe(false);

    // a missing snapshot: the agent's error comes back
    const missing = await call("GET", q(src).replace(snapshot, "0".repeat(32)));
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toMatch(/no snapshot/);
    expect((await call("GET", q("relative"))).status).toBe(400);
    // scope: through a host outside it (404), from a repository outside it (400), without the permission (403)
    expect((await call("GET", q(src), undefined, "onlyA")).status).toBe(404);
    expect((await call("GET", q(src), undefined, "onlyB")).status).toBe(400);
    expect((await call("GET", q(src), undefined, "viewer")).status).toBe(403);
  });

  test("test connection from the destinations list, with a host picked there", async () => {
    const dav = await call("POST", "/api/backups/destinations", { name: "dav", type: "webdav", settings: JSON.stringify({ url: "https://127.0.0.1:9/dav/", username: "u" }), password: DAV_PASSWORD });
    expect(dav.status).toBe(200);
    const page = await (await h.send("/backups", { session: users.onlyB })).text();
    expect(page).toContain(`hx-post="/api/backups/destinations/${localDest}/test"`);
    // the host picker offers the hosts of the caller's scope only
    const picker = page.match(/aria-label="host that reaches shared-disk">([\s\S]*?)<\/select>/)![1]!;
    expect([...picker.matchAll(/<option value="(\d+)">/g)].map((m) => Number(m[1]))).toEqual([hostB]);
    const opsPage = await (await h.send("/backups", { session: users.ops })).text();
    const all = opsPage.match(/aria-label="host that reaches shared-disk">([\s\S]*?)<\/select>/)![1]!;
    expect([...all.matchAll(/<option value="(\d+)">/g)].map((m) => Number(m[1])).sort()).toEqual([hostA, hostB].sort());

    const ok = await call("POST", `/api/backups/destinations/${localDest}/test`, { host: hostB }, "onlyB");
    expect(ok.body).toMatchObject({ ok: true, host: { id: hostB }, destination: localDest, repository: false });
    const bad = await call("POST", `/api/backups/destinations/${dav.body.id}/test`, { host: hostB }, "onlyB");
    expect(bad.status).toBe(200);
    expect(bad.body.ok).toBe(false);
    expect(bad.body.error).toMatch(/127\.0\.0\.1|ECONNREFUSED|connect|refused/i); // the destination's own error text
    expect(bad.text).not.toContain(DAV_PASSWORD);
    const shown = await call("POST", `/api/backups/destinations/${dav.body.id}/test`, { host: hostB }, "onlyB", true);
    expect(shown.text).toContain("failed —");
    expect(shown.text).not.toContain(DAV_PASSWORD);

    expect((await call("POST", `/api/backups/destinations/${localDest}/test`, { host: hostA }, "onlyB")).status).toBe(404);
    expect((await call("POST", `/api/backups/destinations/${localDest}/test`, {}, "onlyB")).status).toBe(400);
    expect((await call("POST", `/api/backups/destinations/999999/test`, { host: hostB }, "onlyB")).status).toBe(404);
    expect((await call("POST", `/api/backups/destinations/${localDest}/test`, { host: hostB }, "viewer")).status).toBe(403);
    // CSRF like every state-changing form
    expect((await h.send(`/api/backups/destinations/${localDest}/test`, { session: users.ops, json: { host: hostB }, csrf: "wrong" })).status).toBe(403);

    const audit = await server.db.sql`select actor_name, success, details from audit_log where category = 'backup' and action = 'backup.destination.test' order by id`;
    expect(audit.map((a) => [a.actor_name, a.success, Number(a.details.agentId)])).toEqual([
      ["bh-only-b", true, hostB], ["bh-only-b", false, hostB], ["bh-only-b", false, hostB],
    ]);
    expect(JSON.stringify(audit)).not.toContain(DAV_PASSWORD);
  });

  test("a server restart during a first run: the result and the recovery key are fetched again from the host", async () => {
    const big2 = join(work, "big2");
    mkdirSync(big2);
    for (let i = 0; i < 6; i++) writeFileSync(join(big2, `part-${i}.bin`), randomBytes(25_000_000));
    const repo = join(work, "repo-restart");
    const dest = await call("POST", "/api/backups/destinations", { name: "restart-disk", type: "local", settings: JSON.stringify({ path: repo }) });
    const job = await call("POST", "/api/backups/jobs", { name: "restart-job", host: hostA, paths: big2, destination: dest.body.id });
    expect(job.status).toBe(200);
    const r = await call("POST", `/api/hosts/${hostA}/backups/run`, { job: job.body.id });
    expect(r.status).toBe(202);
    const run = r.body.run as number;
    const repoDir = join(repo, `job-${job.body.id}/host-${hostA}`);
    // the host has begun (the repository exists): the server goes away mid-run. The host's Control
    // process, which runs the backup, is frozen meanwhile: on a quiet machine the 150 MB run
    // finished (and answered) before the server had stopped
    await until("the repository created by the run", () => existsSync(join(repoDir, "config")), 60_000, 20);
    const control = agents[0]!.supervisor().processes.find((p) => p.name === "control")!.pid!;
    const frozen = [control, ...descendants(control)];
    for (const pid of frozen) process.kill(pid, "SIGSTOP");
    try {
      await server.stop();
      expect((await server.db.sql`select status from backup_runs where id = ${run}`)[0]!.status).toBe("running");
    } finally {
      for (const pid of frozen) process.kill(pid, "SIGCONT");
    }
    // the host finishes without it: the snapshot is written, the answer has nowhere to go
    await until("the snapshot written by the host", () => existsSync(join(repoDir, "snapshots")) && readdirSync(join(repoDir, "snapshots")).length === 1, 180_000, 200);
    const kept = join(agentStates[0]!, "control", "backup-results", `job-${job.body.id}-run-${run}.json`);
    await until("the result kept on the host", () => existsSync(kept), 30_000, 100);
    const sealedText = readFileSync(kept, "utf8");
    await server.restart();
    await until("command channel to A again", ping(hostA), 90_000, 500);
    await Bun.sleep(3000);
    // today's loss, without reconciling: the run still waits for an answer that will never come
    expect((await server.db.sql`select status from backup_runs where id = ${run}`)[0]!.status).toBe("running");

    const deps = {
      sql: server.db.sql, box: h.services.secrets, commandKey: server.commandKey, dispatch: server.dispatch,
      audit: (e: any) => writeAudit(server.db.sql, { actor: { type: "system", id: "backup-reconciler", name: "backup reconciler" }, category: "backup", ...e }).then(() => {}),
    };
    // (this test process still holds the old waiter, as a server whose stream to the host broke would)
    expect(await reconcileRuns(deps, { olderThanMs: 0, everyMs: 0 })).toEqual([run]);
    const final = await call("GET", `/api/backups/runs/${run}`);
    const snapName = readdirSync(join(repoDir, "snapshots"))[0]!;
    expect(final.body).toMatchObject({ status: "ok", files: 6, snapshot: snapName, bytesRead: 150_000_000 });
    expect(final.body.details.recovered).toMatch(/fetched again/);
    const key = final.body.recoveryKey as string;
    expect(typeof key).toBe("string");
    expect(key.length).toBeGreaterThan(20);
    expect((await call("GET", `/api/backups/runs/${run}`)).body.recoveryKey).toBeUndefined(); // once
    expect(sealedText).not.toContain(key); // kept sealed on the host
    const [j] = await server.db.sql`select initialized_agents from backup_jobs where id = ${job.body.id}`;
    expect(j!.initialized_agents.map(Number)).toEqual([hostA]);
    // the host forgot it once the server had it; nothing is settled twice; no recovery key on a command row
    await until("the kept result removed", () => !existsSync(kept), 30_000, 100);
    expect(await reconcileRuns(deps, { olderThanMs: 0, everyMs: 0 })).toEqual([]);
    expect(JSON.stringify(await server.db.sql`select args, result from security_commands where action like 'backup.%'`)).not.toContain(key);
    const audit = await server.db.sql`select details from audit_log where action = 'backup.run' and details->>'run' = ${String(run)}`;
    expect(audit.length).toBe(1);
    expect(audit[0]!.details.repositoryCreated).toBe(true);

    // a graceful stop (the server's command replies settle every wait with "server stopping"): the run
    // is left running for the reconciler, not failed; this command never reached the host, which says so
    const replies = await startCommandReplies(server.db.sql);
    const stopping = { ...deps, dispatch: async (agentId: number, cmd: { id: string }) => {
      const answer = replies.wait(cmd.id, agentId, 60_000);
      await replies.stop();
      return answer;
    } };
    const jobRow = (await getJob(server.db.sql, job.body.id))!;
    const hostRow = (await findHost(server.db.sql, HostScope.system("test"), hostA))!;
    const cut = await startBackup(stopping, { type: "user", id: users.ops!.userId, name: "bh-ops" }, jobRow, hostRow, "manual");
    expect((await cut.done).unanswered).toBe(true);
    expect((await server.db.sql`select status from backup_runs where id = ${cut.run}`)[0]!.status).toBe("running");
    expect(await reconcileRuns(deps, { olderThanMs: 0, everyMs: 0 })).toEqual([cut.run]);
    const g = await call("GET", `/api/backups/runs/${cut.run}`);
    expect(g.body).toMatchObject({ status: "failed" });
    expect(g.body.error).toMatch(/no result of this run/);
  });
});
