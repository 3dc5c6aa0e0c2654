/**
 * A request over the server's size limit (HTTP 413 `too_large`, WebSocket close 1009) is fixed
 * by sending fewer frames per request; a frame that is over the limit on its own is dropped with
 * a log line instead of being sent again forever (docs/protocol.md, reject codes). The transport
 * is injected and refuses requests the way the server does.
 */
import { afterEach, expect, test } from "bun:test";
import { generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { createShipper, type Shipper, type ShipperOptions } from "../../../agent/ship/shipper.ts";
import { interpretHttpAnswer, TransportError, type SendResult, type Transport } from "../../../agent/ship/transport.ts";
import { tempSpools } from "../../support/spools.ts";
import { splitFrames } from "../../../src/ingest/frame/decode.ts";
import { packMetrics } from "../../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";

const { privateKey } = generateKeyPairSync("ed25519");
const running: Shipper[] = [];
const spools = tempSpools("sm-limit-");
afterEach(async () => {
  for (const sh of running.splice(0)) await sh.stop();
  spools.closeAll(); // the shippers are stopped: their spools can close
});
const newSpool = spools.make;

/** A request limit of `maxBytes`, as the server's: a larger request is refused whole. */
function limitedTransport(name: string, maxBytes: number, tooLarge: () => TransportError, log: number[][]): Transport {
  return {
    name,
    async send(frames): Promise<SendResult> {
      const bytes = frames.reduce((n, f) => n + f.length, 0);
      const entries = splitFrames(Buffer.concat(frames));
      log.push(entries.map((e) => e.frame!.header.batchId).filter((b) => b > 0));
      if (bytes > maxBytes) throw tooLarge();
      return {
        acks: entries.map((e) => ({ batch: e.frame!.header.batchId, seq: e.frame!.header.seq, status: e.frame!.header.kind === FrameKind.Heartbeat ? "seen" : "ok" })),
        rejects: [],
      };
    },
    close() {},
  };
}

for (const [name, error] of [
  ["h2", () => new TransportError("h2: HTTP 413 too_large: request body exceeds ingest.maxRequestBytes", false, true)],
  ["wss", () => new TransportError("wss: connection closed (1009)", false, true)],
] as const) {
  test(`${name}: a request over the limit is split; a frame over it alone is dropped with a log line, not retried forever`, async () => {
    const spool = newSpool();
    const small = (i: number) => spool.append({ kind: FrameKind.Metrics, items: 1, createdMs: 1_795_000_000_000 + i, body: packMetrics({ ts: Float64Array.of(1_795_000_000_000 + i), names: ["a"], values: Float64Array.of(i) }) });
    const ids = [small(0), small(1), small(2)];
    // random names and values: LZ4 cannot bring it under the limit
    const names = Array.from({ length: 200 }, () => randomBytes(12).toString("hex"));
    const huge = spool.append({ kind: FrameKind.Metrics, items: 200, createdMs: 1_795_000_000_100, body: packMetrics({ ts: Float64Array.of(1_795_000_000_100), names, values: Float64Array.from({ length: 200 }, Math.random) }) });
    ids.push(small(3), small(4), small(5), small(6));
    const sends: number[][] = [];
    const logs: string[] = [];
    let connects = 0;
    const sh = createShipper({
      spool, agentId: 42, key: privateKey as KeyObject, serverUrl: "https://unused.invalid", tls: { ca: "" } as ShipperOptions["tls"],
      fingerprint: "00".repeat(32), transport: name === "h2" ? "http2" : "wss", maxFramesPerRequest: 8, replayPerSecond: 1e6, quicProbeMs: 600_000,
      requestTimeoutMs: 1000, heartbeatMs: 3_600_000, heartbeat: () => ({ version: "test" }), version: "test",
      random: () => 0, log: (m) => logs.push(m),
      connect: async () => {
        connects++;
        return limitedTransport(name, 1500, error, sends);
      },
    });
    running.push(sh);
    sh.start();
    const end = Date.now() + 5000;
    while (spool.stats().frames > 0 && Date.now() < end) await Bun.sleep(5);
    expect(spool.stats().frames).toBe(0);
    const st = sh.status();
    expect(st.rejectedFrames).toBe(1);
    expect(st.ackedFrames).toBe(ids.length);
    expect(logs.some((l) => l.includes(`batch ${huge} alone is over the server's request limit`))).toBe(true);
    expect(logs.some((l) => /sending at most 4 frames per request/.test(l))).toBe(true);
    // the first request held all 8; then halves; the huge frame was sent alone once, then dropped
    expect(sends[0]!.length).toBe(8);
    expect(sends.filter((s) => s.length === 1 && s[0] === huge).length).toBe(1);
    expect(sends.length).toBeLessThan(12);
    expect(connects).toBeGreaterThan(1); // the server closes the connection after a 413 / 1009
  });
}

test("an HTTP 413 is recognised as 'too large' with the server's JSON body and with the empty body of an early refusal", () => {
  const thrown = (status: number, text: string) => {
    try {
      interpretHttpAnswer("h2", status, null, text);
    } catch (e) {
      return e as TransportError;
    }
    throw new Error("no error");
  };
  expect(thrown(413, "").tooLarge).toBe(true);
  expect(thrown(413, JSON.stringify({ error: { code: "too_large", message: "over" } })).tooLarge).toBe(true);
  expect(thrown(400, "").tooLarge).toBe(false);
  expect(thrown(401, JSON.stringify({ error: { code: "bad_token", message: "x" } })).tooLarge).toBe(false);
});

test("a WebSocket hello refused as revoked_agent (close 4403) is an identity problem: the loop waits long, it does not hammer", async () => {
  const spool = newSpool();
  const logs: string[] = [];
  let connects = 0;
  const sh = createShipper({
    spool, agentId: 42, key: privateKey as KeyObject, serverUrl: "https://unused.invalid", tls: { ca: "" } as ShipperOptions["tls"],
    fingerprint: "00".repeat(32), transport: "wss", maxFramesPerRequest: 8, replayPerSecond: 1e6, quicProbeMs: 600_000,
    requestTimeoutMs: 1000, heartbeatMs: 3_600_000, heartbeat: () => ({ version: "test" }), version: "test",
    random: () => 0, log: (m) => logs.push(m),
    connect: async () => {
      connects++;
      throw new TransportError("wss: server refused the hello: revoked_agent: agent 42 has been revoked");
    },
  });
  running.push(sh);
  sh.start();
  const end = Date.now() + 3000;
  while (sh.status().state !== "rejected" && Date.now() < end) await Bun.sleep(5);
  expect(sh.status().state).toBe("rejected");
  expect(logs.some((l) => /refuses this agent's identity .*revoked_agent/.test(l))).toBe(true);
  await Bun.sleep(300);
  expect(connects).toBe(1); // waiting at least a minute before the next try
});
