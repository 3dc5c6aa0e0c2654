/** Sessions (docs/protocol.md 3.5) against the real server, and the session table alone. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { metricsAuth, startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, mapFrame, metricsFrame, openSession, openStream, post, requestSession, sessionAuth, type SimAgent } from "../../support/sim-agent.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import { encodeFrame, packMap, restampFrame } from "../../../src/ingest/frame/encode.ts";
import { revokeAgent } from "../../../src/ingest/agent/enroll.ts";
import { SessionTable } from "../../../src/ingest/agent/sessions.ts";

let s: TestServer;
let a: SimAgent;

beforeAll(async () => {
  s = await startTestServer();
  a = await enroll(s.url, await s.token(), "sess-1");
});
afterAll(async () => {
  await s?.close();
});

/** Metrics frames stored for an agent (a frame is one or more compressed rows, one batch id). */
const rows = async (agentId: number) => (await s.db.sql`select count(distinct batch_id)::int as n from metric_blocks where agent_id = ${agentId}`)[0]!.n as number;
const scrape = async () => (await fetch(`${s.url}/metrics`, { headers: metricsAuth, tls: { rejectUnauthorized: false } })).text();
const counter = (text: string, name: string, labels: string) => Number(text.match(new RegExp(`^${name}\\{${labels}\\} (\\d+)`, "m"))?.[1] ?? 0);
const hello = (agent: SimAgent, fields: { nonce?: string; createdMs?: number } = {}) =>
  encodeFrame({ kind: FrameKind.Hello, agentId: agent.id, seq: ++agent.seq, batchId: 0, createdMs: fields.createdMs ?? Date.now(), items: 1 }, packMap({ nonce: fields.nonce ?? "", version: "sim" }), agent.privateKey);

describe("opening a session", () => {
  for (const protocol of ["http1.1", "http2", "http3"] as const) {
    test(`over ${protocol}: a signed hello buys a key; sealed frames are stored and counted as session-authenticated`, async () => {
      const b = await enroll(s.url, await s.token(), `sess-${protocol}`);
      const before = await scrape();
      const r = await requestSession(s.url, b, protocol);
      expect(r.status).toBe(200);
      expect(r.body.agentId).toBe(b.id);
      const sess = r.body.session!;
      expect(sess.id).toBeGreaterThan(0);
      expect(sess.id).toBeLessThan(2 ** 32);
      expect(Buffer.from(sess.key, "base64").length).toBe(32);
      expect(Math.abs(sess.expiresMs - (Date.now() + 3_600_000))).toBeLessThan(60_000);
      b.session = sessionAuth(sess);
      const res = await post(s.url, [metricsFrame(b, 20, 10, Date.now()), metricsFrame(b, 20, 10, Date.now() - 100_000)], protocol);
      expect(res.status).toBe(200);
      expect(res.body.acks!.map((x) => x.status)).toEqual(["ok", "ok"]);
      expect(await rows(b.id)).toBe(2);
      const after = await scrape();
      expect(counter(after, "ingest_frames_authenticated_total", 'auth="session"') - counter(before, "ingest_frames_authenticated_total", 'auth="session"')).toBe(2);
      const t = protocol === "http1.1" ? "h1" : protocol === "http2" ? "h2" : "h3";
      expect(counter(after, "ingest_sessions_opened_total", `transport="${t}"`) - counter(before, "ingest_sessions_opened_total", `transport="${t}"`)).toBe(1);
      expect(after).toMatch(/^ingest_sessions \d+/m);
    });
  }

  test("the answer is not cached, and the key appears nowhere else", async () => {
    const r = await fetch(`${s.url}/api/v1/session`, { method: "POST", body: hello(a) as Uint8Array<ArrayBuffer>, tls: { rejectUnauthorized: false } });
    expect(r.status).toBe(200);
    expect(r.headers.get("cache-control")).toBe("no-store");
    const { session } = (await r.json()) as any;
    expect(await scrape()).not.toContain(session.key);
    const [agentRow] = await s.db.sql`select * from agents where id = ${a.id}`;
    expect(JSON.stringify(agentRow)).not.toContain(session.key);
  });

  test("the WebSocket welcome carries a session, usable on the stream and on any other connection", async () => {
    const b = await enroll(s.url, await s.token(), "sess-ws");
    const st = await openStream(s.url, b);
    expect(st.session).toBeDefined();
    b.session = st.session;
    const m = await st.send(metricsFrame(b, 10, 10, Date.now()));
    expect(m.acks.map((x: any) => x.status)).toEqual(["ok"]);
    const r = await post(s.url, metricsFrame(b, 10, 10, Date.now() - 200_000));
    expect(r.body.acks![0]!.status).toBe("ok");
    st.close();
  });

  test("refusals: wrong kind, two frames, a stale clock, a nonce, a replay, a sealed hello, unknown and revoked agents, too large", async () => {
    const b = await enroll(s.url, await s.token(), "sess-refusals");
    const expectError = async (body: Uint8Array, status: number, code: string, message?: RegExp) => {
      const r = await requestSession(s.url, b, "http2", body);
      expect(r.status).toBe(status);
      expect(r.body.error!.code).toBe(code);
      if (message) expect(r.body.error!.message).toMatch(message);
      expect(r.body.session).toBeUndefined();
    };
    await expectError(metricsFrame(b, 2, 2, Date.now()), 400, "bad_hello", /hello frame \(kind 6\)/);
    await expectError(Buffer.concat([hello(b), hello(b)]), 400, "bad_hello", /exactly one/);
    await expectError(new Uint8Array([1, 2, 3]), 400, "bad_hello", /malformed/);
    await expectError(hello(b, { createdMs: Date.now() - 10 * 60_000 }), 400, "bad_hello", /server's clock/);
    await expectError(hello(b, { nonce: "abc" }), 400, "bad_hello", /empty nonce/);
    const once = hello(b);
    expect((await requestSession(s.url, b, "http2", once)).status).toBe(200);
    await expectError(once, 409, "replayed_seq");
    const sess = (await requestSession(s.url, b)).body.session!;
    const sealedHello = encodeFrame({ kind: FrameKind.Hello, agentId: b.id, seq: ++b.seq, batchId: 0, createdMs: Date.now(), items: 1 }, packMap({ nonce: "", version: "sim" }), sessionAuth(sess));
    await expectError(sealedHello, 401, "bad_signature", /sealed hello/);
    const ghost: SimAgent = { ...b, id: 999_999_999, seq: 0 };
    await expectError(hello(ghost), 401, "unknown_agent");
    const big = new Uint8Array(70_000);
    await expectError(big, 413, "too_large");
    await revokeAgent(s.db.sql, b.id);
    s.ingest.deps.directory.invalidate(b.id);
    await expectError(hello(b), 403, "revoked_agent");
  });

  test("a sealed hello cannot open a stream", async () => {
    const b = await enroll(s.url, await s.token(), "sess-ws-sealed");
    await openSession(s.url, b);
    const ws = new WebSocket(s.url.replace(/^https/, "wss") + "/api/v1/stream", { tls: { rejectUnauthorized: false } } as any);
    const msgs: any[] = [];
    const closed = new Promise<number>((r) => (ws.onclose = (e) => r(e.code)));
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data));
      msgs.push(m);
      if (m.type === "challenge") {
        const f = encodeFrame({ kind: FrameKind.Hello, agentId: b.id, seq: ++b.seq, batchId: 0, createdMs: Date.now(), items: 1 }, packMap({ nonce: m.nonce, version: "sim" }), b.session!);
        ws.send(f as Uint8Array<ArrayBuffer>);
      }
    };
    expect(await closed).toBe(4401);
    expect(msgs.find((m) => m.type === "error")?.code).toBe("bad_hello");
  });
});

describe("sealed frames", () => {
  test("a wrong key, a changed byte, a non-zero tail or an unknown session is refused alone; its neighbours are stored", async () => {
    const b = await enroll(s.url, await s.token(), "sess-bad");
    const sess = await openSession(s.url, b);
    const good = () => metricsFrame(b, 10, 10, Date.now() - (b.batch + 1) * 200_000);

    b.session = { id: sess.id, key: new Uint8Array(32).fill(7) };
    const wrongKey = good();
    b.session = sess;
    const flipped = good();
    flipped[100]! ^= 1;
    const tail = good();
    tail[tail.length - 1] = 1;
    b.session = { id: sess.id === 1 ? 2 : sess.id - 1, key: sess.key };
    const unknown = good();
    b.session = sess;
    const ok1 = good();
    const ok2 = good();

    const r = await post(s.url, [ok1, wrongKey, flipped, tail, unknown, ok2]);
    expect(r.status).toBe(401);
    expect(r.body.acks!.map((x) => x.status)).toEqual(["ok", "ok"]);
    expect(r.body.rejects!.map((x) => x.code)).toEqual(["bad_signature", "bad_signature", "bad_signature", "unknown_session"]);
    expect(r.body.rejects![3]!.message).toMatch(/open a new session or sign the frame/);
    expect(await rows(b.id)).toBe(2);
  });

  test("a resent sealed batch is acknowledged as dup, and the replay window applies as for signed frames", async () => {
    const b = await enroll(s.url, await s.token(), "sess-replay");
    await openSession(s.url, b);
    const f = metricsFrame(b, 10, 10, Date.now());
    expect((await post(s.url, f)).body.acks![0]!.status).toBe("ok");
    const replay = await post(s.url, f);
    expect(replay.status).toBe(409);
    expect(replay.body.rejects![0]!.code).toBe("replayed_seq");
    const resent = restampFrame(f, ++b.seq, Date.now(), b.session!);
    expect((await post(s.url, resent)).body.acks![0]!.status).toBe("dup");
    // the same spooled frame may go out signed instead: still the same batch
    const signed = restampFrame(f, ++b.seq, Date.now(), b.privateKey);
    expect((await post(s.url, signed)).body.acks![0]!.status).toBe("dup");
  });

  test("header rules: flag bit 1 without a session id, or a session id without the flag, is bad_flags", async () => {
    const b = await enroll(s.url, await s.token(), "sess-flags");
    await openSession(s.url, b);
    const noId = mapFrame(b, FrameKind.Inventory, { os: "x" });
    new DataView(noId.buffer).setUint32(60, 0, true);
    const noFlag = mapFrame(b, FrameKind.Inventory, { os: "y" });
    new DataView(noFlag.buffer).setUint16(6, new DataView(noFlag.buffer).getUint16(6, true) & ~2, true);
    const r = await post(s.url, [noId, noFlag]);
    expect(r.status).toBe(400);
    expect(r.body.rejects!.map((x) => x.code)).toEqual(["bad_flags", "bad_flags"]);
    expect(r.body.rejects![0]!.message).toMatch(/needs its session id/);
    expect(r.body.rejects![1]!.message).toMatch(/must be zero unless flag bit 1/);
  });

  test("revoking an agent ends its sessions at once on this node", async () => {
    const b = await enroll(s.url, await s.token(), "sess-revoke");
    const sess = await openSession(s.url, b);
    expect((await post(s.url, metricsFrame(b, 10, 10, Date.now()))).status).toBe(200);
    await revokeAgent(s.db.sql, b.id);
    s.ingest.deps.directory.invalidate(b.id); // what the cluster bus does on every node
    expect(s.ingest.deps.directory.sessions.key(b.id, sess.id)).toBeUndefined();
    // the sealed frame no longer authenticates: the answer for an unknown agent, not "revoked"
    const r = await post(s.url, metricsFrame(b, 10, 10, Date.now() - 300_000));
    expect(r.status).toBe(401);
    expect(r.body.rejects![0]!.code).toBe("unknown_agent");
    b.session = undefined; // signed, it proves the key: now it learns of the revocation
    const signed = await post(s.url, metricsFrame(b, 10, 10, Date.now() - 300_000));
    expect(signed.status).toBe(403);
    expect(signed.body.rejects![0]!.code).toBe("revoked_agent");
  });
});

describe("session table", () => {
  test("keeps the newest four per agent, at most `max` in all, and forgets expired ones", () => {
    let now = 1_000_000;
    const t = new SessionTable({ ttlMs: 1000, perAgent: 4, max: 10, now: () => now });
    const first = t.open(1);
    const five = [first, ...Array.from({ length: 4 }, () => t.open(1))];
    expect(t.key(1, first.id)).toBeUndefined(); // the fifth replaced the oldest
    for (const x of five.slice(1)) expect(t.key(1, x.id)).toEqual(x.key);
    expect(t.key(2, five[1]!.id)).toBeUndefined(); // a session belongs to its agent
    const fours: number[] = [];
    for (let agent = 2; agent <= 4; agent++) for (let i = 0; i < 3; i++) fours.push(t.open(agent).id);
    expect(t.size).toBe(10); // 4 + 3 x 3 = 13, trimmed to 10, oldest first: agent 1's
    expect(t.key(1, five[1]!.id)).toBeUndefined();
    expect(t.evicted).toBe(4);
    now += 999;
    const late = t.open(5);
    now += 2;
    expect(t.key(4, fours.at(-1)!)).toBeUndefined(); // expired
    expect(t.key(5, late.id)).toEqual(late.key);
    t.open(6); // sweeps the expired from the old end
    expect(t.size).toBe(2);
    t.drop(5);
    expect(t.key(5, late.id)).toBeUndefined();
    expect(t.size).toBe(1);
  });
});
