/**
 * The real agent's ship loop against the real server with poison in its spool (issue #13): a
 * log line holding U+0000 is stored exactly and acknowledged; a batch the server refuses for
 * good (`bad_name`, `store_rejected`) is dropped from the spool with a log line instead of
 * being resent for ever; the batches around them are committed.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
setDefaultTimeout(30_000);
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, privateKeyOf } from "../../../agent/identity/enroll.ts";
import { pinnedTls } from "../../../agent/ship/pin.ts";
import { createShipper } from "../../../agent/ship/shipper.ts";
import { tempSpools } from "../../support/spools.ts";
import { packLogs, packMap, packMetrics } from "../../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import type { Identity } from "../../../agent/identity/store.ts";

let s: TestServer;
let identity: Identity;
beforeAll(async () => {
  s = await startTestServer();
  identity = (await enroll({ serverUrl: s.url, token: await s.token(), fingerprint: s.fingerprint, version: "test" })).identity;
});
afterAll(() => s.close());

// after the file's tests the spool is closed and its temp dir removed
const spools = tempSpools("sm-poison-");
afterAll(() => spools.closeAll());

test("poison batches leave the spool as refused or stored; the others are committed", async () => {
  const spool = spools.make();
  const now = Date.now();
  const metrics = (names: string[]) => packMetrics({ ts: Float64Array.of(now), names, values: new Float64Array(names.length).fill(1) });
  const good1 = spool.append({ kind: FrameKind.Metrics, items: 1, createdMs: now, body: metrics(["ok.a"]) });
  const nulLine = spool.append({ kind: FrameKind.Logs, items: 1, createdMs: now, body: packLogs({ ts: Float64Array.of(now), severity: Uint8Array.of(6), sources: ["/var/log/app.log"], sourceIndex: Uint16Array.of(0), messages: ["x\u0000y"] }) });
  const badName = spool.append({ kind: FrameKind.Metrics, items: 1, createdMs: now, body: metrics(["cpu\u0000util"]) });
  const undatable = spool.append({ kind: FrameKind.Inventory, items: 1, createdMs: 9e18, body: packMap({ os: "linux" }) });
  const good2 = spool.append({ kind: FrameKind.Metrics, items: 1, createdMs: now, body: metrics(["ok.b"]) });
  const logs: string[] = [];
  const sh = createShipper({
    spool, agentId: identity.agentId, key: privateKeyOf(identity), serverUrl: identity.serverUrl,
    tls: pinnedTls(identity.serverCertPem, identity.fingerprint), fingerprint: identity.fingerprint, transport: "http2",
    maxFramesPerRequest: 8, replayPerSecond: 1000, quicProbeMs: 60_000, requestTimeoutMs: 5000,
    heartbeatMs: 60_000, heartbeat: () => ({ version: "test" }), version: "test", log: (m) => logs.push(m),
  });
  sh.start();
  const end = Date.now() + 15_000;
  while (spool.stats().frames > 0 && Date.now() < end) await Bun.sleep(25);
  const st = sh.status();
  await sh.stop();
  expect(spool.stats().frames).toBe(0);
  expect(st.rejectedFrames).toBe(2);
  expect(st.ackedFrames).toBe(3);
  expect(logs.some((l) => l.includes(`batch ${badName} rejected by the server and dropped: bad_name`))).toBe(true);
  // a creation time PostgreSQL cannot hold is refused at decode (docs/protocol.md section 5)
  expect(logs.some((l) => l.includes(`batch ${undatable} rejected by the server and dropped: bad_timestamp`))).toBe(true);
  const committed = await s.db.sql`select batch_id from ingest_batches where agent_id = ${identity.agentId} order by batch_id`;
  expect(committed.map((r) => Number(r.batch_id))).toEqual([good1, nulLine, good2]);
  const [line] = await s.db.sql<{ message: string; message_raw: Buffer }[]>`select message, message_raw from logs where agent_id = ${identity.agentId}`;
  expect(Buffer.from(line!.message_raw).toString("utf8")).toBe("x\u0000y");
  expect(line!.message).toBe("x\uFFFDy");
}, 30_000);
