/**
 * HTTP/2 abuse on the one TLS port, tried from outside with raw frames: rapid reset
 * (CVE-2023-44487: HEADERS then RST_STREAM, stream after stream) and a CONTINUATION flood (a
 * header list that never ends). Each must end the abusive connection with GOAWAY
 * ENHANCE_YOUR_CALM (error code 11) while honest clients keep being answered. The protection is
 * Bun's own HTTP/2 server's (1.4.4); this test keeps it from being lost in an upgrade.
 * Measured by hand (docs/operations.md, "Slow and unauthenticated clients"): a rapid reset cost
 * 0.2 s of CPU before the GOAWAY, a CONTINUATION flood 0.01 s.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../support/server.ts";
import { H2, h2Frame, h2GetHeaders, rawH2 } from "../support/raw-clients.ts";

const ENHANCE_YOUR_CALM = 11;
let s: TestServer;

beforeAll(async () => {
  s = await startTestServer();
}, 60_000);
afterAll(async () => {
  await s?.close();
});

const port = () => Number(new URL(s.url).port);

/** An honest client's /healthz over HTTP/2 while `busy` runs: the statuses and the slowest answer. */
async function honestDuring<T>(busy: Promise<T>): Promise<{ result: T; statuses: number[]; maxMs: number }> {
  let done = false;
  const statuses: number[] = [];
  let maxMs = 0;
  const honest = (async () => {
    while (!done || statuses.length < 3) {
      const t = performance.now();
      const r = await fetch(`${s.url}/healthz`, { tls: { rejectUnauthorized: false }, protocol: "http2" } as RequestInit);
      await r.arrayBuffer();
      statuses.push(r.status);
      maxMs = Math.max(maxMs, performance.now() - t);
      await Bun.sleep(20);
    }
  })();
  const result = await busy;
  done = true;
  await honest;
  return { result, statuses, maxMs };
}

test("rapid reset (HEADERS then RST_STREAM, 200 streams a write) ends the connection with GOAWAY ENHANCE_YOUR_CALM; honest clients are answered meanwhile", async () => {
  const c = rawH2({ port: port(), maxMs: 15_000 });
  await c.ready;
  const headers = h2GetHeaders("/healthz");
  const attack = (async () => {
    let stream = 1;
    while (!c.closed && stream < 1_000_000) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 200; i++, stream += 2) {
        batch.push(h2Frame(H2.HEADERS, H2.END_HEADERS | H2.END_STREAM, stream, headers), h2Frame(H2.RST_STREAM, 0, stream, Buffer.of(0, 0, 0, 8))); // CANCEL
      }
      c.write(Buffer.concat(batch));
      await Bun.sleep(1);
    }
    return { ...(await c.done), streams: (stream - 1) / 2 };
  })();
  const { result, statuses, maxMs } = await honestDuring(attack);
  expect({ gaveUp: result.gaveUp, goaway: result.goaway }).toEqual({ gaveUp: false, goaway: ENHANCE_YOUR_CALM });
  console.log(`rapid reset: GOAWAY ${result.goaway} after ${result.streams} streams, ${result.closedMs.toFixed(0)} ms; honest /healthz ${statuses.length}x, slowest ${maxMs.toFixed(0)} ms`);
  expect(result.streams).toBeLessThan(100_000);
  expect(statuses.every((x) => x === 200)).toBe(true);
  expect(maxMs).toBeLessThan(3000);
}, 30_000);

test("a CONTINUATION flood (a header list that never ends) ends the connection with GOAWAY ENHANCE_YOUR_CALM", async () => {
  const c = rawH2({ port: port(), maxMs: 15_000 });
  await c.ready;
  // literal header fields with new names, without indexing (RFC 7541 6.2.2), 100-byte values
  const field = Buffer.concat([Buffer.of(0x00, 5), Buffer.from("x-pad"), Buffer.of(100), Buffer.alloc(100, 0x61)]);
  const fragment = Buffer.concat(Array.from({ length: 100 }, () => field));
  const attack = (async () => {
    c.write(h2Frame(H2.HEADERS, 0, 1, h2GetHeaders("/healthz"))); // no END_HEADERS: CONTINUATION must follow
    let sent = 0;
    while (!c.closed && sent < 100_000) {
      c.write(Buffer.concat(Array.from({ length: 20 }, () => h2Frame(H2.CONTINUATION, 0, 1, fragment))));
      sent += 20;
      await Bun.sleep(1);
    }
    return { ...(await c.done), sent };
  })();
  const { result, statuses, maxMs } = await honestDuring(attack);
  expect({ gaveUp: result.gaveUp, goaway: result.goaway }).toEqual({ gaveUp: false, goaway: ENHANCE_YOUR_CALM });
  console.log(`CONTINUATION flood: GOAWAY ${result.goaway} after ${result.sent} frames (${((result.sent * fragment.length) / 2 ** 20).toFixed(1)} MiB), ${result.closedMs.toFixed(0)} ms; honest /healthz ${statuses.length}x, slowest ${maxMs.toFixed(0)} ms`);
  expect(result.sent * fragment.length).toBeLessThan(64 * 2 ** 20); // cut long before 64 MB of headers
  expect(statuses.every((x) => x === 200)).toBe(true);
  expect(maxMs).toBeLessThan(3000);
}, 30_000);
