/**
 * PostgreSQL refusing every write, against the real server: a CHECK constraint that no row of
 * metric_blocks meets fails every batch (SQLSTATE 23514, three attempts each), as a full disk
 * does with 53100. Agents resending make many failing batches; the log has the first failure,
 * at most one summary per interval and, once the constraint is gone, one line saying writes
 * succeed again, where it had three lines per batch.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { WriteFailureLog } from "../../src/ingest/write-failures.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { enroll, metricsFrame, post, type SimAgent } from "../support/sim-agent.ts";

const INTERVAL_MS = 1000;
const lines: string[] = [];
let db: TestDb;
let server: RunningServer;
const agents: SimAgent[] = [];

beforeAll(async () => {
  db = await testDatabase();
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(db.sql, t);
  const cert = createSelfSigned(["127.0.0.1"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false" });
  server = startServer({
    config, sql: db.sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" },
    writeFailureLog: new WriteFailureLog({ intervalMs: INTERVAL_MS, log: (l) => void lines.push(l) }),
  });
  for (let i = 0; i < 4; i++) agents.push(await enroll(server.url, (await createActivationToken(db.sql, { createdBy: "test" })).token, `write-log-${i}`));
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

test("every write refused for 3 s by four resending agents: the first failure, a summary per interval, one line when writes succeed again", async () => {
  await db.sql`alter table metric_blocks add constraint sm_test_refuse_all check (agent_id < 0)`;
  const started = performance.now();
  let refused = 0;
  try {
    await Promise.all(
      agents.map(async (a) => {
        while (performance.now() - started < 3000) {
          const r = await post(server.url, metricsFrame(a, 5, 3, Date.now()));
          expect(r.status).toBe(503);
          expect(r.body.rejects!.map((x) => x.code)).toEqual(["store_unavailable"]);
          refused++;
        }
      }),
    );
  } finally {
    await db.sql`alter table metric_blocks drop constraint sm_test_refuse_all`;
  }
  const failingFor = performance.now() - started;
  expect(refused).toBeGreaterThan(12);

  const first = lines.filter((l) => l.startsWith("store write failed"));
  expect(first.length).toBe(1);
  expect(first[0]).toContain("store write failed (SQLSTATE 23514): ");
  expect(first[0]).toContain('violates check constraint "sm_test_refuse_all"');
  const summaries = lines.filter((l) => l.startsWith("store writes still failing since "));
  expect(summaries.length).toBeLessThanOrEqual(Math.ceil(failingFor / INTERVAL_MS));
  for (const s of summaries) expect(s).toMatch(/: \d+ batches failed \(\d+ attempts: SQLSTATE 23514 ×\d+\)$/);
  expect(lines.length).toBe(first.length + summaries.length);

  // writes commit again; the line saying so comes with the first commit an interval after the last line
  await Bun.sleep(INTERVAL_MS);
  const ok = await post(server.url, metricsFrame(agents[0]!, 5, 3, Date.now()));
  expect(ok.status).toBe(200);
  expect(ok.body.acks!.map((x) => x.status)).toEqual(["ok"]);
  const back = lines.filter((l) => l.startsWith("store writes succeed again"));
  expect(back.length).toBe(1);
  const m = /^store writes succeed again after (\d+) failed batches over ([\d.]+) s \((\d+) failed attempts: SQLSTATE 23514 ×(\d+)\)$/.exec(back[0]!);
  expect(m).not.toBeNull();
  const [batches, seconds, attempts] = [Number(m![1]), Number(m![2]), Number(m![3])];
  // every refused request's frame was in a failed batch (concurrent frames share one); each batch had its three attempts
  expect(batches).toBeGreaterThan(4);
  expect(batches).toBeLessThanOrEqual(refused);
  expect(attempts).toBe(3 * batches);
  expect(seconds).toBeGreaterThan(2);
  // three lines per batch before: now the whole outage took a handful
  expect(lines.length).toBeLessThan(batches);
  console.log(`${batches} failed batches (${refused} refused requests) in ${(failingFor / 1000).toFixed(1)} s logged as ${lines.length} lines`);
}, 30_000);
