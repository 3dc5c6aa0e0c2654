/**
 * PostgreSQL's disk full: its own embedded cluster on a small tmpfs that this test fills with a
 * file and empties again (mounting needs root: under CI=true a failure, elsewhere a loud skip).
 * While full, ingest answers 503 store_unavailable + Retry-After and acknowledges nothing,
 * /healthz says so (`store: "disk_full"`; it said ok, as `select 1` still answers), and once
 * space returns everything recovers by itself: the refused frames resent are stored once.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
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
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { enroll, logsFrame, metricsFrame, post, type SimAgent } from "../support/sim-agent.ts";
import { requireComponent } from "../support/ci.ts";

const canMount = process.getuid?.() === 0;
const run = requireComponent(canMount, "root (to mount a tmpfs for PostgreSQL's data)");

let dir: string;
let mounted = false;
let pg: EmbeddedPg;
let sql: Sql;
let server: RunningServer;
let a: SimAgent;
const tls = { rejectUnauthorized: false };

beforeAll(async () => {
  if (!run) return;
  dir = mkdtempSync(join(tmpdir(), "servermind-diskfull-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=160m,mode=0755", "servermind-diskfull", dir]);
  mounted = true;
  pg = await startEmbeddedPg({ dataDir: join(dir, "pg"), settings: { fsync: "off", shared_buffers: "16MB", max_connections: 30 } });
  sql = createPgClient(pg.url, 6);
  await migrate(sql);
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(sql, t);
  mkdirSync(join(dir, "data"), { mode: 0o755 });
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false", SERVERMIND_DATA: join(dir, "data"), SERVERMIND_DB_TIMEOUT_MS: "3000", SERVERMIND_HEALTH_TIMEOUT_MS: "1000" });
  server = startServer({ config, sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" } });
  a = await enroll(server.url, (await createActivationToken(sql, { createdBy: "test" })).token, "diskfull-a");
}, 60_000);

afterAll(async () => {
  if (!run) return;
  await server?.stop();
  await sql?.end({ timeout: 2 });
  await pg?.stop();
  if (mounted) execFileSync("umount", ["-l", dir]);
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

/** Fills the file system of `dir` to its last byte with one file; removing it gives the space back. */
function fill(path: string): void {
  const fd = openSync(path, "w");
  try {
    for (const size of [1 << 20, 4096, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        if ((e as { code?: string }).code !== "ENOSPC") throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
}

async function health(): Promise<{ status: number; body: unknown }> {
  const r = await fetch(`${server.url}/healthz`, { tls } as RequestInit);
  return { status: r.status, body: await r.json() };
}

test.skipIf(!run)("disk full: 503 store_unavailable and no ack, /healthz degraded disk_full; space back: the refused frames resent are stored once, /healthz ok", async () => {
  const before = await post(server.url, metricsFrame(a, 10, 10, Date.now() - 60_000));
  expect(before.status).toBe(200);
  expect(await health()).toEqual({ status: 200, body: { status: "ok" } });

  const filler = join(dir, "filler");
  fill(filler);
  const refused: Array<{ batch: number; kind: "metrics" | "logs" }> = [];
  try {
    for (let i = 0; i < 3; i++) {
      // large enough that PostgreSQL must extend its files
      const frames = [metricsFrame(a, 200, 30, Date.now() - i * 1000), logsFrame(a, 500, Date.now() - i * 1000)];
      refused.push({ batch: a.batch - 1, kind: "metrics" }, { batch: a.batch, kind: "logs" });
      const r = await post(server.url, frames);
      expect(r.status).toBe(503);
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
      expect(r.body.acks).toEqual([]);
      expect(r.body.rejects!.map((x) => x.code)).toEqual(["store_unavailable", "store_unavailable"]);
    }
    const h = await health();
    expect(h).toEqual({ status: 503, body: { status: "degraded", store: "disk_full" } });
  } finally {
    rmSync(filler, { force: true });
  }

  // the agent resends what was refused (same batch ids, new sequence numbers)
  const last = a.batch;
  for (const { batch, kind } of refused) {
    a.batch = batch - 1;
    const frame = kind === "metrics" ? metricsFrame(a, 200, 30, Date.now() - batch * 1000) : logsFrame(a, 500, Date.now() - batch * 1000);
    const r = await post(server.url, frame);
    expect(r.status).toBe(200);
    expect(r.body.acks!.map((x) => x.status)).toEqual(["ok"]);
  }
  a.batch = last;
  expect(await health()).toEqual({ status: 200, body: { status: "ok" } });
  // a frame of the same shape that never met the full disk: what one stored copy is
  const control = await post(server.url, metricsFrame(a, 200, 30, Date.now()));
  expect(control.status).toBe(200);
  const perBatch = async (table: "metric_blocks" | "logs") =>
    Object.fromEntries((await sql`select batch_id, count(*)::int as n from ${sql(table)} where agent_id = ${a.id} group by batch_id`).map((r) => [Number(r.batch_id), r.n]));
  const metrics = await perBatch("metric_blocks");
  const logs = await perBatch("logs");
  const once = metrics[a.batch]!;
  expect(once).toBeGreaterThan(0);
  expect(Object.keys(metrics).length).toBe(2 + 3); // before, control, and the three resent
  for (const { batch, kind } of refused) {
    if (kind === "metrics") expect({ batch, rows: metrics[batch] }).toEqual({ batch, rows: once });
    else expect({ batch, rows: logs[batch] }).toEqual({ batch, rows: 500 });
  }
  expect(Object.keys(logs).length).toBe(3);
}, 30_000);
