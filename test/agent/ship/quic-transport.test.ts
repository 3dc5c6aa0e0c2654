/** HTTP/3 through node:quic against the real server: pinning, answers, session resumption. */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, privateKeyOf } from "../../../agent/identity/enroll.ts";
import { connectQuicTransport } from "../../../agent/ship/quic-transport.ts";
import { TransportError } from "../../../agent/ship/transport.ts";
import { encodeFrame, packMetrics } from "../../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import type { Identity } from "../../../agent/identity/store.ts";

setDefaultTimeout(30_000);
let s: TestServer;
let id: Identity;
beforeAll(async () => {
  s = await startTestServer();
  id = (await enroll({ serverUrl: s.url, token: await s.token(), fingerprint: s.fingerprint, version: "test" })).identity;
});
afterAll(() => s.close());

let seq = Date.now() * 1000;
const frame = (batch: number) => {
  const ts = Float64Array.of(Date.now() - 1000);
  return encodeFrame({ kind: FrameKind.Metrics, agentId: id.agentId, seq: ++seq, batchId: batch, createdMs: ts[0]!, items: 1 }, packMetrics({ ts, names: ["quic.test"], values: Float64Array.of(batch) }), privateKeyOf(id));
};

test("a pinned session carries frames and returns the server's acks", async () => {
  const t = await connectQuicTransport({ baseUrl: id.serverUrl, fingerprint: id.fingerprint, timeoutMs: 5000 });
  const r = await t.send([frame(1), frame(2)]);
  expect(r.acks.map((a) => [a.batch, a.status])).toEqual([[1, "ok"], [2, "ok"]]);
  const again = await t.send([frame(2)]); // same batch, new sequence number: stored once
  expect(again.acks[0]!.status).toBe("dup");
  t.close();
});

test("a fingerprint that does not match the server refuses the session before any request", async () => {
  await expect(connectQuicTransport({ baseUrl: id.serverUrl, fingerprint: "ab".repeat(32), timeoutMs: 5000 })).rejects.toThrow(/does not match the pinned fingerprint/);
});

test("session tickets resume the next handshake; the pin is still checked on a resumed session", async () => {
  let ticket: Uint8Array | undefined;
  const first = await connectQuicTransport({ baseUrl: id.serverUrl, fingerprint: id.fingerprint, timeoutMs: 5000, onTicket: (t) => (ticket = t) });
  await first.send([frame(3)]);
  for (let i = 0; i < 20 && !ticket; i++) await Bun.sleep(25);
  first.close();
  expect(ticket).toBeInstanceOf(Uint8Array);
  const fresh: number[] = [first.handshakeMs];
  const resumed: number[] = [];
  for (let i = 0; i < 5; i++) {
    const f = await connectQuicTransport({ baseUrl: id.serverUrl, fingerprint: id.fingerprint, timeoutMs: 5000 });
    fresh.push(f.handshakeMs);
    f.close();
    const r = await connectQuicTransport({ baseUrl: id.serverUrl, fingerprint: id.fingerprint, timeoutMs: 5000, ticket, onTicket: (t) => (ticket = t) });
    expect(r.resumed).toBe(true);
    expect((await r.send([frame(10 + i)])).acks.length).toBe(1);
    resumed.push(r.handshakeMs);
    r.close();
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  console.log(`quic handshake to a pinned session, median ms: fresh ${median(fresh).toFixed(2)}, resumed with a ticket ${median(resumed).toFixed(2)}`);
  await expect(connectQuicTransport({ baseUrl: id.serverUrl, fingerprint: "cd".repeat(32), timeoutMs: 5000, ticket })).rejects.toThrow(TransportError);
});

test("a server URL with a host name (localhost) works: the name is resolved before node:quic connects", async () => {
  const byName = id.serverUrl.replace("127.0.0.1", "localhost");
  expect(byName).toContain("://localhost:");
  const t = await connectQuicTransport({ baseUrl: byName, fingerprint: id.fingerprint, timeoutMs: 5000 });
  const r = await t.send([frame(40)]);
  expect(r.acks.map((a) => a.status)).toEqual(["ok"]);
  t.close();
});
