/** A batch that holds metrics, logs and security frames together commits all of them (one COPY at a time). */
import { expect, test } from "bun:test";
import { startTestServer } from "../../support/server.ts";
import { enroll, logsFrame, metricsFrame, post } from "../../support/sim-agent.ts";
import { encodeFrame, packSecurity } from "../../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";

test("metrics, logs and security events in one request are stored together", async () => {
  const s = await startTestServer();
  try {
    const a = await enroll(s.url, await s.token(), "mixed");
    const now = Date.now();
    const r = await post(s.url, [metricsFrame(a, 10, 2, now), logsFrame(a, 5, now), encodeFrame({ kind: FrameKind.SecurityEvents, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: now, items: 1 }, packSecurity({ events: [{ ts: now, type: "login", severity: 3 }] }), a.privateKey)]);
    expect(r.status).toBe(200);
    expect(r.body.acks!.map((x) => x.status)).toEqual(["ok", "ok", "ok"]);
    const [c] = await s.db.sql`select (select count(*) from metric_blocks)::int as m, (select count(*) from logs)::int as l, (select count(*) from security_events)::int as e`;
    expect(c).toEqual({ m: 1, l: 5, e: 1 });
  } finally {
    await s.close();
  }
}, 30_000);
