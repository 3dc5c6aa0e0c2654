/**
 * Protocol 1.1 rules against the real server (docs/protocol.md): per-frame limits and bad
 * timestamps get their own 422 codes, enrollment refuses keys that are not standard base64 or
 * not usable Ed25519 points, and a revocation is told only to a sender that authenticated.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, mapFrame, metricsFrame, newKeys, openSession, post, requestSession, type SimAgent } from "../../support/sim-agent.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import { encodeFrame, packMap, packMetrics } from "../../../src/ingest/frame/encode.ts";
import { revokeAgent } from "../../../src/ingest/agent/enroll.ts";

let s: TestServer;
let a: SimAgent;

beforeAll(async () => {
  s = await startTestServer();
  a = await enroll(s.url, await s.token(), "rules-1");
}, 60_000);
afterAll(async () => {
  await s?.close();
});

const enrollWith = async (publicKey: string) => {
  const r = await fetch(`${s.url}/api/v1/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: await s.token(), publicKey, hostname: "k" }),
    tls: { rejectUnauthorized: false },
  });
  return { status: r.status, body: (await r.json()) as any };
};

/** Opens a stream and answers the challenge with `build(nonce)`; resolves with the close code and the messages. */
function streamHello(build: (nonce: string) => Uint8Array): Promise<{ code: number; msgs: any[] }> {
  const ws = new WebSocket(s.url.replace(/^https/, "wss") + "/api/v1/stream", { tls: { rejectUnauthorized: false } } as any);
  const msgs: any[] = [];
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    msgs.push(m);
    if (m.type === "challenge") ws.send(build(m.nonce) as Uint8Array<ArrayBuffer>);
    if (m.type === "welcome") ws.close(1000);
  };
  return new Promise((r) => (ws.onclose = (e) => r({ code: e.code, msgs })));
}

const hello = (agent: SimAgent, nonce: string) => mapFrame(agent, FrameKind.Hello, { nonce, version: "t" }, 0);

describe("enrollment key checks", () => {
  test("a valid key (standard base64 with padding) enrolls", async () => {
    expect((await enrollWith(newKeys().publicKeyB64)).status).toBe(200);
  });

  test("base64url, unpadded and wrong-length keys are refused as bad_request", async () => {
    // a key whose base64 holds '+' or '/', so that its base64url spelling differs
    let k = newKeys().publicKeyB64;
    for (let i = 0; i < 200 && !/[+/]/.test(k); i++) k = newKeys().publicKeyB64;
    expect(k).toMatch(/[+/]/);
    const url = Buffer.from(k, "base64").toString("base64url");
    for (const bad of [url, k.replace(/=$/, ""), Buffer.alloc(31, 7).toString("base64"), Buffer.alloc(33, 7).toString("base64"), ` ${k}`]) {
      const r = await enrollWith(bad);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe("bad_request");
      expect(r.body.error.message).toMatch(/standard base64/);
    }
  });

  test("32 bytes that are no usable Ed25519 point are refused: 32 x 0xff, off the curve, small order", async () => {
    const offCurve = Buffer.alloc(32);
    offCurve[0] = 2; // y = 2 has no x on the curve
    const identity = Buffer.alloc(32);
    identity[0] = 1; // the neutral point, order 1
    const order8 = Buffer.from("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", "hex");
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.alloc(32, 0xff), /not a canonical encoding/],
      [offCurve, /not a point of the Ed25519 curve/],
      [identity, /small order/],
      [order8, /small order/],
      [Buffer.alloc(32, 0), /small order/],
    ];
    for (const [raw, why] of cases) {
      const r = await enrollWith(raw.toString("base64"));
      expect(r.status).toBe(400);
      expect(r.body.error.message).toMatch(/not a valid Ed25519 public key/);
      expect(r.body.error.message).toMatch(why);
    }
  });
});

describe("per-frame limits and timestamps", () => {
  test("an item count over the limit is 422 too_many_items, not 413 too_large", async () => {
    const f = encodeFrame({ kind: FrameKind.Inventory, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: Date.now(), items: 1_000_001 }, packMap({ os: "x" }), a.privateKey);
    const r = await post(s.url, f);
    expect(r.status).toBe(422);
    expect(r.body.rejects![0]).toMatchObject({ code: "too_many_items", batch: a.batch, seq: a.seq });
  });

  test("a frame declaring a body over the limit is 422 frame_too_large, first in a request (from its header alone) as after a good frame, whether or not its body follows", async () => {
    const good = () => encodeFrame({ kind: FrameKind.Inventory, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: Date.now(), items: 1 }, packMap({ os: "x" }), a.privateKey);
    const oversized = () => {
      const f = good();
      const dv = new DataView(f.buffer, f.byteOffset);
      dv.setUint32(48, 8 * 2 ** 20 + 1, true); // body length just over the default 8 MiB, raw length kept equal
      dv.setUint32(52, 8 * 2 ** 20 + 1, true);
      return { f, batch: a.batch, seq: a.seq };
    };
    // first: refused from its header alone, before anything of the request has authenticated
    const first = oversized();
    const r1 = await post(s.url, [first.f, good()]);
    expect(r1.status).toBe(422);
    expect(r1.body.rejects).toEqual([{ code: "frame_too_large", batch: first.batch, seq: first.seq, message: expect.stringMatching(/8388609 bytes exceeds the limit of 8388608 .*split/) }]);
    expect(r1.body.acks).toEqual([]);
    // after a good frame: the same code from the frame splitter
    const ok = good();
    const okBatch = a.batch;
    const second = oversized();
    const r2 = await post(s.url, [ok, second.f]);
    expect(r2.status).toBe(422);
    expect(r2.body.acks).toEqual([expect.objectContaining({ batch: okBatch, status: "ok" })]);
    expect(r2.body.rejects).toEqual([expect.objectContaining({ code: "frame_too_large", batch: second.batch, seq: second.seq })]);
  });

  test("a raw length over the limit is 422 frame_too_large", async () => {
    const f = encodeFrame({ kind: FrameKind.Inventory, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: Date.now(), items: 1 }, packMap({ os: "x" }), a.privateKey);
    const dv = new DataView(f.buffer, f.byteOffset);
    dv.setUint16(6, 1, true); // claim LZ4 ...
    dv.setUint32(52, 32 * 2 ** 20 + 1, true); // ... expanding past 32 MiB (checked before the signature)
    const r = await post(s.url, f);
    expect(r.status).toBe(422);
    expect(r.body.rejects![0]!.code).toBe("frame_too_large");
  });

  test("a fractional ms timestamp is refused as 422 bad_timestamp and nothing is stored; whole ms are stored exactly", async () => {
    const t = Math.floor(Date.now() / 1000) * 1000;
    const frac = encodeFrame(
      { kind: FrameKind.Metrics, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: t, items: 1 },
      packMetrics({ ts: Float64Array.of(t + 0.5), names: ["frac.test"], values: Float64Array.of(1) }),
      a.privateKey,
    );
    const r = await post(s.url, frac);
    expect(r.status).toBe(422);
    expect(r.body.rejects![0]).toMatchObject({ code: "bad_timestamp", batch: a.batch });
    expect(r.body.rejects![0]!.message).toMatch(/whole number of ms/);
    const whole = encodeFrame(
      { kind: FrameKind.Metrics, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: t, items: 1 },
      packMetrics({ ts: Float64Array.of(t + 1), names: ["frac.test"], values: Float64Array.of(2) }),
      a.privateKey,
    );
    expect((await post(s.url, whole)).body.acks![0]!.status).toBe("ok");
    const rows = await s.db.sql`select count(*)::int as n from metric_blocks where agent_id = ${a.id} and batch_id = ${a.batch - 1}`;
    expect(rows[0]!.n).toBe(0);
  });

  test("a bad_body frame consumes its sequence number; a bad_signature frame does not", async () => {
    const bad = encodeFrame({ kind: FrameKind.SecurityEvents, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: Date.now(), items: 2 }, packMap({ e: [] }), a.privateKey);
    expect((await post(s.url, bad)).body.rejects![0]!.code).toBe("bad_body");
    const sameSeq = encodeFrame({ kind: FrameKind.Inventory, agentId: a.id, seq: a.seq, batchId: ++a.batch, createdMs: Date.now(), items: 1 }, packMap({ os: "y" }), a.privateKey);
    expect((await post(s.url, sameSeq)).body.rejects![0]!.code).toBe("replayed_seq");

    const forged = encodeFrame({ kind: FrameKind.Inventory, agentId: a.id, seq: ++a.seq, batchId: ++a.batch, createdMs: Date.now(), items: 1 }, packMap({ os: "z" }), newKeys().privateKey);
    expect((await post(s.url, forged)).body.rejects![0]!.code).toBe("bad_signature");
    const again = encodeFrame({ kind: FrameKind.Inventory, agentId: a.id, seq: a.seq, batchId: a.batch, createdMs: Date.now(), items: 1 }, packMap({ os: "z" }), a.privateKey);
    expect((await post(s.url, again)).body.acks![0]!.status).toBe("ok");
  });
});

describe("revocation is told only to an authenticated sender", () => {
  test("frames: a forged frame for a revoked agent gets the unknown-agent answer; a signed one gets 403", async () => {
    const b = await enroll(s.url, await s.token(), "rules-revoked");
    await revokeAgent(s.db.sql, b.id);
    s.ingest.deps.directory.invalidate(b.id);
    const ghost = await post(s.url, metricsFrame({ id: 987_654_321, ...newKeys(), seq: 0, batch: 0 }, 2, 2, Date.now()));
    const forger: SimAgent = { ...b, ...newKeys(), seq: b.seq + 100 };
    const forged = await post(s.url, metricsFrame(forger, 2, 2, Date.now()));
    expect(forged.status).toBe(401);
    expect(forged.body.rejects![0]!.code).toBe("unknown_agent");
    expect(forged.body.rejects![0]!.message).toBe(ghost.body.rejects![0]!.message.replace("987654321", String(b.id)));
    const signed = await post(s.url, metricsFrame(b, 2, 2, Date.now()));
    expect(signed.status).toBe(403);
    expect(signed.body.rejects![0]!.code).toBe("revoked_agent");
  });

  test("a sealed frame whose session went with the revocation gets the unknown-agent answer", async () => {
    const b = await enroll(s.url, await s.token(), "rules-revoked-sealed");
    await openSession(s.url, b);
    await revokeAgent(s.db.sql, b.id);
    s.ingest.deps.directory.invalidate(b.id);
    const r = await post(s.url, metricsFrame(b, 2, 2, Date.now()));
    expect(r.status).toBe(401);
    expect(r.body.rejects![0]!.code).toBe("unknown_agent");
  });

  test("POST /api/v1/session: a forged hello for a revoked agent gets 401 unknown_agent; the agent's own gets 403", async () => {
    const b = await enroll(s.url, await s.token(), "rules-revoked-session");
    await revokeAgent(s.db.sql, b.id);
    s.ingest.deps.directory.invalidate(b.id);
    const forger: SimAgent = { ...b, ...newKeys(), seq: b.seq + 100 };
    const forged = await requestSession(s.url, forger);
    expect(forged.status).toBe(401);
    expect(forged.body.error!.code).toBe("unknown_agent");
    const own = await requestSession(s.url, b);
    expect(own.status).toBe(403);
    expect(own.body.error!.code).toBe("revoked_agent");
  });

  test("WebSocket hello: a revoked agent's signed hello closes with 4403 revoked_agent; a forged one with 4401 as for an unknown agent", async () => {
    const b = await enroll(s.url, await s.token(), "rules-revoked-ws");
    const ok = await streamHello((n) => hello(b, n));
    expect(ok.msgs.some((m) => m.type === "welcome")).toBe(true);
    await revokeAgent(s.db.sql, b.id);
    s.ingest.deps.directory.invalidate(b.id);

    const own = await streamHello((n) => hello(b, n));
    expect(own.code).toBe(4403);
    expect(own.msgs.at(-1)).toMatchObject({ type: "error", code: "revoked_agent" });

    const forger: SimAgent = { ...b, ...newKeys(), seq: b.seq + 100 };
    const forged = await streamHello((n) => hello(forger, n));
    const ghost = await streamHello((n) => hello({ id: 987_654_322, ...newKeys(), seq: 0, batch: 0 }, n));
    expect(forged.code).toBe(4401);
    expect(ghost.code).toBe(4401);
    expect(forged.msgs.at(-1)).toMatchObject({ type: "error", code: "bad_hello", message: `agent ${b.id} is not enrolled` });
    expect(ghost.msgs.at(-1)).toMatchObject({ type: "error", code: "bad_hello", message: "agent 987654322 is not enrolled" });
  });
});

describe("request and message limits", () => {
  test("an HTTP request over ingest.maxRequestBytes: 413, and a body that is not an acks answer", async () => {
    const r = await fetch(`${s.url}/api/v1/ingest`, { method: "POST", body: new Uint8Array(s.config.maxRequestBytes + 1), tls: { rejectUnauthorized: false } });
    expect(r.status).toBe(413);
    // refused from its Content-Length before the body is read: no JSON, and the connection closes
    expect(await r.text()).toBe("");
    expect(r.headers.get("connection")).toBe("close");
  });

  test("a WebSocket message over maxBodyBytes + 1024 bytes closes the stream with 1009; one at the limit is answered", async () => {
    const limit = Math.min(8 * 2 ** 20, s.config.maxRequestBytes) + 1024;
    const open = async () => {
      const b = await enroll(s.url, await s.token(), `rules-ws-limit-${Math.random()}`);
      const { openStream } = await import("../../support/sim-agent.ts");
      return openStream(s.url, b);
    };
    const st = await open();
    const atLimit = await st.send(new Uint8Array(limit)); // garbage, but within the limit: answered
    expect(atLimit.type).toBe("ack");
    expect(atLimit.rejects[0].code).toBe("bad_magic");
    st.close();
    const st2 = await open();
    void st2.send(new Uint8Array(limit + 1));
    expect((await st2.closed).code).toBe(1009);
  });
});
