/**
 * Clients that have not authenticated cannot starve agents (issue #13): slow POSTs are cut by
 * the body pace and never hold a gate token, silent WebSockets are closed by the hello deadline
 * whatever they ping, and each address may have only so many unauthenticated clients in flight.
 * Real server, real TLS, real PostgreSQL; every attacker is bounded in time.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { metricsAuth, startTestServer, type TestServer } from "../../support/server.ts";
import { enroll, metricsFrame, newKeys, openStream, post, type SimAgent } from "../../support/sim-agent.ts";
import { silentSocket, slowPost } from "../../support/raw-clients.ts";
import { WHOLE_BODY_MAX } from "../../../src/ingest/body.ts";

async function metric(url: string, line: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: metricsAuth, tls: { rejectUnauthorized: false } } as RequestInit)).text();
  const m = text.split("\n").find((l) => l.startsWith(line + " "));
  return m ? Number(m.slice(line.length + 1)) : 0;
}

describe("slow and silent clients", () => {
  let s: TestServer;
  let a: SimAgent;
  beforeAll(async () => {
    s = await startTestServer({ SERVERMIND_BODY_GRACE_MS: "3000", SERVERMIND_BODY_MIN_RATE: "1024", SERVERMIND_HELLO_TIMEOUT_MS: "1000", SERVERMIND_MAX_UNAUTH_PER_IP: "1000" });
    a = await enroll(s.url, await s.token(), "slowloris-victim");
  }, 30_000);
  afterAll(async () => {
    await s?.close();
  }, 30_000);

  test("80 slowloris POSTs hold no gate token: an agent's frames are acknowledged at once over HTTP/2 and WebSocket; the slow requests get 408 at the pace deadline", async () => {
    const attackers = Array.from({ length: 80 }, () => slowPost({ port: s.port, everyMs: 300, maxMs: 15_000 }));
    for (let i = 0; i < 100 && s.ingest.deps.clients.inFlight < 80; i++) await Bun.sleep(50); // all connected and trickling
    expect(s.ingest.deps.clients.inFlight).toBe(80);
    expect(s.ingest.deps.gate.used).toBe(0);

    const t0 = performance.now();
    const r = await post(s.url, metricsFrame(a, 10, 10, Date.now()), "http2");
    expect(r.status).toBe(200);
    expect(r.body.acks!.map((x) => x.status)).toEqual(["ok"]);
    const st = await openStream(s.url, a);
    const ack = await st.send(metricsFrame(a, 10, 10, Date.now()));
    expect(ack.acks.map((x: { status: string }) => x.status)).toEqual(["ok"]);
    st.close();
    expect(performance.now() - t0).toBeLessThan(1500); // well inside the slow requests' grace

    const results = await Promise.all(attackers.map((x) => x.done));
    for (const res of results) {
      expect(res.gaveUp).toBe(false);
      expect(res.status).toBe(408);
      // grace 3 s + a few bytes at 1 kB/s, plus the timer's slack on a busy machine
      expect(res.closedMs).toBeGreaterThan(2500);
      expect(res.closedMs).toBeLessThan(8000);
    }
    expect(s.ingest.deps.clients.inFlight).toBe(0);
    expect(await metric(s.url, 'ingest_client_timeouts_total{kind="body_rate"}')).toBeGreaterThanOrEqual(80);
  }, 30_000);

  test("WebSockets that never say hello are closed with 4408 at the hello deadline although they ping; an authenticated stream stays", async () => {
    const before = await metric(s.url, 'ingest_client_timeouts_total{kind="hello"}');
    const silent = Array.from({ length: 20 }, () => silentSocket({ port: s.port, pingEveryMs: 150, maxMs: 10_000 }));
    const st = await openStream(s.url, a);
    const results = await Promise.all(silent.map((x) => x.done));
    for (const res of results) {
      expect(res.status).toBe(101);
      expect(res.gaveUp).toBe(false);
      expect(res.closeCode).toBe(4408);
      expect(res.closedMs).toBeGreaterThan(900);
      expect(res.closedMs).toBeLessThan(4000);
    }
    // the authenticated stream outlived the deadline and still works
    const ack = await st.send(metricsFrame(a, 5, 5, Date.now()));
    expect(ack.acks.map((x: { status: string }) => x.status)).toEqual(["ok"]);
    st.close();
    expect(await metric(s.url, 'ingest_client_timeouts_total{kind="hello"}')).toBe(before + 20);
    expect(s.ingest.deps.clients.inFlight).toBe(0);
  }, 30_000);

  test("session, enrollment and small ingest bodies (read whole) that trickle get 408 when the time their declared length allows is up: grace + length / rate", async () => {
    // 2,048 bytes at 1 kB/s after a 3 s grace: due by 5 s; the trickle sends a few bytes each 300 ms.
    // (Larger bodies are streamed and cut as soon as they fall behind: the slowloris test above.)
    expect(2048).toBeLessThanOrEqual(WHOLE_BODY_MAX);
    const slow = ["/api/v1/session", "/api/v1/enroll", "/api/v1/ingest"].map((path) => slowPost({ port: s.port, path, contentLength: 2048, everyMs: 300, maxMs: 15_000 }).done);
    for (const res of await Promise.all(slow)) {
      expect(res.gaveUp).toBe(false);
      expect(res.status).toBe(408);
      expect(res.closedMs).toBeGreaterThan(4500);
      expect(res.closedMs).toBeLessThan(9000);
    }
    expect(s.ingest.deps.clients.inFlight).toBe(0);
    expect(s.ingest.deps.gate.used).toBe(0);
  }, 20_000);

  test("a body of garbage is answered at its first bytes and the connection closed; it never waits for the declared length", async () => {
    const garbage = new TextEncoder().encode("GET / HTTP/1.1\r\n".repeat(8));
    const res = await slowPost({ port: s.port, firstBytes: garbage, everyMs: 300, maxMs: 10_000 }).done;
    expect(res.status).toBe(400);
    expect(res.closedMs).toBeLessThan(1500);
  });

  test("a request of forged frames is cut after four of them, without a gate token", async () => {
    const forger: SimAgent = { ...a, privateKey: newKeys().privateKey, seq: a.seq + 100, session: undefined };
    const frames = Array.from({ length: 6 }, () => metricsFrame(forger, 5, 5, Date.now()));
    const r = await post(s.url, frames, "http1.1");
    expect(r.status).toBe(401);
    expect(r.body.acks).toEqual([]);
    expect(r.body.rejects!.map((x) => x.code)).toEqual(["bad_signature", "bad_signature", "bad_signature", "bad_signature"]);
    expect(await metric(s.url, 'ingest_unauthenticated_cut_total{reason="budget"}')).toBeGreaterThanOrEqual(1);
  });
});

describe("per-address cap on unauthenticated clients", () => {
  let s: TestServer;
  let a: SimAgent;
  beforeAll(async () => {
    s = await startTestServer({ SERVERMIND_MAX_UNAUTH_PER_IP: "4", SERVERMIND_HELLO_TIMEOUT_MS: "20000", SERVERMIND_BODY_GRACE_MS: "20000", SERVERMIND_MAX_AUTH_FAILURES_PER_IP: "6" });
    a = await enroll(s.url, await s.token(), "cap-victim");
  }, 30_000);
  afterAll(async () => {
    await s?.close();
  }, 30_000);

  test("the fifth unauthenticated stream or request from one address gets 429; other addresses and agents are not affected; the count frees when they go", async () => {
    const held = Array.from({ length: 4 }, () => silentSocket({ port: s.port, localAddress: "127.0.0.5", maxMs: 15_000 }));
    expect(await Promise.all(held.map((h) => h.upgraded))).toEqual([101, 101, 101, 101]);

    const fifth = silentSocket({ port: s.port, localAddress: "127.0.0.5", maxMs: 5000 });
    expect(await fifth.upgraded).toBe(429);
    const slow = await slowPost({ port: s.port, localAddress: "127.0.0.5", maxMs: 5000 }).done;
    expect(slow.status).toBe(429);
    const session = await slowPost({ port: s.port, localAddress: "127.0.0.5", path: "/api/v1/session", contentLength: 100, maxMs: 5000 }).done;
    expect(session.status).toBe(429);

    const elsewhere = silentSocket({ port: s.port, localAddress: "127.0.0.6", maxMs: 5000 });
    expect(await elsewhere.upgraded).toBe(101);
    elsewhere.close();
    expect((await post(s.url, metricsFrame(a, 5, 5, Date.now()))).status).toBe(200);

    for (const h of held) h.close();
    await Promise.all(held.map((h) => h.done));
    await Bun.sleep(200);
    const again = silentSocket({ port: s.port, localAddress: "127.0.0.5", maxMs: 5000 });
    expect(await again.upgraded).toBe(101);
    again.close();
    await again.done;
    const text = await (await fetch(`${s.url}/metrics`, { headers: metricsAuth, tls: { rejectUnauthorized: false } } as RequestInit)).text();
    expect(text).toContain('ingest_unauthenticated_refused_total{reason="per_ip_cap",transport="wss"} 1');
    expect(text).toContain('ingest_unauthenticated_refused_total{reason="per_ip_cap",transport="https"} 2');
  }, 30_000);

  test("an address that keeps failing to authenticate is refused without checking for the rest of the second", async () => {
    const forger: SimAgent = { ...a, privateKey: newKeys().privateKey, seq: a.seq + 1000, session: undefined };
    const forged = Array.from({ length: 4 }, () => metricsFrame(forger, 5, 5, Date.now()));
    let answer: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 6 && answer?.status !== 429; i++) answer = await post(s.url, forged, "http1.1");
    expect(answer!.status).toBe(429);
    expect(answer!.body.error!.code).toBe("too_many_failures");
    expect(answer!.retryAfter).toBe("1");
    // within the same second, the next request is refused at its first frame (the server runs in
    // this process, so its one-second window is ours: retry if the pair straddled a boundary)
    for (let i = 0; i < 5; i++) {
      const w = Math.floor(performance.now() / 1000);
      const first = await post(s.url, forged, "http1.1");
      const next = await post(s.url, forged, "http1.1");
      if (Math.floor(performance.now() / 1000) !== w) continue;
      expect(first.status).toBe(429);
      expect(next.status).toBe(429);
      expect(next.body.error!.code).toBe("too_many_failures");
      break;
    }
    await Bun.sleep(1100); // the next second: checked again, and a real agent gets through
    expect((await post(s.url, metricsFrame(a, 5, 5, Date.now()))).status).toBe(200);
    expect(await metric(s.url, 'ingest_unauthenticated_refused_total{reason="failures",transport="https"}')).toBeGreaterThanOrEqual(1);
  });
});
