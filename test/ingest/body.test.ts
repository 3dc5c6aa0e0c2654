/**
 * BodyReader's two ways of reading (src/ingest/body.ts): a body that declares WHOLE_BODY_MAX
 * bytes or less arrives in one piece; a longer one, or one without a length, chunk by chunk.
 * Both give the same bytes, refuse a declared length over the limit before reading, and cut a
 * body that misses its pace deadline. (Real clients over TLS: test/ingest/agent/slow-clients.)
 */
import { expect, test } from "bun:test";
import { BodyReader, BodyTooLarge, BodyTooSlow, WHOLE_BODY_MAX } from "../../src/ingest/body.ts";

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 255);

/** A request whose body arrives in `chunks`, `gapMs` apart; `length` is the declared Content-Length. */
function request(chunks: Uint8Array[], length: number | undefined, gapMs = 0): Request {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i > 0 && gapMs) await Bun.sleep(gapMs);
      if (i < chunks.length) c.enqueue(chunks[i++]!);
      else c.close();
    },
  });
  const headers: Record<string, string> = length === undefined ? {} : { "content-length": String(length) };
  return new Request("https://127.0.0.1/api/v1/ingest", { method: "POST", body, headers, duplex: "half" } as RequestInit);
}

test("a small declared body is read whole: one next() holds every byte, then the end", async () => {
  const all = bytes(20_000);
  const r = new BodyReader(request([all.subarray(0, 5000), all.subarray(5000)], all.length), 1 << 20, undefined);
  expect(await r.next()).toBe(true);
  expect(r.bytes).toEqual(all);
  expect(r.complete).toBe(true);
  expect(await r.next()).toBe(false);
});

test("a body over WHOLE_BODY_MAX, or without a length, is read chunk by chunk to the same bytes", async () => {
  const big = bytes(WHOLE_BODY_MAX + 1000);
  for (const length of [big.length, undefined]) {
    const r = new BodyReader(request([big.subarray(0, 30_000), big.subarray(30_000)], length), 1 << 20, undefined);
    expect(await r.next()).toBe(true);
    expect(r.bytes.length).toBe(30_000);
    expect(await r.all()).toEqual(big);
  }
});

test("a declared length over the limit is refused before anything is read", () => {
  expect(() => new BodyReader(request([bytes(10)], 5000), 4096, undefined)).toThrow(BodyTooLarge);
});

test("a small body that misses grace + length / rate is cut with BodyTooSlow, whole or streamed", async () => {
  const pace = { graceMs: 100, minRate: 1_000_000 };
  for (const length of [3000, undefined]) {
    const r = new BodyReader(request([bytes(1000), bytes(1000), bytes(1000)], length, 150), 1 << 20, pace);
    const t0 = performance.now();
    await expect(r.all()).rejects.toBeInstanceOf(BodyTooSlow);
    expect(performance.now() - t0).toBeLessThan(1000);
  }
});
