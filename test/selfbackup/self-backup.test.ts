/**
 * Disaster recovery of ServerMind itself (issue 15), end to end with real parts: the server as
 * `npm start` runs it, on an embedded PostgreSQL in a temporary data directory; users, a custom
 * role, a signed-in session, audit records and an enrolled (simulated) agent that sends metrics;
 * `npm run backup -- init/run` to a local directory while the server runs; the server stopped
 * and its data directory deleted; `backup restore` into a fresh directory; then the audit chain
 * verifies, the server starts with the same TLS fingerprint, the admin signs in (the old session
 * does not work), the role is there and the agent's existing identity is accepted with new data.
 * Last, one flipped byte in a chunk makes verify and restore fail loudly.
 */
import { afterAll, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startEmbeddedPg } from "../../src/store/postgres/embedded.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";
import { createUser } from "../../src/auth/users.ts";
import { createRole, roleIdByName } from "../../src/auth/roles.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { enroll, metricsFrame, openSession, post } from "../support/sim-agent.ts";
import { stopChild } from "../support/process.ts";

const PASSWORD = "Correct-Horse-9-Battery";
const REPO_PASSWORD = "repo pass phrase for the test";
const scratch = mkdtempSync(join(tmpdir(), "servermind-selfbackup-"));
chmodSync(scratch, 0o755);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The server process on `dataDir` with its embedded PostgreSQL; resolves once it listens. */
async function startServer(dataDir: string) {
  const port = await freePort();
  const env: Record<string, string | undefined> = {
    ...process.env, SERVERMIND_DATA: dataDir, SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1",
    SERVERMIND_HTTP3: "false", SERVERMIND_AGENT_BUILD: "false",
  };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, ["src/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const deadline = Date.now() + 90_000;
  while (!out.includes("listening on") && Date.now() < deadline && child.exitCode === null) await Bun.sleep(100);
  if (!out.includes("listening on")) {
    await stopChild(child, 8000);
    throw new Error(`server did not start: ${out}`);
  }
  const fingerprint = /fingerprint \(pin it in agents\): ([0-9a-f]{64})/.exec(out)?.[1];
  return { url: `https://127.0.0.1:${port}`, fingerprint, output: () => out, stop: () => stopChild(child, 15_000) };
}

/** `npm run backup -- ...` as a process. */
async function backupCli(args: string[], env: Record<string, string> = {}) {
  const full: Record<string, string | undefined> = { ...process.env, SERVERMIND_SELF_BACKUP_PASSWORD_FILE: join(scratch, "repo-password"), ...env };
  delete full.DATABASE_URL;
  const p = Bun.spawn([process.execPath, "src/selfbackup/cli.ts", ...args], { env: full, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

/** Signs in through the real /login form; returns the session cookie, or undefined when refused. */
async function signIn(url: string, username: string, password: string): Promise<string | undefined> {
  const page = await fetch(`${url}/login`, { tls: { rejectUnauthorized: false } });
  const html = await page.text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  const preCookie = page.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const r = await fetch(`${url}/login`, {
    method: "POST", redirect: "manual", tls: { rejectUnauthorized: false },
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: preCookie },
    body: new URLSearchParams({ _csrf: csrf ?? "", username, password }).toString(),
  });
  return r.headers.getSetCookie().find((c) => c.startsWith("__Host-sm_session="))?.split(";")[0];
}

/**
 * Whether a session cookie is a live session: "/" sends a signed-in browser to its next step
 * (the hosts page, or enrolling a second factor, which an admin must have) and anyone else to /login.
 */
async function signedIn(url: string, cookie: string): Promise<boolean> {
  const r = await fetch(`${url}/`, { redirect: "manual", tls: { rejectUnauthorized: false }, headers: { cookie } });
  const to = r.headers.get("location") ?? "";
  if (r.status < 300 || r.status >= 400) throw new Error(`/ answered ${r.status}`);
  return !to.startsWith("/login");
}

async function withOwnerDb<T>(dataDir: string, fn: (sql: ReturnType<typeof createPgClient>) => Promise<T>): Promise<T> {
  const pg = await startEmbeddedPg({ dataDir: join(dataDir, "pg"), shareRunning: true });
  const sql = createPgClient(pg.url, 2);
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
    await pg.stop();
  }
}

test("ServerMind backs itself up and a fresh data directory restored from it serves the same users, roles, audit chain and agents", async () => {
  const dataDir = join(scratch, "data");
  const repoDir = join(scratch, "repo");
  writeFileSync(join(scratch, "repo-password"), `${REPO_PASSWORD}\n`, { mode: 0o600 });
  // made 0755 before the server makes it: it would create it 0700 (with secrets/), and as root the
  // embedded cluster would then go to /var/lib/servermind and stay there after scratch is removed
  mkdirSync(dataDir, { mode: 0o755 });

  // 1. a running server with users, a custom role, a session, audit records and an agent with data
  const srv = await startServer(dataDir);
  let agent: Awaited<ReturnType<typeof enroll>>;
  let oldCookie: string;
  let agentId: number;
  try {
    expect(srv.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const token = await withOwnerDb(dataDir, async (sql) => {
      const roleId = await createRole(sql, "dr-auditors", "restored from a backup", ["audit.view", "audit.verify"], []);
      await createUser(sql, { username: "admin", password: PASSWORD, roleIds: [(await roleIdByName(sql, "admin"))!] }, DEFAULT_SETTINGS.password);
      await createUser(sql, { username: "carol", password: PASSWORD, roleIds: [roleId] }, DEFAULT_SETTINGS.password);
      return (await createActivationToken(sql, { label: "dr", createdBy: "test", ttlHours: 1 })).token;
    });
    oldCookie = (await signIn(srv.url, "admin", PASSWORD))!; // audited: login.success
    expect(oldCookie).toBeDefined();
    expect(await signedIn(srv.url, oldCookie)).toBe(true);
    agent = await enroll(srv.url, token, "dr-web-1");
    agentId = agent.id;
    await openSession(srv.url, agent);
    const sent = await post(srv.url, metricsFrame(agent, 5, 6, Date.now()));
    expect(sent.status).toBe(200);
    expect(sent.body.acks?.[0]?.status).toBe("ok");

    // 2. init (recovery key printed once) and a backup while the server runs
    const init = await backupCli(["--dest", repoDir, "init"]);
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/^[0-9a-f]{8}(-[0-9a-f]{8}){7}$/m);
    expect(init.stdout + init.stderr).not.toContain(REPO_PASSWORD);
    const run = await backupCli(["--dest", repoDir, "run"], { SERVERMIND_DATA: dataDir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const r = JSON.parse(run.stdout) as { snapshot: string; tables: number; rows: number; ms: number };
    expect(r.tables).toBeGreaterThan(10);
    expect(r.rows).toBeGreaterThan(0);
    console.log(`self-backup of the test server: ${r.tables} tables, ${r.rows} rows in ${r.ms} ms`);
    // nothing in the repository holds a secret in clear: the password-wrapped key file is all there is of it
    for (const f of readdirSync(join(repoDir, "keys"))) expect(readFileSync(join(repoDir, "keys", f), "utf8")).not.toContain(REPO_PASSWORD);
    const list = await backupCli(["--dest", repoDir, "list"]);
    expect(list.stdout.trim().split("\n").map((l) => JSON.parse(l).id)).toEqual([r.snapshot]);
    expect((await backupCli(["--dest", repoDir, "verify"])).code).toBe(0);
    // the run is in the audit trail of the live server
    const runs = await withOwnerDb(dataDir, (sql) => sql`select target, success from audit_log where action = 'selfbackup.run'`);
    expect([...runs]).toEqual([{ target: `snapshot ${r.snapshot}`, success: true }]);
  } finally {
    await srv.stop();
  }
  const fingerprint = srv.fingerprint;

  // 3. the disaster
  rmSync(dataDir, { recursive: true, force: true });

  // 4. restore into a fresh directory
  const newDir = join(scratch, "restored");
  // an existing empty directory keeps its mode: 0755 lets the embedded cluster stay in it when tests run as root
  mkdirSync(newDir, { mode: 0o755 });
  const started = performance.now();
  const restored = await backupCli(["--dest", repoDir, "restore", "latest", "--data-dir", newDir]);
  if (restored.code !== 0) throw new Error(`restore failed: ${restored.stderr}`);
  console.log(`restore into a fresh data directory took ${Math.round(performance.now() - started)} ms (${restored.stdout.trim()})`);
  for (const f of ["tls/server.key", "command.key", "secret.key", "secrets/audit-hmac.key", "secrets/audit-checkpoint.key", "secrets/db-runtime.password"]) {
    expect(existsSync(join(newDir, f))).toBe(true);
    expect(statSync(join(newDir, f)).mode & 0o777).toBe(0o600);
  }

  // 5. the audit chain verifies on the restored database (before the server is started)
  const verify = Bun.spawnSync([process.execPath, "src/audit/cli.ts", "verify"], { env: { ...process.env, DATABASE_URL: "", SERVERMIND_DATA: newDir } });
  expect(verify.stderr.toString()).toBe("");
  expect(verify.stdout.toString()).toContain("audit chain intact");
  expect(verify.exitCode).toBe(0);

  // 6. the restored server: same certificate, same users and role, sessions ended, agent accepted
  const again = await startServer(newDir);
  try {
    expect(again.fingerprint).toBe(fingerprint!);
    expect(await signedIn(again.url, oldCookie!)).toBe(false);
    const cookie = await signIn(again.url, "admin", PASSWORD);
    expect(cookie).toBeDefined();
    expect(await signedIn(again.url, cookie!)).toBe(true);
    expect(await signIn(again.url, "admin", "not-the-password")).toBeUndefined();
    delete agent!.session;
    await openSession(again.url, agent!); // its existing Ed25519 identity, enrolled before the disaster
    const sent = await post(again.url, metricsFrame(agent!, 5, 6, Date.now() + 60_000));
    expect(sent.status).toBe(200);
    expect(sent.body.acks?.[0]?.status).toBe("ok");
    await withOwnerDb(newDir, async (sql) => {
      expect((await sql`select name from console_roles where name = 'dr-auditors'`).length).toBe(1);
      expect((await sql`select u.username from console_users u join user_roles ur on ur.user_id = u.id join console_roles r on r.id = ur.role_id where r.name = 'dr-auditors'`).map((x) => x.username)).toEqual(["carol"]);
      expect((await sql`select hostname from agents where id = ${agentId}`)[0]?.hostname).toBe("dr-web-1");
      expect((await sql`select count(*)::int as n from metric_blocks where agent_id = ${agentId}`)[0]!.n).toBeGreaterThanOrEqual(2);
      expect((await sql`select count(*)::int as n from audit_log where action = 'selfbackup.restore'`)[0]!.n).toBe(1);
    });
  } finally {
    await again.stop();
  }

  // 7. a tampered chunk: verify reports it, restore fails loudly and loads nothing
  const dataRoot = join(repoDir, "data");
  const sub = readdirSync(dataRoot)[0]!;
  const chunk = join(dataRoot, sub, readdirSync(join(dataRoot, sub))[0]!);
  const bytes = readFileSync(chunk);
  bytes[bytes.length - 20] ^= 0x01;
  writeFileSync(chunk, bytes);
  const bad = await backupCli(["--dest", repoDir, "verify"]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("corrupt");
  const badRestore = await backupCli(["--dest", repoDir, "restore", "latest", "--data-dir", join(scratch, "tampered")]);
  expect(badRestore.code).toBe(1);
  expect(badRestore.stderr).toMatch(/backup failed \(corrupt\): .*chunk [0-9a-f]{64} is corrupted/);
  expect(existsSync(join(scratch, "tampered", "pg"))).toBe(false);
}, 300_000);
