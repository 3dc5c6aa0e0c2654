/**
 * Backup jobs on a managed host, end to end: the compiled agent (its Control process runs the
 * engine), the real server and command channel, the console routes with their permissions,
 * host scope and dangerous-operation checks. A local-directory destination tested FROM the host,
 * a job for a temporary directory, a first run (the repository is created, its recovery key is
 * shown once and then gone), history with statistics, a changed file and a second run that
 * deduplicates, a restore to another path compared byte for byte, a restore over the original
 * location refused without the typed confirmation and done with it, and no secret (destination
 * password, repository password, recovery key) in any page, API answer, command row or audit row.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueCommand } from "../../src/security/issue.ts";
import { runDueJobs } from "../../src/backups/scheduler.ts";
import { audit as writeAudit } from "../../src/audit/audit.ts";
import { pgBinDir, startPgCluster } from "../support/pg-cluster.ts";
import { requireComponent } from "../support/ci.ts";
import { consoleHarness, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { agentBinary, agentDirs, enrollAgent, runAgent, startE2eServer, until, type AgentRun, type E2eServer } from "../support/agent-harness.ts";

setDefaultTimeout(240_000);

let server: E2eServer;
let agent: AgentRun;
let agentId: number;
let agentState: string;
let hostname: string;
let work: string;
let h: ConsoleHarness;
const users: Record<string, TestSession> = {};
const DAV_PASSWORD = `dav-${randomBytes(9).toString("hex")}`;
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  const bin = await agentBinary();
  server = await startE2eServer();
  work = mkdtempSync(join(tmpdir(), "sm-bjobs-e2e-"));
  chmodSync(work, 0o755);
  const { dir, env } = agentDirs();
  Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "2000" });
  agentState = env.SERVERMIND_AGENT_DIR!;
  agentId = await enrollAgent(bin, env, server);
  agent = runAgent(bin, dir, env);
  hostname = (await server.db.sql`select hostname from agents where id = ${agentId}`)[0]!.hostname;
  await server.db.sql`update agents set tags = ${["group:web"]} where id = ${agentId}`;
  h = await consoleHarness(server.db, { security: { commandKey: server.commandKey, dispatch: server.dispatch } });
  users.ops = await h.userWith(["backups.view", "backups.manage", "backups.run", "backups.restore"], "backup-ops");
  users.viewer = await h.userWith(["backups.view"], "backup-viewer");
  users.runner = await h.userWith(["backups.view", "backups.run"], "backup-runner");
  users.scoped = await h.userWith(["backups.view", "backups.manage", "backups.run", "backups.restore"], "backup-scoped", ["group:db"]);
});

afterAll(async () => {
  await h?.close();
  await agent?.stop();
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function call(method: "GET" | "POST", path: string, body?: Record<string, unknown>, user = "ops") {
  const res = await h.send(path, { method, session: users[user], json: method === "POST" ? (body ?? {}) : undefined });
  const text = await res.text();
  return { status: res.status, text, body: (text.startsWith("{") ? JSON.parse(text) : { text }) as any };
}

/** Polls a run until it is finished (bounded); returns every answer seen. */
async function finish(run: number, user = "ops") {
  const seen: any[] = [];
  const end = Date.now() + 180_000;
  for (;;) {
    const r = await call("GET", `/api/backups/runs/${run}`, undefined, user);
    expect(r.status).toBe(200);
    seen.push(r.body);
    if (r.body.finished) return { final: r.body, seen };
    if (Date.now() > end) throw new Error(`run ${run} did not finish: ${JSON.stringify(r.body)}`);
    await Bun.sleep(300);
  }
}

/** Every file under a directory with its bytes' hash, by path relative to it. */
function tree(dir: string, base = dir, out: Record<string, string> = {}): Record<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) tree(p, base, out);
    else out[p.slice(base.length)] = sha(readFileSync(p));
  }
  return out;
}

describe("backup jobs on a managed host, with the compiled agent", () => {
  test("destination test from the host, two runs with dedup, history, restore elsewhere and over the original, no secret anywhere", async () => {
    await until("command channel up", async () => ((await issueCommand({ sql: server.db.sql, commandKey: server.commandKey, dispatch: server.dispatch, audit: () => {} }, { type: "user", id: 1, name: "t" }, agentId, "ping", {})).result as { ok?: boolean })?.ok, 90_000, 500);

    const src = join(work, "src");
    const repoDir = join(work, "repo");
    mkdirSync(join(src, "conf"), { recursive: true });
    writeFileSync(join(src, "conf/app.ini"), "[main]\nport = 80\n");
    const big = randomBytes(3_000_000);
    writeFileSync(join(src, "data.bin"), big);
    writeFileSync(join(src, "skip.tmp"), "excluded");

    // destinations: a local directory on the host, and one with a secret (never shown back)
    const local = await call("POST", "/api/backups/destinations", { name: "host-disk", type: "local", settings: JSON.stringify({ path: repoDir }) });
    expect(local.status).toBe(200);
    const dav = await call("POST", "/api/backups/destinations", { name: "dav", type: "webdav", settings: JSON.stringify({ url: "https://dav.invalid/b/", username: "u" }), password: DAV_PASSWORD });
    expect(dav.status).toBe(200);
    expect((await call("POST", "/api/backups/destinations", { name: "bad", type: "local", settings: JSON.stringify({ path: "relative" }) })).status).toBe(400);
    expect((await call("POST", "/api/backups/destinations", { name: "bad2", type: "webdav", settings: JSON.stringify({ url: "https://x/", password: "inline" }) })).status).toBe(400);
    expect((await call("POST", "/api/backups/destinations", { name: "v", type: "local", settings: "{\"path\":\"/x\"}" }, "viewer")).status).toBe(403);
    const dests = await call("GET", "/api/backups/destinations");
    expect(dests.body.destinations.find((d: any) => d.name === "dav").secrets).toEqual({ password: "set" });
    // changing the destination without a new password keeps the stored one
    expect((await call("POST", "/api/backups/destinations", { id: dav.body.id, name: "dav", type: "webdav", settings: JSON.stringify({ url: "https://dav.invalid/c/", username: "u" }) })).status).toBe(200);
    expect((await call("GET", "/api/backups/destinations")).body.destinations.find((d: any) => d.name === "dav").secrets).toEqual({ password: "set" });

    // the destination is reached from the host (Control writes, reads back and deletes one object)
    const t = await call("POST", `/api/hosts/${agentId}/backups/test`, { destination: local.body.id });
    expect(t.body).toMatchObject({ ok: true, repository: false });
    const tDav = await call("POST", `/api/hosts/${agentId}/backups/test`, { destination: dav.body.id });
    expect(tDav.body.ok).toBe(false);
    expect(tDav.text).not.toContain(DAV_PASSWORD);
    // a host outside the user's scope is not there
    expect((await call("POST", `/api/hosts/${agentId}/backups/test`, { destination: local.body.id }, "scoped")).status).toBe(404);

    const job = await call("POST", "/api/backups/jobs", { name: "app-files", host: agentId, paths: src, excludes: "*.tmp", destination: local.body.id, keep_last: 5, keep_daily: 0, keep_weekly: 0, keep_monthly: 0 });
    expect(job.status).toBe(200);
    const jobId = job.body.id;
    expect((await call("POST", "/api/backups/jobs", { name: "bad", host: agentId, paths: "relative/path", destination: local.body.id })).status).toBe(400);

    // first run: creates the repository; the recovery key comes once, to the user who started it
    expect((await call("POST", `/api/hosts/${agentId}/backups/run`, { job: jobId }, "viewer")).status).toBe(403);
    expect((await call("POST", `/api/hosts/${agentId}/backups/run`, { job: jobId }, "scoped")).status).toBe(404);
    const r1 = await call("POST", `/api/hosts/${agentId}/backups/run`, { job: jobId });
    expect(r1.status).toBe(202);
    const run1 = await finish(r1.body.run);
    expect(run1.final).toMatchObject({ status: "ok", kind: "backup", files: 2, bytesRead: big.length + 17 });
    expect(run1.final.newBytes).toBe(big.length + 17);
    expect(run1.final.snapshot).toMatch(/^[0-9a-f]{32}$/);
    expect(run1.final.repoBytes).toBeGreaterThan(big.length * 0.9);
    const keys = run1.seen.filter((s) => s.recoveryKey).map((s) => s.recoveryKey as string);
    expect(keys.length).toBe(1);
    const recoveryKey = keys[0]!;
    expect((await call("GET", `/api/backups/runs/${r1.body.run}`)).body.recoveryKey).toBeUndefined();
    const badAfter = await call("GET", `/api/backups/runs/${r1.body.run}?after=x`);
    expect([badAfter.status, badAfter.body.error.message]).toEqual([400, "after must be a whole number, -1 or more (the last of the previous answer)"]);
    expect((await server.db.sql`select recovery_key_sealed from backup_runs where id = ${r1.body.run}`)[0]!.recovery_key_sealed).toBeNull();
    // progress lines came back while it ran
    expect(run1.final.lines.map((l: any) => l.text).join("\n")).toMatch(/creating one[\s\S]*snapshot [0-9a-f]{32}/);
    expect(existsSync(join(repoDir, `job-${jobId}/host-${agentId}/config`))).toBe(true);

    // second run after one changed file: only the change is new data
    writeFileSync(join(src, "conf/app.ini"), "[main]\nport = 443\n");
    const r2 = await call("POST", `/api/hosts/${agentId}/backups/run`, { job: jobId }, "runner");
    const run2 = (await finish(r2.body.run, "runner")).final;
    expect(run2).toMatchObject({ status: "ok", files: 2, bytesRead: big.length + 18 });
    expect(run2.newBytes).toBe(18);
    expect(run2.dedupRatio).toBeGreaterThan(1000);
    expect(run2.recoveryKey).toBeUndefined();

    // history, with the statistics (JSON and the page)
    const hist = await call("GET", `/api/backups/runs?job=${jobId}`);
    expect(hist.body.runs.map((r: any) => [r.id, r.status])).toEqual([[r2.body.run, "ok"], [r1.body.run, "ok"]]);
    const page = await (await h.send(`/backups/jobs/${jobId}`, { session: users.viewer })).text();
    expect(page).toContain(`data-run="${r2.body.run}"`);
    expect(page).toMatch(/18 B/);
    expect(page).toMatch(/\d+\.\d×/);

    // restore the first snapshot to another path, byte for byte
    const elsewhere = join(work, "restored");
    const rr = await call("POST", `/api/hosts/${agentId}/backups/restore`, { job: jobId, snapshot: run1.final.snapshot, target: elsewhere });
    expect(rr.status).toBe(202);
    const restored = (await finish(rr.body.run)).final;
    expect(restored).toMatchObject({ status: "ok", kind: "restore", files: 2 });
    expect(readFileSync(join(elsewhere, src, "data.bin")).equals(big)).toBe(true);
    expect(readFileSync(join(elsewhere, src, "conf/app.ini"), "utf8")).toBe("[main]\nport = 80\n");
    expect(existsSync(join(elsewhere, src, "skip.tmp"))).toBe(false);

    // over the original location: dangerous (phrase + re-authentication), then the latest snapshot comes back
    writeFileSync(join(src, "conf/app.ini"), "broken");
    const bare = await call("POST", `/api/hosts/${agentId}/backups/restore`, { job: jobId, snapshot: "latest" });
    expect(bare.status).toBe(403);
    expect(bare.body.error.code).toBe("confirmation_required");
    expect(readFileSync(join(src, "conf/app.ini"), "utf8")).toBe("broken");
    await h.reauth(users.ops!);
    const wrong = await call("POST", `/api/hosts/${agentId}/backups/restore`, { job: jobId, snapshot: "latest", confirm: "restore something" });
    expect(wrong.status).toBe(403);
    const over = await call("POST", `/api/hosts/${agentId}/backups/restore`, { job: jobId, snapshot: "latest", confirm: `restore app-files over ${hostname}` });
    expect(over.status).toBe(202);
    expect((await finish(over.body.run)).final.status).toBe("ok");
    expect(readFileSync(join(src, "conf/app.ini"), "utf8")).toBe("[main]\nport = 443\n");
    expect(tree(join(elsewhere, src))["/data.bin"]).toBe(tree(src)["/data.bin"]);

    // the scheduler (one per cluster; here called directly): a due job of a tag starts on its hosts, once per due time
    const sched = await call("POST", "/api/backups/jobs", { name: "web-etc", tag: "group:web", paths: join(src, "conf"), destination: local.body.id, schedule: "interval", every_minutes: 60 });
    expect(sched.status).toBe(200);
    expect((await call("POST", "/api/backups/jobs", { name: "x", tag: "group:web", paths: src, destination: local.body.id, schedule: "interval", every_minutes: 1 })).status).toBe(400);
    const [{ next_run_at: planned }] = await server.db.sql`select next_run_at from backup_jobs where id = ${sched.body.id}`;
    expect(planned.getTime()).toBeGreaterThan(Date.now() + 59 * 60_000);
    const deps = {
      sql: server.db.sql, box: h.services.secrets, commandKey: server.commandKey, dispatch: server.dispatch,
      audit: (e: any) => writeAudit(server.db.sql, { actor: { type: "system", id: "backup-scheduler", name: "backup scheduler" }, category: "backup", ...e }).then(() => {}),
    };
    expect(await runDueJobs(deps)).toEqual([]); // not due yet
    await server.db.sql`update backup_jobs set next_run_at = now() - interval '1 minute' where id = ${sched.body.id}`;
    const startedRuns = await runDueJobs(deps);
    expect(startedRuns.length).toBe(1);
    expect(await runDueJobs(deps)).toEqual([]); // claimed: the same due time does not start it twice
    const scheduled = await finish(startedRuns[0]!);
    expect(scheduled.final).toMatchObject({ status: "ok", trigger: "schedule", files: 1 });
    // a scheduled first run's recovery key goes once to a user who manages backups
    expect(scheduled.seen.filter((x) => x.recoveryKey).length).toBe(1);
    const schedKey = scheduled.seen.find((x) => x.recoveryKey).recoveryKey as string;
    expect((await server.db.sql`select count(*)::int as n from audit_log where category = 'backup' and action = 'backup.run' and actor_type = 'system'`)[0]!.n).toBe(1);

    // no secret anywhere: pages, API answers, command rows, audit rows
    const [jobRow] = await server.db.sql`select password_sealed from backup_jobs where id = ${jobId}`;
    const repoPassword = h.services.secrets.open(jobRow!.password_sealed);
    const secrets = [DAV_PASSWORD, repoPassword, recoveryKey, schedKey];
    const page200 = async (path: string, headers: Record<string, string> = {}) => {
      const res = await h.send(path, { session: users.ops, headers });
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      return res.text();
    };
    const restorePage = await page200(`/hosts/${agentId}/backups/restore?job=${jobId}`);
    expect(restorePage).toContain(`restore app-files over ${hostname}`);
    expect(restorePage).toContain(run1.final.snapshot);
    const livePartial = await page200(`/api/backups/runs/${r2.body.run}`, { "hx-request": "true" });
    expect(livePartial).toContain(`data-status="ok"`);
    expect(livePartial).toContain("18 B");
    const texts = [
      await page200("/backups"),
      await page200(`/backups/jobs/${jobId}`),
      await page200(`/backups/runs/${r1.body.run}`),
      restorePage, livePartial,
      (await call("GET", "/api/backups/destinations")).text, (await call("GET", "/api/backups/jobs")).text, (await call("GET", "/api/backups/runs")).text,
      JSON.stringify(await server.db.sql`select args, result from security_commands where action like 'backup.%'`),
      JSON.stringify(await server.db.sql`select details from audit_log where category = 'backup'`),
      JSON.stringify(await server.db.sql`select * from backup_destinations`),
    ];
    for (const s of secrets) for (const t of texts) expect(t.includes(s)).toBe(false);
    expect(texts[0]).toContain("password: set");
    const audit = await server.db.sql`select action, success from audit_log where category = 'backup' order by id`;
    const actions = audit.map((a) => a.action);
    for (const a of ["backup.destination.create", "backup.destination.update", "backup.destination.test", "backup.job.create", "backup.run", "backup.recovery-key.shown", "backup.restore"]) expect(actions).toContain(a);
  });

  test("a PostgreSQL dump job: pg_dump's output streamed into the snapshot, restored and readable by pg_restore", async () => {
    const bin = pgBinDir();
    if (!requireComponent(bin !== null, "pg_dump with a PostgreSQL server of its major version (Debian postgresql-15)")) return;
    const pg = await startPgCluster(bin!);
    try {
      await pg.psql("postgres", "create database appdb");
      await pg.psql("appdb", "create table items (id int primary key, name text); insert into items select g, 'item-' || g from generate_series(1, 5000) g");
      const dumpPassword = `pg-${randomBytes(8).toString("hex")}`;
      const repoDir = join(work, "repo-db");
      const dest = await call("POST", "/api/backups/destinations", { name: "db-disk", type: "local", settings: JSON.stringify({ path: repoDir }) });
      const job = await call("POST", "/api/backups/jobs", { name: "appdb", host: agentId, paths: "", destination: dest.body.id, dump_kind: "postgres", dump_host: "127.0.0.1", dump_port: pg.port, dump_user: "postgres", dump_database: "appdb", dump_password: dumpPassword });
      expect(job.status).toBe(200);
      expect((await call("GET", "/api/backups/jobs")).body.jobs.find((j: any) => j.id === job.body.id).dump).toMatchObject({ kind: "postgres", database: "appdb", password: "set" });
      const r = await call("POST", `/api/hosts/${agentId}/backups/run`, { job: job.body.id });
      const run = (await finish(r.body.run)).final;
      expect(run).toMatchObject({ status: "ok", files: 1 });
      expect(run.bytesRead).toBeGreaterThan(10_000);
      expect(run.lines.map((l: any) => l.text).join("\n")).toMatch(/dumping postgres database appdb with pg_dump[\s\S]*dump of appdb: /);
      const dumpDir = join(agentState, "control", "backup-dumps", `job-${job.body.id}`);
      expect(existsSync(join(dumpDir, "appdb.pgdump"))).toBe(false); // removed after the run

      const out = join(work, "db-restored");
      const rr = await call("POST", `/api/hosts/${agentId}/backups/restore`, { job: job.body.id, snapshot: run.snapshot, target: out });
      expect((await finish(rr.body.run)).final.status).toBe("ok");
      const file = join(out, dumpDir, "appdb.pgdump");
      const listed = Bun.spawnSync([join(bin!, "pg_restore"), "-f", "-", "--data-only", "-t", "items", file], { stdout: "pipe", stderr: "pipe" });
      expect(listed.exitCode).toBe(0);
      const sqlText = listed.stdout.toString();
      expect(sqlText).toContain("COPY public.items");
      expect(sqlText).toContain("4999\titem-4999");
      // the dump password never shows up in an answer, a command row or an audit row
      const texts = [(await call("GET", "/api/backups/jobs")).text, await (await h.send(`/backups/jobs/${job.body.id}`, { session: users.ops })).text(),
        JSON.stringify(await server.db.sql`select args, result from security_commands where action like 'backup.%'`), JSON.stringify(await server.db.sql`select details from audit_log`)];
      for (const t of texts) expect(t.includes(dumpPassword)).toBe(false);
    } finally {
      await pg.stop();
    }
  });
});
