/**
 * The README's `npm start` path: the server process with an embedded PostgreSQL under a data
 * directory, a generated certificate whose fingerprint it prints, a clean stop on SIGTERM.
 */
import { expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, chmodSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/store/postgres/embedded.ts";
import { certFingerprint } from "../src/tls/self-signed.ts";

/** The server as a process, as `npm start` runs it, with its output collected. */
async function spawnServer(extra: Record<string, string>, opts: { embedded?: boolean; waitMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "servermind-main-"));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const env: Record<string, string | undefined> = { ...process.env, SERVERMIND_DATA: dir, SERVERMIND_PORT: String(port), SERVERMIND_HOST: "127.0.0.1", ...extra };
  if (opts.embedded) delete env.DATABASE_URL;
  const child = spawn(process.execPath, ["src/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const deadline = Date.now() + (opts.waitMs ?? 30_000);
  while (!out.includes("fingerprint") && Date.now() < deadline && child.exitCode === null) await Bun.sleep(100);
  return {
    dir, port, env, child,
    output: () => out,
    async stop(): Promise<number | null> {
      const exited = new Promise<number | null>((res) => (child.exitCode !== null ? res(child.exitCode) : child.once("exit", res)));
      child.kill("SIGTERM");
      return await exited;
    },
    cleanup() {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test("server starts on an embedded PostgreSQL, prints its fingerprint and stops cleanly", async () => {
  const srv = await spawnServer({}, { embedded: true, waitMs: 60_000 });
  const { dir, port } = srv;
  const out = srv.output();
  try {
    expect(out).toContain(`listening on https://127.0.0.1:${port}`);
    const fp = /fingerprint \(pin it in agents\): ([0-9a-f]{64})/.exec(out)![1];
    expect(fp).toBe(certFingerprint(readFileSync(join(dir, "tls", "server.crt"), "utf8")));
    expect(existsSync(join(dir, "pg", "PG_VERSION"))).toBe(true);
    const r = await fetch(`https://127.0.0.1:${port}/healthz`, { tls: { rejectUnauthorized: false } });
    expect(await r.json()).toEqual({ status: "ok" });
    expect(await srv.stop()).toBe(0);
    expect(existsSync(join(dir, "pg", "postmaster.pid"))).toBe(false); // PostgreSQL stopped too
  } finally {
    srv.cleanup();
  }
}, 90_000);

test("with DATABASE_URL the server uses that PostgreSQL and starts no embedded one; the CLI mints tokens there", async () => {
  const { testDatabase } = await import("./support/db.ts");
  const db = await testDatabase(2);
  const srv = await spawnServer({ DATABASE_URL: db.url });
  const { dir, env } = srv;
  try {
    expect(srv.output()).not.toContain("embedded PostgreSQL");
    expect(existsSync(join(dir, "pg"))).toBe(false);
    const cli = Bun.spawn([process.execPath, "src/cli.ts", "token", "create", "--label", "ci"], { env, stdout: "pipe", stderr: "pipe" });
    const token = (await new Response(cli.stdout).text()).trim();
    expect(await cli.exited).toBe(0);
    expect(token).toMatch(/^smt_[A-Za-z0-9_-]{43}$/);
    const [row] = await db.sql`select id, label, used_at from activation_tokens`;
    expect(row).toMatchObject({ label: "ci", used_at: null });
    // the CLI's token creation is audited like the console's
    const [rec] = await db.sql`select actor_type, actor_name, user_agent, category, target, success from audit_log where action = 'agents.token.create'`;
    expect(rec).toMatchObject({ actor_type: "system", user_agent: "servermind-cli", category: "config_change", target: `token ${row!.id}`, success: true });
    // named after the account that ran it, also when $USER is unset (Bun then says "unknown")
    const account = Bun.spawnSync(["id", "-un"]).stdout.toString().trim();
    expect(rec!.actor_name).toMatch(new RegExp(`^cli:${account}( \\(sudo from \\S+\\))?$`));
    // the server's own connections use the generated least-privilege role, not the owner
    const users = (await db.sql`select distinct usename from pg_stat_activity where datname = current_database() and application_name = 'servermind'`).map((r) => r.usename);
    expect(users).toContain(`${new URL(db.url).pathname.slice(1)}_app`);
    const bad = Bun.spawn([process.execPath, "src/cli.ts", "token", "mint"], { env, stdout: "pipe", stderr: "pipe" });
    expect(await bad.exited).toBe(2);
    expect(await new Response(bad.stderr).text()).toContain("usage:");
  } finally {
    await srv.stop();
    srv.cleanup();
    await db.drop();
  }
}, 60_000);

test("with CLICKHOUSE_URL the server ships committed metrics and logs (hourly logs leaves on) to ClickHouse and reports it at /metrics", async () => {
  const { requireComponent } = await import("./support/ci.ts");
  const { hasClickhouse, startTestClickhouse } = await import("./support/clickhouse.ts");
  if (!requireComponent(hasClickhouse, "clickhouse-server (Debian package clickhouse-server)")) return;
  const { testDatabase } = await import("./support/db.ts");
  const { enroll, logsFrame, metricsFrame, post } = await import("./support/sim-agent.ts");
  const { createActivationToken } = await import("../src/ingest/agent/enroll.ts");
  const ch = await startTestClickhouse();
  const db = await testDatabase(2);
  const srv = await spawnServer({ DATABASE_URL: db.url, CLICKHOUSE_URL: ch.url, SERVERMIND_METRICS_TOKEN: "main-test-token" });
  try {
    expect(srv.output()).toContain("ClickHouse tier on");
    const url = `https://127.0.0.1:${srv.port}`;
    const a = await enroll(url, (await createActivationToken(db.sql, { createdBy: "test" })).token, "ch-1");
    expect((await post(url, [metricsFrame(a, 20, 10, Date.now()), logsFrame(a, 7, Date.now())])).status).toBe(200);
    // today's logs partition is split into hourly leaves with the tier on too (the shipper's read is time-bounded)
    const today = `logs_p${new Date().toISOString().slice(0, 10).replace(/-/g, "")}`;
    const [leaves] = await db.sql<{ n: number }[]>`select count(*)::int as n from pg_inherits i join pg_class p on p.oid = i.inhparent where p.relname = ${today}`;
    expect(leaves!.n).toBe(24);
    let shipped = "";
    for (let i = 0; i < 100 && !/^clickhouse_shipped_rows_total\{table="logs"\} 7$/m.test(shipped); i++) {
      await Bun.sleep(200);
      shipped = await (await fetch(`${url}/metrics`, { headers: { authorization: "Bearer main-test-token" }, tls: { rejectUnauthorized: false } })).text();
    }
    expect(shipped).toMatch(/^clickhouse_shipped_batches_total [1-9]/m);
    expect(shipped).toMatch(/^clickhouse_shipped_rows_total\{table="logs"\} 7$/m);
    expect(shipped).toMatch(/^cluster_/m);
  } finally {
    await srv.stop();
    srv.cleanup();
    await db.drop();
    await ch.close();
  }
}, 90_000);
