/** Every class of bad frame gets its own code and message; good frames decode exactly. */
import { describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { Packr } from "msgpackr";
import { encodeFrame, packLogs, packMap, packMetrics, packSecurity, restampFrame } from "../../../src/ingest/frame/encode.ts";
import { decodeFrameBody, splitFrames, verifyFrame } from "../../../src/ingest/frame/decode.ts";
import { FLAG_LZ4, FrameError, FrameKind, HEADER_SIZE, type FrameLimits, DEFAULT_LIMITS } from "../../../src/ingest/frame/frame.ts";
import { lz4Compress } from "../../../src/ingest/frame/lz4.ts";

const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const other = generateKeyPairSync("ed25519");
const NOW = 1_790_000_000_000;
const fields = (kind: FrameKind, items: number) => ({ kind, agentId: 7, seq: 11, batchId: 5, createdMs: NOW, sentMs: NOW + 1, items });

function metrics(series = 3, stamps = 4) {
  const ts = Float64Array.from({ length: stamps }, (_, i) => NOW + i * 10_000);
  const names = Array.from({ length: series }, (_, i) => `cpu.core${i}`);
  const values = Float64Array.from({ length: series * stamps }, (_, i) => i * 1.5);
  return { ts, names, values };
}

function decodeOne(buf: Uint8Array, limits: FrameLimits = DEFAULT_LIMITS) {
  const [e] = splitFrames(buf, limits);
  if (e!.error) throw e!.error;
  return { raw: e!.frame!, body: decodeFrameBody(e!.frame!.header, e!.frame!.body) };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof FrameError) return e.code;
    throw e;
  }
  return "none";
}

/** Builds a frame around arbitrary body bytes, bypassing the encoder's own checks. */
function frameAround(body: Uint8Array, kind: FrameKind, items: number, flags = 0, rawLength = body.length) {
  const wire = flags & FLAG_LZ4 ? lz4Compress(body) : body;
  const f = encodeFrame(fields(kind, items), new Uint8Array(0), privateKey);
  const out = new Uint8Array(HEADER_SIZE + wire.length + 64);
  out.set(f.subarray(0, HEADER_SIZE));
  const dv = new DataView(out.buffer);
  dv.setUint16(6, flags, true);
  dv.setUint32(48, wire.length, true);
  dv.setUint32(52, rawLength, true);
  out.set(wire, HEADER_SIZE);
  return out;
}

const packr = new Packr({ useRecords: false });

describe("good frames", () => {
  test("metrics values and timestamps at unaligned offsets inside a Buffer decode to exactly what was sent", () => {
    // A frame as another agent may pack it (generic msgpack, `v` not first): the float64 data sit
    // at offsets that are not multiples of 8, inside a Buffer that views part of a larger buffer
    // (as Node's pool hands out), whose slice() is a view rather than a copy.
    const m = metrics(5, 3);
    const body = packr.pack({ t: Buffer.from(m.ts.buffer), n: m.names.join("\n"), v: Buffer.from(m.values.buffer) });
    const frame = frameAround(body, FrameKind.Metrics, 15);
    const inputs = [0, 3, 5].map((at) => {
      const shared = new Uint8Array(at + frame.length + 11); // bytes around it, as in a pool
      shared.set(frame, at);
      return Buffer.from(shared.buffer, at, frame.length);
    });
    for (const input of inputs) {
      expect(input.buffer.byteLength).toBeGreaterThan(input.byteLength);
      const { body: got } = decodeOne(input);
      expect(got.kind).toBe(FrameKind.Metrics);
      if (got.kind !== FrameKind.Metrics) continue;
      expect(Array.from(got.body.values)).toEqual(Array.from(m.values));
      expect(Array.from(got.body.ts)).toEqual(Array.from(m.ts));
      expect(got.body.names).toEqual(m.names);
    }
  });

  test("metrics decode to the same timestamps, names and values, with a valid signature", () => {
    const m = metrics();
    const { raw, body } = decodeOne(encodeFrame(fields(FrameKind.Metrics, 12), packMetrics(m), privateKey));
    expect(raw.header).toMatchObject({ version: 1, kind: 1, agentId: 7, seq: 11, batchId: 5, createdMs: NOW, sentMs: NOW + 1, items: 12 });
    expect(verifyFrame(raw, publicKey)).toBe(true);
    expect(verifyFrame(raw, other.publicKey)).toBe(false);
    if (body.kind !== FrameKind.Metrics) throw new Error("kind");
    expect([...body.body.ts]).toEqual([...m.ts]);
    expect(body.body.names).toEqual(m.names);
    expect([...body.body.values]).toEqual([...m.values]);
  });

  test("large bodies travel LZ4-compressed; NaN marks a missing sample", () => {
    const m = metrics(100, 10);
    m.values[5] = NaN;
    const f = encodeFrame(fields(FrameKind.Metrics, 1000), packMetrics(m), privateKey);
    const { raw, body } = decodeOne(f);
    expect(raw.header.flags & FLAG_LZ4).toBe(FLAG_LZ4);
    expect(raw.header.bodyLength).toBeLessThan(raw.header.rawLength);
    expect(Number.isNaN((body.body as any).values[5])).toBe(true);
  });

  test("logs, security events, inventory and heartbeat decode", () => {
    const logs = { ts: Float64Array.of(NOW, NOW + 1), severity: Uint8Array.of(3, 6), sources: ["sshd"], sourceIndex: Uint16Array.of(0, 0), messages: ["a", "b"] };
    expect(decodeOne(encodeFrame(fields(FrameKind.Logs, 2), packLogs(logs), privateKey)).body.body).toMatchObject({ messages: ["a", "b"], sources: ["sshd"] });
    const sec = { events: [{ ts: NOW, type: "fim.create", severity: 5, path: "/etc/x", data: { sha256: "ab" } }] };
    expect(decodeOne(encodeFrame(fields(FrameKind.SecurityEvents, 1), packSecurity(sec), privateKey)).body.body).toEqual(sec);
    expect(decodeOne(encodeFrame(fields(FrameKind.Inventory, 1), packMap({ os: "debian" }), privateKey)).body.body).toEqual({ os: "debian" });
    expect(decodeOne(encodeFrame(fields(FrameKind.Heartbeat, 1), packMap({ up: 5 }), privateKey)).body.kind).toBe(FrameKind.Heartbeat);
  });

  test("restamping keeps the batch id, sets a new sequence number and signs again", () => {
    const f = encodeFrame(fields(FrameKind.Heartbeat, 1), packMap({ up: 5 }), privateKey);
    const r = decodeOne(restampFrame(f, 99, NOW + 5, privateKey)).raw;
    expect(r.header).toMatchObject({ seq: 99, batchId: 5, sentMs: NOW + 5 });
    expect(verifyFrame(r, publicKey)).toBe(true);
  });

  test("several frames in one buffer split in order", () => {
    const a = encodeFrame(fields(FrameKind.Heartbeat, 1), packMap({ n: 1 }), privateKey);
    const b = encodeFrame({ ...fields(FrameKind.Heartbeat, 1), seq: 12 }, packMap({ n: 2 }), privateKey);
    const parts = splitFrames(Buffer.concat([a, b]));
    expect(parts.map((p) => p.frame!.header.seq)).toEqual([11, 12]);
  });
});

describe("bad frames", () => {
  const good = encodeFrame(fields(FrameKind.Metrics, 12), packMetrics(metrics()), privateKey);

  test("truncated header and truncated body", () => {
    expect(code(() => decodeOne(good.subarray(0, 30)))).toBe("truncated");
    expect(code(() => decodeOne(good.subarray(0, good.length - 1)))).toBe("truncated");
  });

  test("bad magic, unknown version, unknown kind, unknown flags", () => {
    const m = good.slice(); m[0] = 0x58;
    expect(code(() => decodeOne(m))).toBe("bad_magic");
    const v = good.slice(); v[4] = 2;
    expect(code(() => decodeOne(v))).toBe("bad_version");
    const k = good.slice(); k[5] = 99;
    expect(code(() => decodeOne(k))).toBe("unknown_kind");
    const f = good.slice(); f[7] = 0x80;
    expect(code(() => decodeOne(f))).toBe("bad_flags");
  });

  test("a flipped bit anywhere in header or body breaks the signature", () => {
    for (const at of [9, 17, 25, 33, 41, HEADER_SIZE + 3, good.length - 70]) {
      const x = good.slice();
      x[at]! ^= 0x01;
      const [e] = splitFrames(x);
      if (e!.frame) expect(verifyFrame(e!.frame, publicKey)).toBe(false);
    }
  });

  test("oversized bodies and lz4 bombs are refused before decompression", () => {
    const small: FrameLimits = { maxBodyBytes: 100, maxRawBytes: 1000, maxItems: 10 };
    expect(code(() => decodeOne(good, small))).toBe("frame_too_large");
    const bomb = good.slice();
    new DataView(bomb.buffer).setUint32(52, 0xffff_fff0, true);
    expect(code(() => decodeOne(bomb))).toBe("frame_too_large");
    const lie = frameAround(new Uint8Array(100), FrameKind.Inventory, 1, FLAG_LZ4, 20_000_000);
    expect(code(() => decodeOne(lie))).toBe("bad_lz4");
  });

  test("per-frame limits have codes of their own, never the request-level too_large", () => {
    const body = packMap({ n: 1 });
    const at = (limits: FrameLimits, items: number, rawLength?: number) => code(() => decodeOne(frameAround(body, FrameKind.Inventory, items, rawLength === undefined ? 0 : FLAG_LZ4, rawLength), limits));
    const lim: FrameLimits = { maxBodyBytes: 1000, maxRawBytes: 2000, maxItems: 10 };
    expect(at(lim, 10)).toBe("none"); // at the item limit (inventory: the count is not checked against the body)
    expect(at(lim, 11)).toBe("too_many_items");
    expect(at({ ...lim, maxBodyBytes: body.length - 1 }, 1)).toBe("frame_too_large");
    expect(at(lim, 1, 2001)).toBe("frame_too_large"); // raw length over the limit, before the 255:1 rule
    // the LZ4 ratio rule: raw length at most 255 x wire length + 16, else bad_lz4
    const wire = lz4Compress(body).length;
    expect(at(DEFAULT_LIMITS, 1, wire * 255 + 17)).toBe("bad_lz4");
    expect(at(DEFAULT_LIMITS, 1, wire * 255 + 16)).toBe("bad_lz4"); // allowed claim, but the block does not expand to it
  });

  test("timestamps: whole ms from 2000-01-01 (inclusive) to 2100-01-01 (exclusive); fractions are refused, not truncated", () => {
    const MIN = Date.UTC(2000, 0, 1);
    const MAX = Date.UTC(2100, 0, 1);
    const metricsAt = (t: number) => frameAround(packMetrics({ ts: Float64Array.of(t), names: ["a"], values: Float64Array.of(1) }), FrameKind.Metrics, 1);
    const logsAt = (t: number) => frameAround(packLogs({ ts: Float64Array.of(t), severity: Uint8Array.of(6), sources: ["s"], sourceIndex: Uint16Array.of(0), messages: ["m"] }), FrameKind.Logs, 1);
    const eventAt = (t: number) => frameAround(packSecurity({ events: [{ ts: t, type: "x", severity: 1 }] }), FrameKind.SecurityEvents, 1);
    for (const make of [metricsAt, logsAt, eventAt]) {
      expect(code(() => decodeOne(make(MIN)))).toBe("none");
      expect(code(() => decodeOne(make(MAX - 1)))).toBe("none");
      expect(code(() => decodeOne(make(MAX)))).toBe("bad_timestamp");
      expect(code(() => decodeOne(make(MIN - 1)))).toBe("bad_timestamp");
      expect(code(() => decodeOne(make(NOW + 0.5)))).toBe("bad_timestamp");
      expect(code(() => decodeOne(make(NaN)))).toBe("bad_timestamp");
    }
    expect(() => decodeOne(metricsAt(NOW + 0.25))).toThrow(/not a whole number of ms/);
    // the header's created at (stored as an inventory's collected_at) follows the same range
    const inv = (createdMs: number) => code(() => decodeOne(encodeFrame({ ...fields(FrameKind.Inventory, 1), createdMs }, packMap({ os: "x" }), privateKey)));
    expect(inv(MIN)).toBe("none");
    expect(inv(MAX - 1)).toBe("none");
    expect(inv(MAX)).toBe("bad_timestamp");
    expect(inv(0)).toBe("bad_timestamp");
    expect(inv(-1)).toBe("bad_timestamp");
  });

  test("corrupt lz4 and malformed msgpack", () => {
    const body = packMetrics(metrics(50, 10));
    const f = frameAround(body, FrameKind.Metrics, 500, FLAG_LZ4);
    f[HEADER_SIZE + 20] = 0xff; f[HEADER_SIZE + 21] = 0xff; f[HEADER_SIZE + 22] = 0xff;
    expect(["bad_lz4", "bad_msgpack", "bad_body"]).toContain(code(() => decodeOne(f)));
    expect(code(() => decodeOne(frameAround(Uint8Array.of(0xc1), FrameKind.Inventory, 1)))).toBe("bad_body");
    expect(code(() => decodeOne(frameAround(Uint8Array.of(0x80, 0x01), FrameKind.Inventory, 1)))).toBe("bad_msgpack"); // trailing bytes
    expect(code(() => decodeOne(frameAround(Uint8Array.of(0xd4, 0x72, 0x00), FrameKind.Inventory, 1)))).toBe("bad_msgpack");
    expect(code(() => decodeOne(frameAround(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), FrameKind.Inventory, 1)))).toBe("bad_msgpack");
  });

  test("deep nesting is refused without crashing", () => {
    const deep = new Uint8Array(200_000).fill(0x91); // [[[[...
    expect(["bad_msgpack", "bad_body"]).toContain(code(() => decodeOne(frameAround(deep, FrameKind.Inventory, 1))));
  });

  test("wrongly typed fields name the field", () => {
    const cases: Array<[unknown, FrameKind, number, RegExp]> = [
      [[1, 2], FrameKind.Inventory, 1, /must be a map/],
      [{ t: "x", n: "a", v: new Uint8Array(8) }, FrameKind.Metrics, 1, /metrics.t/],
      [{ t: new Uint8Array(new Float64Array([NOW]).buffer), n: ["a"], v: new Uint8Array(8) }, FrameKind.Metrics, 1, /metrics.n/],
      [{ t: new Uint8Array(new Float64Array([NOW]).buffer), n: "a\na", v: new Uint8Array(16) }, FrameKind.Metrics, 2, /repeats/],
      [{ t: new Uint8Array(new Float64Array([NOW]).buffer), n: "a", v: new Uint8Array(16) }, FrameKind.Metrics, 2, /holds 2 values, expected 1/],
      [{ t: new Uint8Array(new Float64Array([5]).buffer), n: "a", v: new Uint8Array(8) }, FrameKind.Metrics, 1, /not a time/],
      [{ t: new Uint8Array(new Float64Array([NOW, NOW]).buffer), n: "a", v: new Uint8Array(16) }, FrameKind.Metrics, 2, /must increase/],
      [{ t: new Uint8Array(new Float64Array([NOW]).buffer), n: "a", v: new Uint8Array(8) }, FrameKind.Metrics, 5, /header claims 5/],
      [{ e: [{ ts: NOW, type: "x", severity: 11 }] }, FrameKind.SecurityEvents, 1, /severity/],
      [{ nonce: 5, version: "1" }, FrameKind.Hello, 1, /hello/],
    ];
    for (const [body, kind, items, re] of cases) {
      let err: unknown;
      try {
        decodeOne(frameAround(packr.pack(body), kind, items));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FrameError);
      expect((err as FrameError).message).toMatch(re);
    }
  });

  test("a bad frame between good ones costs only itself", () => {
    const a = encodeFrame(fields(FrameKind.Heartbeat, 1), packMap({ n: 1 }), privateKey);
    const bad = encodeFrame({ ...fields(FrameKind.Heartbeat, 1), seq: 12 }, packMap({ n: 2 }), privateKey);
    bad[5] = 77; // unknown kind, lengths still readable
    const c = encodeFrame({ ...fields(FrameKind.Heartbeat, 1), seq: 13 }, packMap({ n: 3 }), privateKey);
    const parts = splitFrames(Buffer.concat([a, bad, c]));
    expect(parts.map((p) => p.error?.code ?? p.frame!.header.seq)).toEqual([11, "unknown_kind", 13]);
  });
});
