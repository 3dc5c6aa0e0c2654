/**
 * The decoder's rules for what PostgreSQL cannot hold (docs/protocol.md 4.7): names with U+0000
 * are refused as `bad_name`, free text with it decodes unchanged (the store keeps it exactly),
 * maps nest at most MAX_MAP_DEPTH levels, and invalid UTF-8 becomes U+FFFD.
 */
import { describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { encodeFrame, packLogs, packMap, packMetrics, packSecurity } from "../../../src/ingest/frame/encode.ts";
import { decodeFrameBody, MAX_MAP_DEPTH, splitFrames } from "../../../src/ingest/frame/decode.ts";
import { FrameError, FrameKind, type SecurityEvent } from "../../../src/ingest/frame/frame.ts";

const { privateKey } = generateKeyPairSync("ed25519");
const NOW = 1_790_000_000_000;

function decode(kind: FrameKind, items: number, body: Uint8Array) {
  const [e] = splitFrames(encodeFrame({ kind, agentId: 7, seq: 1, batchId: 1, createdMs: NOW, items }, body, privateKey));
  return decodeFrameBody(e!.frame!.header, e!.frame!.body);
}
function codeOf(fn: () => unknown): string {
  try {
    fn();
    return "decoded";
  } catch (e) {
    if (e instanceof FrameError) return e.code;
    throw e;
  }
}
const logs = (sources: string[], messages: string[]) =>
  packLogs({ ts: new Float64Array(messages.length).fill(NOW), severity: new Uint8Array(messages.length).fill(6), sources, sourceIndex: new Uint16Array(messages.length), messages });
const security = (e: Partial<SecurityEvent>) => packSecurity({ events: [{ ts: NOW, type: "t", severity: 1, ...e }] });
function nested(levels: number): Record<string, unknown> {
  let v: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) v = { d: v };
  return v;
}

describe("names with U+0000 are refused as bad_name", () => {
  test("series name", () => {
    expect(codeOf(() => decode(FrameKind.Metrics, 2, packMetrics({ ts: Float64Array.of(NOW), names: ["ok", "cpu\u0000x"], values: Float64Array.of(1, 2) })))).toBe("bad_name");
  });
  test("log source", () => {
    expect(codeOf(() => decode(FrameKind.Logs, 1, logs(["/var/log/a\u0000"], ["m"])))).toBe("bad_name");
  });
  test("event type and path", () => {
    expect(codeOf(() => decode(FrameKind.SecurityEvents, 1, security({ type: "fim\u0000" })))).toBe("bad_name");
    expect(codeOf(() => decode(FrameKind.SecurityEvents, 1, security({ path: "/etc/\u0000passwd" })))).toBe("bad_name");
  });
});

describe("free text keeps U+0000", () => {
  test("a log message and event data decode unchanged", () => {
    const l = decode(FrameKind.Logs, 1, logs(["app"], ["x\u0000y"]));
    expect(l.kind === FrameKind.Logs && l.body.messages).toEqual(["x\u0000y"]);
    const s = decode(FrameKind.SecurityEvents, 1, security({ data: { "k\u0000": "v\u0000", n: NaN } }));
    expect(s.kind === FrameKind.SecurityEvents && s.body.events[0]!.data).toEqual({ "k\u0000": "v\u0000", n: NaN });
  });
  test("invalid UTF-8 becomes U+FFFD, short and long strings alike", () => {
    for (const pad of [0, 100]) {
      const text = Buffer.concat([Buffer.alloc(pad, 0x61), Buffer.from([0xff, 0xed, 0xa0, 0x80, 0x62])]);
      // the message's bytes overwritten in place with invalid UTF-8, which our encoder never writes
      const body = Buffer.from(logs(["app"], ["@".repeat(text.length)]));
      const at = body.indexOf(Buffer.from("@".repeat(text.length)));
      text.copy(body, at);
      const l = decode(FrameKind.Logs, 1, body);
      expect(l.kind === FrameKind.Logs && l.body.messages[0]).toBe("a".repeat(pad) + "\uFFFD\uFFFD\uFFFD\uFFFDb");
    }
  });
});

describe("nesting", () => {
  test(`maps nest at most ${MAX_MAP_DEPTH} levels in event data, inventory and heartbeats`, () => {
    expect(codeOf(() => decode(FrameKind.SecurityEvents, 1, security({ data: nested(MAX_MAP_DEPTH - 1) })))).toBe("decoded");
    expect(codeOf(() => decode(FrameKind.SecurityEvents, 1, security({ data: nested(MAX_MAP_DEPTH + 1) })))).toBe("bad_body");
    expect(codeOf(() => decode(FrameKind.Inventory, 1, packMap(nested(MAX_MAP_DEPTH))))).toBe("decoded");
    expect(codeOf(() => decode(FrameKind.Inventory, 1, packMap(nested(MAX_MAP_DEPTH + 1))))).toBe("bad_body");
    expect(codeOf(() => decode(FrameKind.Heartbeat, 1, packMap(nested(MAX_MAP_DEPTH + 1))))).toBe("bad_body");
  });
});
