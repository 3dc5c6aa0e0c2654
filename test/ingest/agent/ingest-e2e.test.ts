/** The whole ingest path against the real server: TLS, every transport, PostgreSQL rows, acks. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, logsFrame, mapFrame, metricsFrame, openStream, post, type SimAgent } from "../../support/sim-agent.ts";
import { countStoredSamples, readBlockRows } from "../../../src/store/postgres/metric-blocks.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";

let s: TestServer;
let a: SimAgent;

beforeAll(async () => {
  s = await startTestServer();
  a = await enroll(s.url, await s.token(), "web-1");
});
afterAll(async () => {
  await s?.close();
});

async function count(table: string, agentId: number): Promise<number> {
  const [r] = await s.db.sql.unsafe(`select count(*)::int as n from ${table} where agent_id = $1`, [agentId]);
  return r!.n;
}

describe("ingest over every transport", () => {
  for (const protocol of ["http1.1", "http2", "http3"] as const) {
    test(`metrics frames over ${protocol} are committed, then acknowledged`, async () => {
      const before = await countStoredSamples(s.db.sql, a.id);
      const frames = [metricsFrame(a, 100, 10, Date.now()), metricsFrame(a, 25, 10, Date.now())];
      const r = await post(s.url, frames, protocol);
      expect(r.status).toBe(200);
      expect(r.body.acks!.map((x) => x.status)).toEqual(["ok", "ok"]);
      expect(r.body.rejects).toEqual([]);
      // the ack means committed: the samples are visible now (100 + 25 series x 10 timestamps)
      expect(await countStoredSamples(s.db.sql, a.id)).toBe(before + 1250);
    });
  }

  test("WebSocket stream: challenge, signed hello, frames, acks", async () => {
    const st = await openStream(s.url, a);
    const before = await count("logs", a.id);
    const ack = await st.send([logsFrame(a, 200, Date.now()), logsFrame(a, 50, Date.now())]);
    expect(ack.type).toBe("ack");
    expect(ack.acks.map((x: any) => x.status)).toEqual(["ok", "ok"]);
    expect(await count("logs", a.id)).toBe(before + 250);
    st.close();
  });
});

describe("mixed batches", () => {
  test("metrics, logs, security events and inventory in one request commit in one transaction", async () => {
    const { encodeFrame, packSecurity } = await import("../../../src/ingest/frame/encode.ts");
    const c = await enroll(s.url, await s.token(), "mixed-1");
    const sec = encodeFrame(
      { kind: FrameKind.SecurityEvents, agentId: c.id, seq: ++c.seq, batchId: ++c.batch, createdMs: Date.now(), items: 1 },
      packSecurity({ events: [{ ts: Date.now(), type: "auth.failure", severity: 5 }] }),
      c.privateKey,
    );
    const r = await post(s.url, [metricsFrame(c, 30, 10, Date.now()), logsFrame(c, 20, Date.now()), sec, mapFrame(c, FrameKind.Inventory, { os: "x" })]);
    expect(r.status).toBe(200);
    expect(r.body.acks!.map((x) => x.status)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(await countStoredSamples(s.db.sql, c.id)).toBe(300);
    expect(await count("logs", c.id)).toBe(20);
    expect(await count("security_events", c.id)).toBe(1);
    expect(await count("inventory_history", c.id)).toBe(1);
  });
});

describe("stored values", () => {
  test("metric values and timestamps round-trip exactly", async () => {
    const b = await enroll(s.url, await s.token(), "db-1");
    const end = Math.floor(Date.now() / 1000) * 1000;
    const f = metricsFrame(b, 12, 10, end);
    expect((await post(s.url, f)).status).toBe(200);
    const rows = await readBlockRows(s.db.sql, b.id);
    expect(rows.length).toBe(1); // 12 series of 2-decimal values compress into one row
    expect(rows[0]!.t0).toBe(end - 90_000);
    expect(rows[0]!.tsOff).toEqual([0, 10000, 20000, 30000, 40000, 50000, 60000, 70000, 80000, 90000]);
    expect(rows[0]!.series.length).toBe(12);
    expect(rows[0]!.vals.length).toBe(120);
    for (const v of rows[0]!.vals) expect(Math.round(v * 100) / 100).toBe(v); // sim-agent's values, exact
    const names = await s.db.sql`select name from metric_series where agent_id = ${b.id} order by name`;
    expect(names.map((n) => n.name)).toContain("sim.metric_011");
  });

  test("inventory keeps the latest and a history of changes only", async () => {
    const inv = { os: { id: "debian", version: "12" }, packages: [{ name: "openssl", version: "3.0.15" }] };
    expect((await post(s.url, mapFrame(a, FrameKind.Inventory, inv))).status).toBe(200);
    expect((await post(s.url, mapFrame(a, FrameKind.Inventory, inv))).status).toBe(200);
    const changed = { ...inv, packages: [{ name: "openssl", version: "3.0.16" }] };
    expect((await post(s.url, mapFrame(a, FrameKind.Inventory, changed))).status).toBe(200);
    const [cur] = await s.db.sql`select data from inventory_current where agent_id = ${a.id}`;
    expect(cur!.data.packages[0].version).toBe("3.0.16");
    // the fleet inventory's rows (migration 505's trigger) follow the stored document
    expect((await s.db.sql`select version from inventory_packages where agent_id = ${a.id} and name = 'openssl'`).map((r) => r.version)).toEqual(["3.0.16"]);
    expect(await count("inventory_history", a.id)).toBe(2);
  });

  test("security events are stored with their data", async () => {
    const { encodeFrame, packSecurity } = await import("../../../src/ingest/frame/encode.ts");
    const f = encodeFrame(
      { kind: FrameKind.SecurityEvents, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: Date.now(), items: 1 },
      packSecurity({ events: [{ ts: Date.now(), type: "fim.modify", severity: 7, path: "/etc/passwd", data: { before: { mode: "0644" }, after: { mode: "0666" } } }] }),
      a.privateKey,
    );
    expect((await post(s.url, f)).status).toBe(200);
    const [e] = await s.db.sql`select type, path, data from security_events where agent_id = ${a.id}`;
    expect(e).toMatchObject({ type: "fim.modify", path: "/etc/passwd", data: { after: { mode: "0666" } } });
  });
});
