/**
 * Wire protocol v1: the frame layout shared by the server and the agent (docs/protocol.md).
 * Nothing here does I/O; the agent imports this folder and nothing else from src/.
 *
 *   offset size  field
 *        0    4  magic "SMF1"
 *        4    1  version (1)
 *        5    1  kind (FrameKind)
 *        6    2  flags (bit 0: body is one LZ4 block; bit 1: sealed with a session key)
 *        8    8  agent id (u64, < 2^53)
 *       16    8  sequence number (u64, < 2^53), new for every transmission
 *       24    8  batch id (u64, < 2^53), the identity of the content; resends keep it
 *       32    8  created at, ms since the Unix epoch (i64)
 *       40    8  sent at, ms since the Unix epoch (i64)
 *       48    4  body length on the wire (u32)
 *       52    4  raw length: body length after decompression (u32)
 *       56    4  item count: samples, lines, events or 1 (u32)
 *       60    4  session id (u32) when flag bit 1 is set, else zero
 *       64    n  body: msgpack, LZ4-compressed when flag bit 0 is set
 *     64+n   64  Ed25519 signature over bytes [0, 64+n); with flag bit 1 instead
 *                HMAC-SHA256 of those bytes under the session key, then 32 zero bytes
 * All integers are little-endian.
 */

export const MAGIC = 0x31464d53; // "SMF1" read as a little-endian u32
export const VERSION = 1;
export const HEADER_SIZE = 64;
export const SIGNATURE_SIZE = 64;
export const FLAG_LZ4 = 1;
/** The trailer is an HMAC under a session key (docs/protocol.md 3.5), not an Ed25519 signature. */
export const FLAG_SESSION = 2;
export const KNOWN_FLAGS = FLAG_LZ4 | FLAG_SESSION;

/** The tag of a sealed frame: HMAC-SHA256 of its header and wire body under the session key. */
export function sessionTag(key: Uint8Array, signed: Uint8Array): Uint8Array {
  return new Bun.CryptoHasher("sha256", key).update(signed).digest() as Uint8Array;
}

/** A session opened by a signed hello: frames sealed with it skip the per-frame Ed25519 check. */
export interface SessionAuth {
  /** Non-zero u32, header bytes 60-63. */
  id: number;
  /** 32-byte HMAC-SHA256 key. */
  key: Uint8Array;
}

export enum FrameKind {
  Metrics = 1,
  Logs = 2,
  Inventory = 3,
  SecurityEvents = 4,
  Heartbeat = 5,
  Hello = 6,
}

export const KIND_NAMES: Record<number, string> = {
  1: "metrics",
  2: "logs",
  3: "inventory",
  4: "security",
  5: "heartbeat",
  6: "hello",
};

export interface FrameHeader {
  version: number;
  kind: FrameKind;
  flags: number;
  agentId: number;
  seq: number;
  batchId: number;
  createdMs: number;
  sentMs: number;
  bodyLength: number;
  rawLength: number;
  items: number;
  /** Bytes 60-63: the session id of a sealed frame (FLAG_SESSION), 0 otherwise. */
  session: number;
}

/**
 * Metric samples: `names.length` series x `ts.length` timestamps, values series-major,
 * NaN = no sample. On the wire the names travel as one string joined by "\n" (`namesKey`):
 * one string to decode instead of one per series, and a ready cache key for the series ids.
 */
export interface MetricsBody {
  ts: Float64Array;
  names: string[];
  values: Float64Array;
  /** names.join("\n"), as sent. */
  namesKey?: string;
}

export interface LogsBody {
  ts: Float64Array;
  severity: Uint8Array;
  sources: string[];
  /** Index into `sources` for each line. */
  sourceIndex: Uint16Array;
  messages: string[];
}

export interface SecurityEvent {
  ts: number;
  type: string;
  severity: number;
  path?: string;
  data?: Record<string, unknown>;
}

export interface SecurityBody {
  events: SecurityEvent[];
}

export type InventoryBody = Record<string, unknown>;

export interface HeartbeatBody {
  [key: string]: unknown;
}

export interface HelloBody {
  nonce: string;
  version: string;
}

export type FrameBody =
  | { kind: FrameKind.Metrics; body: MetricsBody }
  | { kind: FrameKind.Logs; body: LogsBody }
  | { kind: FrameKind.Inventory; body: InventoryBody }
  | { kind: FrameKind.SecurityEvents; body: SecurityBody }
  | { kind: FrameKind.Heartbeat; body: HeartbeatBody }
  | { kind: FrameKind.Hello; body: HelloBody };

/** Limits every decoder enforces; a frame over any of them is refused before decompression. */
export interface FrameLimits {
  maxBodyBytes: number;
  maxRawBytes: number;
  maxItems: number;
}

export const DEFAULT_LIMITS: FrameLimits = {
  maxBodyBytes: 8 << 20,
  maxRawBytes: 32 << 20,
  maxItems: 1_000_000,
};

/** Why a frame was refused. Each code is a label value of ingest_rejects_total. */
export type RejectCode =
  | "truncated"
  | "bad_magic"
  | "bad_version"
  | "unknown_kind"
  | "bad_flags"
  | "too_large"
  | "frame_too_large"
  | "too_many_items"
  | "bad_lz4"
  | "bad_msgpack"
  | "bad_body"
  | "bad_timestamp"
  | "unknown_agent"
  | "revoked_agent"
  | "bad_signature"
  | "unknown_session"
  | "replayed_seq"
  // a name (series, log source, event type, path) PostgreSQL's text cannot hold: U+0000
  | "bad_name"
  // PostgreSQL refused the frame's data after its batch was split (src/batch/batcher.ts)
  | "store_rejected";

export class FrameError extends Error {
  constructor(
    readonly code: RejectCode,
    message: string,
  ) {
    super(message);
  }
}
