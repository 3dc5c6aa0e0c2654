/**
 * The example frames of docs/protocol.md, kept as fixtures: they must decode to what the
 * document says, verify with the documented key, and the encoder must still produce them byte
 * for byte (Ed25519 is deterministic), so any change of the wire format fails here first.
 */
import { expect, test } from "bun:test";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { join } from "node:path";
import { encodeFrame, packMap, packMetrics } from "../../../src/ingest/frame/encode.ts";
import { decodeFrameBody, splitFrames, verifyFrame, verifySealedFrame } from "../../../src/ingest/frame/decode.ts";
import { FrameKind } from "../../../src/ingest/frame/frame.ts";
import { publicKeyFromRaw } from "../../../src/ingest/agent/directory.ts";

const dir = join(import.meta.dir, "../../fixtures/frames");
// The documented example key: seed = 32 bytes of 0x01.
const priv = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.alloc(32, 1)]), format: "der", type: "pkcs8" });
const PUBLIC_HEX = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

test("the documented public key is the one derived from the example seed", () => {
  const x = createPublicKey(priv).export({ format: "jwk" }).x!;
  expect(Buffer.from(x, "base64url").toString("hex")).toBe(PUBLIC_HEX);
});

test("heartbeat.bin: header fields, body, signature, and byte-exact re-encoding", async () => {
  const bytes = new Uint8Array(await Bun.file(join(dir, "heartbeat.bin")).arrayBuffer());
  expect(bytes.length).toBe(139);
  const f = splitFrames(bytes)[0]!.frame!;
  expect(f.header).toEqual({ version: 1, kind: 5, flags: 0, agentId: 42, seq: 7, batchId: 3, createdMs: 1795000000000, sentMs: 1795000000123, bodyLength: 11, rawLength: 11, items: 1, session: 0 });
  expect(verifyFrame(f, publicKeyFromRaw(Buffer.from(PUBLIC_HEX, "hex")))).toBe(true);
  expect(decodeFrameBody(f.header, f.body).body).toEqual({ uptime: 3600 });
  const again = encodeFrame({ kind: FrameKind.Heartbeat, agentId: 42, seq: 7, batchId: 3, createdMs: 1795000000000, sentMs: 1795000000123, items: 1 }, packMap({ uptime: 3600 }), priv);
  expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
});

test("metrics-2x2.bin: two series x two timestamps, uncompressed (under 128 bytes)", async () => {
  const bytes = new Uint8Array(await Bun.file(join(dir, "metrics-2x2.bin")).arrayBuffer());
  const f = splitFrames(bytes)[0]!.frame!;
  expect(f.header).toMatchObject({ kind: 1, agentId: 42, seq: 8, batchId: 4, items: 4, flags: 0, bodyLength: 80 });
  const body = decodeFrameBody(f.header, f.body);
  if (body.kind !== FrameKind.Metrics) throw new Error("kind");
  expect([...body.body.ts]).toEqual([1795000000000, 1795000010000]);
  expect(body.body.names).toEqual(["cpu.util", "mem.used"]);
  expect([...body.body.values]).toEqual([12.5, 13, 1024, 2048]);
  const again = encodeFrame(
    { kind: FrameKind.Metrics, agentId: 42, seq: 8, batchId: 4, createdMs: 1795000000000, sentMs: 1795000000123, items: 4 },
    packMetrics({ ts: Float64Array.of(1795000000000, 1795000010000), names: ["cpu.util", "mem.used"], values: Float64Array.of(12.5, 13, 1024, 2048) }),
    priv,
  );
  expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
});

test("heartbeat-sealed.bin: the same heartbeat sealed with session 0x01020304 under the documented key", async () => {
  const bytes = new Uint8Array(await Bun.file(join(dir, "heartbeat-sealed.bin")).arrayBuffer());
  expect(bytes.length).toBe(139);
  const f = splitFrames(bytes)[0]!.frame!;
  expect(f.header).toMatchObject({ kind: 5, flags: 2, agentId: 42, seq: 9, batchId: 3, session: 0x01020304 });
  const key = new Uint8Array(32).fill(2);
  expect(verifySealedFrame(f, key)).toBe(true);
  expect(verifySealedFrame(f, new Uint8Array(32).fill(3))).toBe(false);
  expect(verifyFrame(f, publicKeyFromRaw(Buffer.from(PUBLIC_HEX, "hex")))).toBe(false); // sealed frames are never signature-checked
  // the tag is HMAC-SHA256 of the first 75 bytes, then 32 zero bytes
  expect(Buffer.from(bytes.subarray(75, 107)).toString("hex")).toBe(new Bun.CryptoHasher("sha256", key).update(bytes.subarray(0, 75)).digest("hex"));
  expect(bytes.subarray(107).every((b) => b === 0)).toBe(true);
  const again = encodeFrame({ kind: FrameKind.Heartbeat, agentId: 42, seq: 9, batchId: 3, createdMs: 1795000000000, sentMs: 1795000000123, items: 1 }, packMap({ uptime: 3600 }), { id: 0x01020304, key });
  expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
});
