/** Builds signed frames. Used by the agent, the tests and the load generator. */
// "msgpackr/pack": the pure-JS entry. The package root also looks for msgpackr-extract, a native
// addon that packing never uses; in the compiled agent that lookup alone costs each process ~10 MB RSS.
import { Packr } from "msgpackr/pack";
import { sign, type KeyObject } from "node:crypto";
import { lz4Compress } from "./lz4.ts";
import {
  FLAG_LZ4, FLAG_SESSION, FrameKind, sessionTag, HEADER_SIZE, MAGIC, SIGNATURE_SIZE, VERSION,
  type HeartbeatBody, type SessionAuth, type HelloBody, type InventoryBody, type LogsBody, type MetricsBody, type SecurityBody,
} from "./frame.ts";

const packr = new Packr({ useRecords: false, variableMapSize: true });

/** Bodies smaller than this are sent uncompressed: LZ4 would not pay for its header flag. */
const COMPRESS_MIN = 128;

export interface FrameFields {
  kind: FrameKind;
  agentId: number;
  seq: number;
  batchId: number;
  createdMs: number;
  sentMs?: number;
  items: number;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function packMetrics(b: MetricsBody): Uint8Array {
  if (b.values.length !== b.names.length * b.ts.length) {
    throw new Error(`metrics body: ${b.values.length} values for ${b.names.length} series x ${b.ts.length} timestamps`);
  }
  for (const n of b.names) {
    if (n.length === 0 || n.includes("\n")) throw new Error(`metric name ${JSON.stringify(n)} is empty or holds a newline`);
  }
  // Written by hand so that `v` comes first as bin 32: its values then start at byte 8 of the
  // raw body, and the server reads them in place instead of copying them to align them.
  const v = bytesOf(b.values);
  const t = bytesOf(b.ts);
  const n = utf8.encode(b.names.join("\n"));
  const tHead = t.length < 256 ? 2 : t.length < 65536 ? 3 : 5;
  const nHead = n.length < 32 ? 1 : n.length < 256 ? 2 : n.length < 65536 ? 3 : 5;
  const out = new Uint8Array(1 + 2 + 5 + v.length + 2 + tHead + t.length + 2 + nHead + n.length);
  const dv = new DataView(out.buffer);
  let o = 0;
  out[o++] = 0x83; // fixmap(3)
  out[o++] = 0xa1; out[o++] = 0x76; // "v"
  out[o++] = 0xc6; dv.setUint32(o, v.length); o += 4; // bin 32
  out.set(v, o); o += v.length;
  out[o++] = 0xa1; out[o++] = 0x74; // "t"
  if (tHead === 2) { out[o++] = 0xc4; out[o++] = t.length; }
  else if (tHead === 3) { out[o++] = 0xc5; dv.setUint16(o, t.length); o += 2; }
  else { out[o++] = 0xc6; dv.setUint32(o, t.length); o += 4; }
  out.set(t, o); o += t.length;
  out[o++] = 0xa1; out[o++] = 0x6e; // "n"
  if (nHead === 1) out[o++] = 0xa0 | n.length;
  else if (nHead === 2) { out[o++] = 0xd9; out[o++] = n.length; }
  else if (nHead === 3) { out[o++] = 0xda; dv.setUint16(o, n.length); o += 2; }
  else { out[o++] = 0xdb; dv.setUint32(o, n.length); o += 4; }
  out.set(n, o);
  return out;
}

const utf8 = new TextEncoder();

export function packLogs(b: LogsBody): Uint8Array {
  return packr.pack({ t: bytesOf(b.ts), s: bytesOf(b.severity), src: b.sources, si: bytesOf(b.sourceIndex), m: b.messages });
}

export function packSecurity(b: SecurityBody): Uint8Array {
  return packr.pack({ e: b.events });
}

export function packMap(b: InventoryBody | HeartbeatBody | HelloBody): Uint8Array {
  return packr.pack(b);
}

/** How a frame is authenticated: the agent's Ed25519 key, or a session the server opened for it. */
export type FrameAuth = KeyObject | SessionAuth;

function isSession(a: FrameAuth): a is SessionAuth {
  return (a as SessionAuth).key instanceof Uint8Array;
}

/**
 * Writes the trailer of a frame whose header and body are in place: an Ed25519 signature, or
 * with a session the session id (bytes 60-63), flag bit 1 and an HMAC-SHA256 tag followed by
 * 32 zero bytes. Either way the trailer covers bytes [0, length - 64) as finally written.
 */
export function sealFrame(out: Uint8Array, auth: FrameAuth): Uint8Array {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const end = out.length - SIGNATURE_SIZE;
  const flags = dv.getUint16(6, true);
  if (isSession(auth)) {
    if (!Number.isInteger(auth.id) || auth.id < 1 || auth.id > 0xffffffff) throw new Error(`session id ${auth.id} is not a non-zero u32`);
    dv.setUint16(6, flags | FLAG_SESSION, true);
    dv.setUint32(60, auth.id, true);
    const tag = sessionTag(auth.key, out.subarray(0, end));
    out.set(tag, end);
    out.fill(0, end + tag.length);
  } else {
    dv.setUint16(6, flags & ~FLAG_SESSION, true);
    dv.setUint32(60, 0, true);
    out.set(sign(null, out.subarray(0, end), auth), end);
  }
  return out;
}

/** Frames `body` (msgpack bytes): compresses it when that pays, writes the header and seals the whole. */
export function encodeFrame(f: FrameFields, body: Uint8Array, auth: FrameAuth): Uint8Array {
  let wire = body;
  let flags = 0;
  if (body.length >= COMPRESS_MIN) {
    const c = lz4Compress(body);
    if (c.length < body.length) {
      wire = c;
      flags |= FLAG_LZ4;
    }
  }
  const out = new Uint8Array(HEADER_SIZE + wire.length + SIGNATURE_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint8(4, VERSION);
  dv.setUint8(5, f.kind);
  dv.setUint16(6, flags, true);
  dv.setBigUint64(8, BigInt(f.agentId), true);
  dv.setBigUint64(16, BigInt(f.seq), true);
  dv.setBigUint64(24, BigInt(f.batchId), true);
  dv.setBigInt64(32, BigInt(Math.trunc(f.createdMs)), true);
  dv.setBigInt64(40, BigInt(Math.trunc(f.sentMs ?? Date.now())), true);
  dv.setUint32(48, wire.length, true);
  dv.setUint32(52, body.length, true);
  dv.setUint32(56, f.items, true);
  out.set(wire, HEADER_SIZE); // bytes 60-63 (session id) and the trailer: sealFrame
  return sealFrame(out, auth);
}

/**
 * Re-stamps a spooled frame for a new transmission: new sequence number and sent-at time,
 * same batch id and body, sealed again (signed, or with a session). The body is not recompressed.
 */
export function restampFrame(frame: Uint8Array, seq: number, sentMs: number, auth: FrameAuth): Uint8Array {
  const out = frame.slice();
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setBigUint64(16, BigInt(seq), true);
  dv.setBigInt64(40, BigInt(Math.trunc(sentMs)), true);
  return sealFrame(out, auth);
}
