/** Protocol rules against the real server: identity, replay, duplicates, errors, backpressure. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, mapFrame, metricsFrame, newKeys, openStream, post, type SimAgent } from "../../support/sim-agent.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import { restampFrame } from "../../../src/ingest/frame/encode.ts";
import { revokeAgent } from "../../../src/ingest/agent/enroll.ts";

let s: TestServer;
let a: SimAgent;

beforeAll(async () => {
  s = await startTestServer();
  a = await enroll(s.url, await s.token(), "app-1");
}, 60_000); // starting a server takes longer than the 5 s default on a loaded machine
afterAll(async () => {
  await s?.close();
});

const rows = async (agentId: number) =>
  (await s.db.sql`select count(*)::int as n from metric_blocks where agent_id = ${agentId}`)[0]!.n as number;

describe("enrollment", () => {
  test("a token works once; unknown, reused and malformed requests get specific errors", async () => {
    const token = await s.token();
    const k = newKeys();
    const body = (t: string, key = k.publicKeyB64) => JSON.stringify({ token: t, publicKey: key, hostname: "h" });
    const req = (b: string) => fetch(`${s.url}/api/v1/enroll`, { method: "POST", body: b, headers: { "content-type": "application/json" }, tls: { rejectUnauthorized: false } });
    const ok = await req(body(token));
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as any).fingerprint).toBe(s.fingerprint);
    const again = await req(body(token, newKeys().publicKeyB64));
    expect(again.status).toBe(401);
    expect(((await again.json()) as any).error.message).toMatch(/already used/);
    expect((await req(body(await s.token(), k.publicKeyB64))).status).toBe(409);
    expect((await req(body(await s.token(), "AAAA"))).status).toBe(400);
    const bad = await req("{not json");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.message).toMatch(/not valid JSON/);
  });
});

describe("frame acceptance", () => {
  test("a resent batch is acknowledged again but stored once", async () => {
    const f = metricsFrame(a, 20, 10, Date.now());
    const first = await post(s.url, f);
    expect(first.body.acks![0]!.status).toBe("ok");
    const before = await rows(a.id);
    const resend = restampFrame(f, ++a.seq, Date.now(), a.privateKey); // same batch id, new seq
    const second = await post(s.url, resend);
    expect(second.status).toBe(200);
    expect(second.body.acks![0]!.status).toBe("dup");
    expect(await rows(a.id)).toBe(before);
  });

  test("the same batch twice in one request is stored once", async () => {
    const f = metricsFrame(a, 10, 10, Date.now());
    const r = await post(s.url, [f, restampFrame(f, ++a.seq, Date.now(), a.privateKey)]);
    expect(r.body.acks!.map((x) => x.status)).toEqual(["ok", "dup"]);
  });

  test("a replayed sequence number is refused with 409", async () => {
    const f = metricsFrame(a, 10, 10, Date.now());
    expect((await post(s.url, f)).status).toBe(200);
    const r = await post(s.url, f);
    expect(r.status).toBe(409);
    expect(r.body.rejects![0]).toMatchObject({ code: "replayed_seq", seq: a.seq });
  });

  test("unknown agents, bad signatures and revoked agents are refused", async () => {
    const ghost: SimAgent = { id: 999_999, ...newKeys(), seq: 0, batch: 0 };
    const r1 = await post(s.url, metricsFrame(ghost, 5, 5, Date.now()));
    expect(r1.status).toBe(401);
    expect(r1.body.rejects![0]!.code).toBe("unknown_agent");

    const forger: SimAgent = { ...a, ...newKeys(), seq: a.seq + 1000 }; // a's id, another key
    const r2 = await post(s.url, metricsFrame(forger, 5, 5, Date.now()));
    expect(r2.status).toBe(401);
    expect(r2.body.rejects![0]!.code).toBe("bad_signature");

    const b = await enroll(s.url, await s.token(), "to-revoke");
    expect((await post(s.url, metricsFrame(b, 5, 5, Date.now()))).status).toBe(200);
    await revokeAgent(s.db.sql, b.id);
    s.ingest.deps.directory.invalidate(b.id);
    const r3 = await post(s.url, metricsFrame(b, 5, 5, Date.now()));
    expect(r3.status).toBe(403);
    expect(r3.body.rejects![0]!.code).toBe("revoked_agent");
  });

  test("a bad frame in a request costs only itself: the valid ones are stored and acknowledged", async () => {
    const good1 = metricsFrame(a, 10, 10, Date.now());
    const bad = metricsFrame(a, 10, 10, Date.now());
    bad[bad.length - 1]! ^= 0xff; // signature
    const good2 = metricsFrame(a, 10, 10, Date.now());
    const before = await rows(a.id);
    const r = await post(s.url, [good1, bad, good2]);
    expect(r.status).toBe(401);
    expect(r.body.acks!.map((x) => x.status)).toEqual(["ok", "ok"]);
    expect(r.body.rejects!.map((x) => x.code)).toEqual(["bad_signature"]);
    expect(await rows(a.id)).toBe(before + 2);
  });

  test("garbage, empty and truncated bodies get 400 with the reason; the server stays up", async () => {
    const garbage = await post(s.url, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n".repeat(10)));
    expect(garbage.status).toBe(400);
    expect(garbage.body.rejects![0]!.code).toBe("bad_magic");
    const f = metricsFrame(a, 10, 10, Date.now());
    const cut = await post(s.url, f.subarray(0, f.length - 10));
    expect(cut.body.rejects![0]!.code).toBe("truncated");
    const r = await fetch(`${s.url}/api/v1/ingest`, { method: "POST", body: new Uint8Array(0), tls: { rejectUnauthorized: false } });
    expect(r.status).toBe(400);
    expect((await fetch(`${s.url}/healthz`, { tls: { rejectUnauthorized: false } })).status).toBe(200);
  });

  test("a request over ingest.maxRequestBytes gets 413", async () => {
    const big = new Uint8Array(s.config.maxRequestBytes + 1);
    const r = await fetch(`${s.url}/api/v1/ingest`, { method: "POST", body: big, tls: { rejectUnauthorized: false } });
    expect(r.status).toBe(413);
  });

  test("heartbeats update the agent's status; metrics update the latest values", async () => {
    const hb = await post(s.url, mapFrame(a, FrameKind.Heartbeat, { uptime: 42, processes: { collector: "ok" } }));
    expect(hb.body.acks![0]!.status).toBe("seen");
    await post(s.url, metricsFrame(a, 3, 2, Date.now()));
    await s.ingest.deps.state.flush();
    const [ag] = await s.db.sql`select status, last_seen, last_seq, transport from agents where id = ${a.id}`;
    expect(ag!.status).toMatchObject({ uptime: 42, processes: { collector: "ok" } });
    expect(Number(ag!.last_seq)).toBe(a.seq);
    expect(ag!.transport).toBe("h2");
    const [l] = await s.db.sql`select names, vals from metric_latest where agent_id = ${a.id}`;
    expect(l!.names.slice(0, 3)).toEqual(["sim.metric_000", "sim.metric_001", "sim.metric_002"]);
    expect(l!.vals.length).toBe(l!.names.length);
  });
});

describe("stream authentication", () => {
  test("a stream refuses frames before the hello and a hello with the wrong nonce", async () => {
    const ws = new WebSocket(s.url.replace("https", "wss") + "/api/v1/stream", { tls: { rejectUnauthorized: false } } as any);
    const msgs: any[] = [];
    const closed = new Promise<number>((r) => (ws.onclose = (e) => r(e.code)));
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data));
      msgs.push(m);
      if (m.type === "challenge") ws.send(mapFrame(a, FrameKind.Hello, { nonce: "not-the-nonce", version: "t" }, 0) as Uint8Array<ArrayBuffer>);
    };
    expect(await closed).toBe(4401);
    expect(msgs.at(-1)).toMatchObject({ type: "error", code: "bad_hello" });
  });

  test("a hello signed by another key is refused", async () => {
    const impostor: SimAgent = { ...a, ...newKeys(), seq: a.seq + 5000 };
    expect(openStream(s.url, impostor)).rejects.toThrow(/signature/);
  });
});

describe("backpressure", () => {
  test("a stalled store fills the bound: new requests get 503 + Retry-After, accepted frames are all committed", async () => {
    const small = await startTestServer({ SERVERMIND_MAX_PENDING_BYTES: String(1 << 20) });
    try {
      const b = await enroll(small.url, await small.token(), "bp");
      // warm up series registration, then hold an exclusive lock so COPY waits
      expect((await post(small.url, metricsFrame(b, 100, 10, Date.now()))).status).toBe(200);
      const locker = small.db.sql.reserve();
      const conn = await locker;
      await conn`begin`;
      await conn`lock table metric_blocks in access exclusive mode`;
      const sends = Array.from({ length: 120 }, () => post(small.url, metricsFrame(b, 100, 10, Date.now())));
      const stream = await openStream(small.url, b);
      await Bun.sleep(500);
      const wsAck = await stream.send(metricsFrame(b, 100, 10, Date.now()));
      expect(wsAck.rejects[0].code).toBe("busy");
      await Bun.sleep(50); // the "slow" message follows the ack
      expect(stream.messages.some((m) => m.type === "slow" && m.retryAfterMs > 0)).toBe(true);
      await conn`commit`;
      conn.release();
      const results = await Promise.all(sends);
      const busy = results.filter((r) => r.status === 503);
      const ok = results.filter((r) => r.status === 200);
      expect(busy.length).toBeGreaterThan(0);
      expect(busy.every((r) => Number(r.retryAfter) >= 1)).toBe(true);
      expect(ok.length).toBeGreaterThan(0);
      expect(ok.length + busy.length).toBe(120);
      const [n] = await small.db.sql`select count(distinct batch_id)::int as n from metric_blocks where agent_id = ${b.id}`;
      expect(n!.n).toBe(ok.length + 1); // every acknowledged frame, once
      stream.close();
    } finally {
      await small.close();
    }
  }, 60_000);
});
