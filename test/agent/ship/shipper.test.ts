/**
 * The ship loop against the real server (real TLS, embedded PostgreSQL): enrollment with a
 * pinned certificate, each transport, the HTTP/3 -> WebSocket fallback, the CONNECT proxy, and
 * servers that answer garbage or nothing.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
setDefaultTimeout(30_000);
import { startTestServer, type TestServer } from "../../support/server.ts";
import { startConnectProxy } from "../../support/connect-proxy.ts";
import { enroll, privateKeyOf } from "../../../agent/identity/enroll.ts";
import { pinnedTls, PinError } from "../../../agent/ship/pin.ts";
import { createShipper, type ShipperOptions } from "../../../agent/ship/shipper.ts";
import type { Spool } from "../../../agent/spool/spool.ts";
import { tempSpools } from "../../support/spools.ts";
import { packMetrics } from "../../../src/ingest/frame/encode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import { createSelfSigned } from "../../../src/tls/self-signed.ts";
import type { Identity } from "../../../agent/identity/store.ts";

let s: TestServer;
let identity: Identity;
beforeAll(async () => {
  s = await startTestServer();
  identity = (await enroll({ serverUrl: s.url, token: await s.token(), fingerprint: s.fingerprint, version: "test" })).identity;
});
afterAll(() => s.close());

// each test stops its shippers; after the file's tests their spools are closed and their temp dirs removed
const spools = tempSpools("sm-ship-");
afterAll(() => spools.closeAll());
const newSpool = spools.make;

let tsBase = Date.now() - 3_600_000;
function addMetrics(spool: Spool, n: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const ts = Float64Array.of((tsBase += 1000));
    ids.push(spool.append({ kind: FrameKind.Metrics, items: 2, createdMs: ts[0]!, body: packMetrics({ ts, names: ["test.a", "test.b"], values: Float64Array.of(i, i * 2) }) }));
  }
  return ids;
}

function shipper(spool: Spool, over: Partial<ShipperOptions> = {}) {
  return createShipper({
    spool, agentId: identity.agentId, key: privateKeyOf(identity), serverUrl: identity.serverUrl,
    tls: pinnedTls(identity.serverCertPem, identity.fingerprint), fingerprint: identity.fingerprint, transport: "wss",
    maxFramesPerRequest: 8, replayPerSecond: 1000, quicProbeMs: 60_000, requestTimeoutMs: 5000,
    heartbeatMs: 60_000, heartbeat: () => ({ version: "test" }), version: "test", log: () => {},
    ...over,
  });
}

async function until(cond: () => boolean | Promise<boolean>, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await Bun.sleep(25);
  }
  throw new Error("condition not reached in time");
}

async function committed(ids: number[]): Promise<number> {
  const [r] = await s.db.sql`select count(*)::int as n from ingest_batches where agent_id = ${identity.agentId} and batch_id in ${s.db.sql(ids)}`;
  return r!.n;
}

describe("enrollment", () => {
  test("a wrong fingerprint is refused before the token is sent; the token still works after", async () => {
    const token = await s.token();
    await expect(enroll({ serverUrl: s.url, token, fingerprint: "aa".repeat(32), version: "test" })).rejects.toThrow(PinError);
    const ok = await enroll({ serverUrl: s.url, token, fingerprint: s.fingerprint.toUpperCase().match(/../g)!.join(":"), version: "test" });
    expect(ok.identity.agentId).toBeGreaterThan(0);
    expect(ok.trustedOnFirstUse).toBe(false);
  });

  test("a used token is refused with the server's error", async () => {
    const token = await s.token();
    await enroll({ serverUrl: s.url, token, version: "test" });
    await expect(enroll({ serverUrl: s.url, token, version: "test" })).rejects.toThrow(/bad_token/);
  });
});

describe("transports", () => {
  for (const transport of ["wss", "http2"] as const) {
    test(`${transport}: every spooled batch is committed, acknowledged and removed`, async () => {
      const spool = newSpool();
      const ids = addMetrics(spool, 20);
      const sh = shipper(spool, { transport });
      sh.start();
      await until(() => spool.stats().frames === 0);
      expect(sh.status().transport).toBe(transport === "http2" ? "h2" : "wss");
      expect(sh.status().ackedFrames).toBe(20);
      expect(await committed(ids)).toBe(20);
      await sh.stop();
    });
  }

  test("auto: HTTP/3 first, pinned through node:quic", async () => {
    const spool = newSpool();
    const ids = addMetrics(spool, 3);
    const sh = shipper(spool, { transport: "auto" });
    sh.start();
    await until(() => spool.stats().frames === 0);
    expect(sh.status().transport).toBe("h3");
    expect(sh.status().h3).toBe("ok");
    expect(await committed(ids)).toBe(3);
    await sh.stop();
  });

  test("auto: when QUIC gets no answer (server without HTTP/3) it falls back to WebSocket within seconds", async () => {
    const tcpOnly = await startTestServer({ SERVERMIND_HTTP3: "false" });
    try {
      const id = (await enroll({ serverUrl: tcpOnly.url, token: await tcpOnly.token(), fingerprint: tcpOnly.fingerprint, version: "test" })).identity;
      const spool = newSpool();
      addMetrics(spool, 3);
      const started = Date.now();
      const logs: string[] = [];
      const sh = shipper(spool, {
        transport: "auto", agentId: id.agentId, key: privateKeyOf(id), serverUrl: id.serverUrl,
        tls: pinnedTls(id.serverCertPem, id.fingerprint), fingerprint: id.fingerprint, log: (m) => logs.push(m),
      });
      sh.start();
      await until(() => spool.stats().frames === 0);
      const took = Date.now() - started;
      await sh.stop();
      expect(took).toBeLessThan(5000);
      expect(sh.status().h3).toBe("failed");
      expect(sh.status().transport).toBe("wss");
      // whoever runs the agent by hand sees the fallback, then the connection, each once
      expect(logs.filter((l) => l.startsWith("connected to"))).toEqual([`connected to ${id.serverUrl} over WebSocket`]);
      expect(logs.some((l) => l.startsWith("HTTP/3 unavailable"))).toBe(true);
      const [r] = await tcpOnly.db.sql`select count(*)::int as n from ingest_batches where agent_id = ${id.agentId}`;
      expect(r!.n).toBe(3);
    } finally {
      await tcpOnly.close();
    }
  });

  test("after falling back to WebSocket, HTTP/3 is probed again and taken back", async () => {
    const { connectQuicTransport } = await import("../../../agent/ship/quic-transport.ts");
    const { connectWsTransport } = await import("../../../agent/ship/ws-transport.ts");
    const { TransportError } = await import("../../../agent/ship/transport.ts");
    const { encodeFrame, packMap } = await import("../../../src/ingest/frame/encode.ts");
    const spool = newSpool();
    const key = privateKeyOf(identity);
    const tls = pinnedTls(identity.serverCertPem, identity.fingerprint);
    let h3Attempts = 0;
    const used: string[] = [];
    const sh = shipper(spool, {
      transport: "auto", quicProbeMs: 300,
      connect: async (kind) => {
        used.push(kind);
        if (kind === "h3") {
          // UDP "blocked" on the first attempt only
          if (h3Attempts++ === 0) throw new TransportError("h3: no QUIC answer (simulated blocked UDP)");
          return connectQuicTransport({ baseUrl: identity.serverUrl, fingerprint: identity.fingerprint, timeoutMs: 3000 });
        }
        return connectWsTransport({
          baseUrl: identity.serverUrl, tls, timeoutMs: 3000,
          hello: (nonce) => encodeFrame({ kind: FrameKind.Hello, agentId: identity.agentId, seq: spool.nextSeq(), batchId: 0, createdMs: Date.now(), items: 1 }, packMap({ nonce, version: "test" }), key),
        });
      },
    });
    sh.start();
    const ids: number[] = [];
    for (let i = 0; i < 20 && sh.status().transport !== "h3"; i++) {
      ids.push(...addMetrics(spool, 1));
      sh.wake();
      await Bun.sleep(100);
    }
    await until(() => spool.stats().frames === 0);
    await sh.stop();
    expect(used.slice(0, 3)).toEqual(["h3", "wss", "h3"]);
    expect(sh.status().transport).toBe("h3");
    expect(await committed(ids)).toBe(ids.length);
  });

  test("a pin that does not match the server refuses every transport and keeps the data", async () => {
    const other = createSelfSigned(["127.0.0.1", "localhost"]);
    for (const transport of ["wss", "http2", "http3"] as const) {
      const spool = newSpool();
      addMetrics(spool, 2);
      const errors: string[] = [];
      const sh = shipper(spool, { transport, tls: pinnedTls(other.certPem, other.fingerprint), fingerprint: other.fingerprint, log: (m) => errors.push(m) });
      sh.start();
      await until(() => errors.length > 0);
      await sh.stop();
      expect(spool.stats().frames).toBe(2);
      expect(sh.status().ackedFrames).toBe(0);
    }
  });

  test("WebSocket through an HTTPS_PROXY CONNECT proxy", async () => {
    const proxy = await startConnectProxy();
    const old = process.env.HTTPS_PROXY;
    process.env.HTTPS_PROXY = proxy.url;
    try {
      const spool = newSpool();
      const ids = addMetrics(spool, 4);
      const sh = shipper(spool, { transport: "wss" });
      sh.start();
      await until(() => spool.stats().frames === 0);
      await sh.stop();
      expect(proxy.tunnels.length).toBeGreaterThanOrEqual(1);
      expect(proxy.tunnels[0]).toBe(`127.0.0.1:${s.port}`);
      expect(await committed(ids)).toBe(4);
    } finally {
      if (old === undefined) delete process.env.HTTPS_PROXY;
      else process.env.HTTPS_PROXY = old;
      await proxy.close();
    }
  });

  test("resends after a lost answer are stored once (same batch id, new sequence number)", async () => {
    const spool = newSpool();
    const ids = addMetrics(spool, 2);
    // first transmission reaches the server but its answer is "lost"
    let first = true;
    const sh = shipper(spool, {
      transport: "http2",
      connect: async () => {
        const { createHttpTransport } = await import("../../../agent/ship/http-transport.ts");
        const real = createHttpTransport({ baseUrl: identity.serverUrl, protocol: "http2", tls: pinnedTls(identity.serverCertPem, identity.fingerprint), timeoutMs: 5000 });
        return {
          name: "h2",
          async send(frames) {
            const r = await real.send(frames);
            if (first) {
              first = false;
              throw new (await import("../../../agent/ship/transport.ts")).TransportError("answer lost");
            }
            return r;
          },
          close: () => real.close(),
        };
      },
      random: () => 0,
    });
    sh.start();
    await until(() => spool.stats().frames === 0);
    await sh.stop();
    expect(await committed(ids)).toBe(2);
    // the blocks of every committed metrics batch of this agent, none twice: the resent batch was not stored again
    const [r] = await s.db.sql`select (select count(distinct batch_id)::int from metric_blocks where agent_id = ${identity.agentId}) as blocks,
      (select count(*)::int from ingest_batches where agent_id = ${identity.agentId} and kind = 1) as batches,
      (select count(*)::int from (select batch_id, block from metric_blocks where agent_id = ${identity.agentId} group by 1, 2 having count(*) > 1) d) as twice`;
    expect(r!.blocks).toBe(r!.batches);
    expect(r!.twice).toBe(0);
  });
});

describe("flow control", () => {
  test("a backlog is replayed in order at the configured rate", async () => {
    const spool = newSpool();
    const ids = addMetrics(spool, 24);
    const started = Date.now();
    const sh = shipper(spool, { transport: "wss", maxFramesPerRequest: 8, replayPerSecond: 16 });
    sh.start();
    await until(() => spool.stats().frames === 0);
    const took = Date.now() - started;
    await sh.stop();
    // 8 frames, then 500 ms, 8 frames, 500 ms, 8 frames
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(took).toBeLessThan(5000);
    const rows = await s.db.sql`select batch_id from ingest_batches where agent_id = ${identity.agentId} and batch_id in ${s.db.sql(ids)} order by committed_at, batch_id`;
    expect(rows.map((r) => Number(r.batch_id))).toEqual(ids);
  });

  test("a revoked agent stops sending, reports it, and keeps its data", async () => {
    const { revokeAgent } = await import("../../../src/ingest/agent/enroll.ts");
    const revoked = (await enroll({ serverUrl: s.url, token: await s.token(), fingerprint: s.fingerprint, version: "test" })).identity;
    await revokeAgent(s.db.sql, revoked.agentId);
    for (const transport of ["http2", "wss"] as const) {
      const spool = newSpool();
      addMetrics(spool, 3);
      const logs: string[] = [];
      const sh = shipper(spool, { transport, agentId: revoked.agentId, key: privateKeyOf(revoked), log: (m) => logs.push(m) });
      sh.start();
      // over HTTP the refused session request is logged first; the frames' refusal follows
      await until(() => logs.some((l) => l.includes("refuses this agent's identity")));
      const st = sh.status();
      await sh.stop();
      expect(st.lastError).toMatch(/revoked/);
      expect(spool.stats().frames).toBe(3);
      expect(st.state).toBe("rejected");
    }
  });
});

describe("sessions", () => {
  const metrics = () => s.ingest.deps.metrics;
  const authed = (auth: "session" | "signature") => metrics().frameAuth.get({ auth });
  const SHORT = { wss: "wss", http2: "h2", http3: "h3" } as const;

  for (const transport of ["wss", "http2", "http3"] as const) {
    test(`${transport}: frames are accepted as sealed, and after the server loses the session nothing is lost or signed`, async () => {
      // an agent of its own: the server keeps 4 sessions per agent
      const id = (await enroll({ serverUrl: s.url, token: await s.token(), fingerprint: s.fingerprint, version: "test" })).identity;
      const stored = async (ids: number[]) =>
        (await s.db.sql`select count(*)::int as n from ingest_batches where agent_id = ${id.agentId} and batch_id in ${s.db.sql(ids)}`)[0]!.n as number;
      const spool = newSpool();
      const logs: string[] = [];
      const sh = shipper(spool, { transport, agentId: id.agentId, key: privateKeyOf(id), log: (m) => logs.push(m) });
      const sealed0 = authed("session");
      const signed0 = authed("signature");
      const opened0 = metrics().sessionsOpened.get({ transport: SHORT[transport] });
      const unknown0 = metrics().rejects.get({ reason: "unknown_session" });

      const ids = addMetrics(spool, 10);
      sh.start();
      await until(() => spool.stats().frames === 0);
      expect(await stored(ids)).toBe(10);
      let st = sh.status();
      expect(st).toMatchObject({ state: "connected", transport: SHORT[transport], session: "open", sessionsOpened: 1, unknownSessionRejects: 0 });
      expect(st.sealedFrames).toBe(st.sentFrames); // 10 batches and a heartbeat
      expect(authed("session") - sealed0).toBe(st.sentFrames);
      expect(authed("signature") - signed0).toBe(0);
      expect(metrics().sessionsOpened.get({ transport: SHORT[transport] }) - opened0).toBe(1);

      // the node forgets the agent's sessions, as a restart would
      s.ingest.deps.directory.sessions.drop(id.agentId);
      const lostAt = Date.now();
      const more = addMetrics(spool, 10);
      sh.wake();
      await until(() => spool.stats().frames === 0, 10_000);
      expect(Date.now() - lostAt).toBeLessThan(5000); // not the minute an identity problem waits
      expect(await stored(more)).toBe(10);
      st = sh.status();
      expect(st).toMatchObject({ state: "connected", session: "open", sessionsOpened: 2 });
      expect(st.unknownSessionRejects).toBeGreaterThan(0);
      expect(metrics().rejects.get({ reason: "unknown_session" }) - unknown0).toBe(st.unknownSessionRejects);
      // everything else went sealed, under the new session: not a single frame was signed
      expect(st.sealedFrames).toBe(st.sentFrames);
      expect(authed("session") - sealed0).toBe(st.sentFrames - st.unknownSessionRejects);
      expect(authed("signature") - signed0).toBe(0);
      expect(metrics().sessionsOpened.get({ transport: SHORT[transport] }) - opened0).toBe(2);
      expect(logs.join("\n")).toContain("unknown_session");
      await sh.stop();
    }, 30_000);
  }

  test("auto: HTTP/3 opens a session by POST; after a fallback the WebSocket's welcome brings its own", async () => {
    const { connectQuicTransport } = await import("../../../agent/ship/quic-transport.ts");
    const { connectWsTransport } = await import("../../../agent/ship/ws-transport.ts");
    const { encodeFrame, packMap } = await import("../../../src/ingest/frame/encode.ts");
    const id = (await enroll({ serverUrl: s.url, token: await s.token(), fingerprint: s.fingerprint, version: "test" })).identity;
    const key = privateKeyOf(id);
    const spool = newSpool();
    let h3: Awaited<ReturnType<typeof connectQuicTransport>> | undefined;
    const sh = shipper(spool, {
      transport: "auto", quicProbeMs: 60_000, agentId: id.agentId, key,
      connect: async (kind) => {
        if (kind === "h3") return (h3 = await connectQuicTransport({ baseUrl: id.serverUrl, fingerprint: id.fingerprint, timeoutMs: 3000 }));
        return connectWsTransport({
          baseUrl: id.serverUrl, tls: pinnedTls(id.serverCertPem, id.fingerprint), timeoutMs: 3000,
          hello: (nonce) => encodeFrame({ kind: FrameKind.Hello, agentId: id.agentId, seq: spool.nextSeq(), batchId: 0, createdMs: Date.now(), items: 1 }, packMap({ nonce, version: "test" }), key),
        });
      },
    });
    const signed0 = authed("signature");
    addMetrics(spool, 3);
    sh.start();
    await until(() => spool.stats().frames === 0);
    expect(sh.status()).toMatchObject({ transport: "h3", session: "open", sessionsOpened: 1 });
    h3!.close(); // the QUIC connection goes away: the next send fails and falls back
    const more = addMetrics(spool, 3);
    sh.wake();
    await until(() => spool.stats().frames === 0);
    const st = sh.status();
    await sh.stop();
    expect(st).toMatchObject({ transport: "wss", h3: "failed", session: "open", sessionsOpened: 2, unknownSessionRejects: 0 });
    expect(st.sealedFrames).toBe(st.sentFrames);
    expect(authed("signature") - signed0).toBe(0);
    const [r] = await s.db.sql`select count(*)::int as n from ingest_batches where agent_id = ${id.agentId} and batch_id in ${s.db.sql(more)}`;
    expect(r!.n).toBe(3);
  }, 30_000);
});

describe("misbehaving servers", () => {
  const cert = createSelfSigned(["127.0.0.1", "localhost"]);
  for (const mode of ["garbage", "slow", "bad-json-shape", "close"] as const) {
    test(`a server that answers ${mode} does not crash or stall the loop`, async () => {
      let hits = 0;
      const bad = Bun.serve({
        hostname: "127.0.0.1", port: 0, tls: { cert: cert.certPem, key: cert.keyPem },
        async fetch(req, srv) {
          hits++;
          if (new URL(req.url).pathname === "/api/v1/stream") {
            if (srv.upgrade(req, { data: undefined })) return undefined;
          }
          if (mode === "slow") await Bun.sleep(3000);
          if (mode === "close") return new Response(null, { status: 502 });
          return new Response(mode === "bad-json-shape" ? '{"acks":"yes"' : "\u0000\u0001garbage", { status: 200 });
        },
        websocket: {
          open(ws) {
            if (mode === "garbage") ws.send("not json at all");
            else if (mode === "close") ws.close(1011, "bye");
            else ws.send(JSON.stringify({ type: "challenge", nonce: "n" }));
          },
          message(ws) {
            if (mode === "bad-json-shape") ws.send(JSON.stringify({ type: "welcome" }));
          },
        },
      });
      try {
        for (const transport of ["http2", "wss"] as const) {
          const spool = newSpool();
          addMetrics(spool, 3);
          const logs: string[] = [];
          const sh = shipper(spool, {
            transport, serverUrl: `https://127.0.0.1:${bad.port}`, tls: pinnedTls(cert.certPem, cert.fingerprint),
            requestTimeoutMs: 700, log: (m) => logs.push(m), random: () => 0,
          });
          sh.start();
          await until(() => logs.length >= 2, 10_000);
          const st = sh.status();
          await sh.stop();
          expect(st.state).toBe("backoff");
          expect(st.lastError).not.toBeNull();
          expect(spool.stats().frames).toBe(3); // nothing was dropped
          expect(st.ackedFrames).toBe(0);
        }
        expect(hits).toBeGreaterThan(0);
      } finally {
        bad.stop(true);
      }
    });
  }
});
