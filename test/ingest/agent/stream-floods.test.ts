/**
 * Floods on the agent stream (/api/v1/stream) from clients that write as fast as they can and
 * never read. Before the welcome, a text message closes the stream 4401 (it was answered with
 * a bad_message error each time and left open: 4 such sockets kept the server at 0.85 core and
 * grew it by 340 MB until the hello deadline). After the welcome, a peer that lets more than
 * STREAM_BACKPRESSURE_BYTES of the server's answers pile up and takes none for STREAM_DEAF_MS is
 * cut, one that reads slowly is not (Bun kept 16 MiB per stream
 * and then dropped answers silently, acks included, and never closed it). An honest agent is
 * served meanwhile. The server runs as its own process: its CPU time comes from /proc.
 */
import { expect, test } from "bun:test";
import { startServerProcess } from "../../support/server-process.ts";
import { maskedFrame, rawStream } from "../../support/raw-clients.ts";
import { enroll, mapFrame, metricsFrame, openStream } from "../../support/sim-agent.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import { createActivationToken } from "../../../src/ingest/agent/enroll.ts";
import { cpuSeconds } from "../../../bench/support.ts";
import { STREAM_BACKPRESSURE_BYTES, STREAM_DEAF_MS, stoppedReading } from "../../../src/ingest/agent/stream.ts";

/** 1,000 one-byte text messages: 7 kB on the wire, each of them answered before the fix. */
const TINY_TEXT = Buffer.concat(Array.from({ length: 1000 }, () => maskedFrame(1, Buffer.from("x"))));

/** Writes `chunk` to each stream that is still open, every few ms, until `ms` is up or all are closed. */
async function flood(streams: Array<ReturnType<typeof rawStream>>, chunk: Uint8Array, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end && streams.some((s) => !s.closed)) {
    for (const s of streams) if (!s.closed) s.write(chunk);
    await Bun.sleep(5);
  }
}

test("a peer that reads slowly keeps its stream through a large backlog; one that takes nothing for STREAM_DEAF_MS is cut", () => {
  // a file.write command of 4 MiB (5.6 MB as base64) to an agent on a 100 kB/s link, an ack every 100 ms
  const slow: { backlog?: { least: number; at: number } } = {};
  let unread = 5_600_000;
  let t = 0;
  for (; unread > 0; t += 100) {
    unread = Math.max(0, unread - 10_000) + 200;
    expect({ t, cut: stoppedReading(slow, unread, t) }).toEqual({ t, cut: false });
    if (unread <= 200) break;
  }
  expect(t).toBeGreaterThan(50_000); // it took the link most of a minute, and the stream stayed
  expect(slow.backlog).toBeUndefined();
  // the same backlog, and the peer takes nothing: cut once it has made no progress for STREAM_DEAF_MS
  const deaf: { backlog?: { least: number; at: number } } = {};
  unread = STREAM_BACKPRESSURE_BYTES - 1000;
  let cutAt = -1;
  for (t = 0; t < 60_000 && cutAt < 0; t += 100) {
    unread += 200;
    if (stoppedReading(deaf, unread, t)) cutAt = t;
  }
  const over = 500; // the first send over the limit: 1000 / 200 sends in, at t = 500 ms
  expect(cutAt).toBeGreaterThan(over + STREAM_DEAF_MS - 100);
  expect(cutAt).toBeLessThanOrEqual(over + STREAM_DEAF_MS + 100);
});

test("text before the hello closes the stream 4401 at once; a flood of it costs the server next to nothing", async () => {
  const s = await startServerProcess();
  try {
    const polite = rawStream({ port: s.port, maxMs: 10_000 });
    expect((await polite.next()).type).toBe("challenge");
    polite.write(maskedFrame(1, Buffer.from('{"type":"command-result","id":"x","result":{}}')));
    expect(await polite.next()).toMatchObject({ type: "error", code: "bad_hello" });
    expect(await polite.done).toMatchObject({ closeCode: 4401, gaveUp: false });

    const deaf = Array.from({ length: 4 }, () => rawStream({ port: s.port, maxMs: 10_000 }));
    for (const d of deaf) expect((await d.next()).type).toBe("challenge");
    for (const d of deaf) d.deafen();
    const cpu0 = cpuSeconds(s.pid);
    await flood(deaf, TINY_TEXT, 4000);
    const cores = (cpuSeconds(s.pid) - cpu0) / 4;
    for (const d of deaf) d.close();
    expect(cores).toBeLessThan(0.25); // 0.85 before
  } finally {
    await s.stop();
  }
}, 30_000);

test("an agent that stops reading while the server answers it is cut once its backlog passes the limit; another agent is served meanwhile", async () => {
  const s = await startServerProcess();
  try {
    const token = async () => (await createActivationToken(s.db.sql, { createdBy: "test" })).token;
    const deaf = await Promise.all([1, 2].map(async (i) => {
      const a = await enroll(s.url, await token(), `deaf-${i}`);
      const d = rawStream({ port: s.port, maxMs: 20_000 });
      const { nonce } = await d.next();
      d.write(maskedFrame(2, mapFrame(a, FrameKind.Hello, { nonce, version: "sim" }, 0)));
      expect((await d.next()).type).toBe("welcome");
      d.deafen();
      return d;
    }));
    const honest = await enroll(s.url, await token(), "honest");
    const stream = await openStream(s.url, honest);

    // text the server answers (bad_message) and never reads back: ~40 bytes in, ~200 out
    const attack = flood(deaf, TINY_TEXT, 15_000);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const ack = await stream.send(metricsFrame(honest, 5, 5, Date.now()));
      expect(ack.acks[0].status).toBe("ok");
      waits.push(performance.now() - t);
      await Bun.sleep(100);
    }
    await attack;
    const ends = await Promise.all(deaf.map((d) => d.done));
    console.log(`deaf agents cut after ${ends.map((e) => (e.closedMs / 1000).toFixed(1)).join(", ")} s; the honest agent's acks took at most ${Math.max(...waits).toFixed(0)} ms`);
    for (const e of ends) {
      // cut by the server within seconds (its close frame is not read: the socket just ends)
      expect(e.gaveUp).toBe(false);
      expect(e.closedMs).toBeLessThan(10_000);
    }
    // served throughout: at worst an ack waits until the deaf peers are cut (1.3-2.0 s measured alone)
    expect(Math.max(...waits)).toBeLessThan(Math.max(...ends.map((e) => e.closedMs)) + 2000);
    stream.close();
  } finally {
    await s.stop();
  }
}, 40_000);
