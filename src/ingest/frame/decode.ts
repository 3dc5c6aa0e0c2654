/**
 * Frame decoding: pure and synchronous, bytes in, typed frames or a FrameError out.
 * Splitting, signature checking and body decoding are separate steps so the caller can look up
 * the agent's key between them and so a bad body never costs a valid neighbour its place.
 */
import { Unpackr } from "msgpackr";
import { verify, type KeyObject } from "node:crypto";
import { lz4Decompress, Lz4Error } from "./lz4.ts";
import {
  DEFAULT_LIMITS, FLAG_LZ4, FLAG_SESSION, FrameError, sessionTag, FrameKind, HEADER_SIZE, KIND_NAMES, KNOWN_FLAGS, MAGIC, SIGNATURE_SIZE, VERSION,
  type FrameBody, type FrameHeader, type FrameLimits, type LogsBody, type MetricsBody, type SecurityEvent,
} from "./frame.ts";

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" } as any);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Timestamps outside [2000-01-01, 2100-01-01) are refused as corrupt. */
const MIN_TS = 946_684_800_000;
const MAX_TS = 4_102_444_800_000;
const MAX_NAME = 512;
/** Longest time one metrics frame may span (store/postgres/queries.ts relies on it). */
export const MAX_METRICS_SPAN_MS = 3_600_000;
const MAX_MESSAGE = 64 * 1024;

export interface RawFrame {
  header: FrameHeader;
  /** Header and wire body: the bytes the signature covers. */
  signed: Uint8Array;
  body: Uint8Array;
  signature: Uint8Array;
}

/** One entry per frame found in a request, in order: a frame, or why it was refused. */
export type SplitEntry = { frame: RawFrame; error?: undefined; header?: undefined } | { frame?: undefined; error: FrameError; header?: FrameHeader };

function u64(dv: DataView, off: number, name: string): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FrameError("bad_body", `${name} ${v} exceeds 2^53-1`);
  return Number(v);
}

/** Reads the 64-byte header at `off`. Throws FrameError; `frameLength` is known when the lengths could be read. */
export function decodeFrameHeader(buf: Uint8Array, off: number): FrameHeader {
  if (buf.length - off < HEADER_SIZE) {
    throw new FrameError("truncated", `frame header needs ${HEADER_SIZE} bytes, ${buf.length - off} left at offset ${off}`);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset + off, HEADER_SIZE);
  const magic = dv.getUint32(0, true);
  if (magic !== MAGIC) throw new FrameError("bad_magic", `bad magic 0x${magic.toString(16).padStart(8, "0")} at offset ${off} (want "SMF1")`);
  const version = dv.getUint8(4);
  if (version !== VERSION) throw new FrameError("bad_version", `protocol version ${version} is not supported (this server speaks ${VERSION})`);
  return {
    version,
    kind: dv.getUint8(5),
    flags: dv.getUint16(6, true),
    agentId: u64(dv, 8, "agent id"),
    seq: u64(dv, 16, "sequence number"),
    batchId: u64(dv, 24, "batch id"),
    createdMs: Number(dv.getBigInt64(32, true)),
    sentMs: Number(dv.getBigInt64(40, true)),
    bodyLength: dv.getUint32(48, true),
    rawLength: dv.getUint32(52, true),
    items: dv.getUint32(56, true),
    session: dv.getUint32(60, true),
  };
}

/**
 * Splits a request body into frames. A frame with a readable header but bad kind, flags or size
 * is refused and skipped; a header that cannot be read (truncated, bad magic or version) ends
 * the split, since the next frame's start is unknown. Frames before it are kept.
 */
export function splitFrames(buf: Uint8Array, limits: FrameLimits = DEFAULT_LIMITS): SplitEntry[] {
  const out: SplitEntry[] = [];
  let off = 0;
  while (off < buf.length) {
    let h: FrameHeader;
    try {
      h = decodeFrameHeader(buf, off);
    } catch (e) {
      out.push({ error: e as FrameError });
      break;
    }
    const end = off + HEADER_SIZE + h.bodyLength + SIGNATURE_SIZE;
    if (end > buf.length) {
      // a body over the limit is that, whether or not it all arrived (as when it is first in a request)
      const error = bodyTooLarge(h, limits) ?? new FrameError("truncated", `frame at offset ${off} declares ${h.bodyLength} body bytes, only ${buf.length - off - HEADER_SIZE} bytes follow its header`);
      out.push({ error, header: h });
      break;
    }
    const problem = checkHeader(h, limits);
    if (problem) out.push({ error: problem, header: h });
    else {
      out.push({
        frame: {
          header: h,
          signed: buf.subarray(off, off + HEADER_SIZE + h.bodyLength),
          body: buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + h.bodyLength),
          signature: buf.subarray(end - SIGNATURE_SIZE, end),
        },
      });
    }
    off = end;
  }
  return out;
}

function checkHeader(h: FrameHeader, limits: FrameLimits): FrameError | undefined {
  if (!(h.kind in KIND_NAMES)) return new FrameError("unknown_kind", `frame kind ${h.kind} is unknown (known: 1-6)`);
  if ((h.flags & ~KNOWN_FLAGS) !== 0) return new FrameError("bad_flags", `frame flags 0x${h.flags.toString(16)} set unknown bits`);
  const size = checkSize(h, limits);
  if (size) return size;
  // created at is stored (an inventory's collected_at): the same range as body timestamps
  const created = timestampProblem(h.createdMs, "created at (header bytes 32-39)");
  if (created) return created;
  if (h.flags & FLAG_SESSION && h.session === 0) return new FrameError("bad_flags", "a frame sealed with a session (flag bit 1) needs its session id in bytes 60-63");
  if (!(h.flags & FLAG_SESSION) && h.session !== 0) return new FrameError("bad_flags", `bytes 60-63 hold ${h.session}, but they must be zero unless flag bit 1 (session) is set`);
  if (!(h.flags & FLAG_LZ4) && h.rawLength !== h.bodyLength) return new FrameError("bad_body", `uncompressed frame declares raw length ${h.rawLength} but carries ${h.bodyLength} bytes`);
  // LZ4 expands at most 255:1; a larger claim is a lie meant to make us allocate.
  if (h.flags & FLAG_LZ4 && h.rawLength > h.bodyLength * 255 + 16) return new FrameError("bad_lz4", `LZ4 body of ${h.bodyLength} bytes cannot expand to the declared ${h.rawLength}`);
  return undefined;
}

/** A frame whose body on the wire is over the limit (the one per-frame limit known before its body is read). */
export function bodyTooLarge(h: FrameHeader, limits: FrameLimits): FrameError | undefined {
  if (h.bodyLength > limits.maxBodyBytes) return new FrameError("frame_too_large", `frame body of ${h.bodyLength} bytes exceeds the limit of ${limits.maxBodyBytes} (ingest.maxBodyBytes): split its content into smaller frames`);
  return undefined;
}

/**
 * The per-frame size limits. Sending fewer frames per request cannot fix these (the frame itself
 * is too big), so they are 422 codes of their own, not the request-level 413 `too_large`.
 */
function checkSize(h: FrameHeader, limits: FrameLimits): FrameError | undefined {
  const wire = bodyTooLarge(h, limits);
  if (wire) return wire;
  if (h.rawLength > limits.maxRawBytes) return new FrameError("frame_too_large", `frame body expands to ${h.rawLength} bytes, over the limit of ${limits.maxRawBytes} (ingest.maxRawBytes): split its content into smaller frames`);
  if (h.items > limits.maxItems) return new FrameError("too_many_items", `frame claims ${h.items} items, over the limit of ${limits.maxItems}: split its content into smaller frames`);
  return undefined;
}

/** Checks the Ed25519 signature of a frame; a frame sealed with a session never passes. */
export function verifyFrame(f: RawFrame, key: KeyObject): boolean {
  if (f.header.flags & FLAG_SESSION) return false;
  try {
    return verify(null, f.signed, key, f.signature);
  } catch {
    return false;
  }
}

/**
 * Checks a sealed frame's trailer: HMAC-SHA256 of header and body under the session key, then
 * 32 zero bytes. Compares all 64 bytes without an early exit.
 */
export function verifySealedFrame(f: RawFrame, sessionKey: Uint8Array): boolean {
  if (!(f.header.flags & FLAG_SESSION)) return false;
  const tag = sessionTag(sessionKey, f.signed);
  const got = f.signature;
  let diff = 0;
  for (let i = 0; i < tag.length; i++) diff |= tag[i]! ^ got[i]!;
  for (let i = tag.length; i < got.length; i++) diff |= got[i]!;
  return diff === 0;
}

function f64(v: unknown, field: string, count?: number): Float64Array {
  if (!(v instanceof Uint8Array) || v.byteLength % 8 !== 0) throw new FrameError("bad_body", `${field} must be binary float64 data`);
  const n = v.byteLength / 8;
  if (count !== undefined && n !== count) throw new FrameError("bad_body", `${field} holds ${n} values, expected ${count}`);
  if (LITTLE_ENDIAN) {
    if (v.byteOffset % 8 === 0) return new Float64Array(v.buffer, v.byteOffset, n);
    // a copy of exactly these bytes whatever v is: a Buffer's slice() is a view, and its .buffer the whole backing store
    return new Float64Array(Uint8Array.prototype.slice.call(v).buffer);
  }
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  return Float64Array.from({ length: n }, (_, i) => dv.getFloat64(i * 8, true));
}

function strings(v: unknown, field: string, maxLen: number, count?: number): string[] {
  if (!Array.isArray(v)) throw new FrameError("bad_body", `${field} must be an array of strings`);
  if (count !== undefined && v.length !== count) throw new FrameError("bad_body", `${field} has ${v.length} entries, expected ${count}`);
  for (let i = 0; i < v.length; i++) {
    const s = v[i];
    if (typeof s !== "string") throw new FrameError("bad_body", `${field}[${i}] is ${typeof s}, not a string`);
    if (s.length > maxLen) throw new FrameError("bad_body", `${field}[${i}] is ${s.length} characters, over ${maxLen}`);
  }
  return v as string[];
}

/**
 * A body timestamp: a whole number of ms in [2000-01-01, 2100-01-01). Fractions are refused, not
 * truncated: the store keeps whole ms, and acknowledging a value it then changes would be a lie.
 */
function timestampProblem(t: unknown, field: string): FrameError | undefined {
  if (typeof t !== "number" || !(t >= MIN_TS && t < MAX_TS)) return new FrameError("bad_timestamp", `${field} = ${String(t)} is not a time from 2000-01-01 (inclusive) to 2100-01-01 (exclusive) in ms`);
  if (!Number.isInteger(t)) return new FrameError("bad_timestamp", `${field} = ${t} is not a whole number of ms (fractions are refused, not truncated)`);
  return undefined;
}

function timestamps(ts: Float64Array, field: string): void {
  for (let i = 0; i < ts.length; i++) {
    const problem = timestampProblem(ts[i], `${field}[${i}]`);
    if (problem) throw problem;
  }
}

/**
 * Names (series, log sources, event types, paths) are stored as PostgreSQL text, which cannot
 * hold U+0000; a name is an identifier, so one that holds it is refused (`bad_name`) rather
 * than altered. Free text (log messages, event data) is stored whatever it holds (pg-text.ts).
 */
function checkName(s: string, field: string): void {
  if (s.indexOf("\u0000") >= 0 || !s.isWellFormed()) throw new FrameError("bad_name", `${field} holds U+0000 or an unpaired surrogate, which a name may not hold`);
}

/** Maps (event data, inventory, heartbeats) nest at most this deep; jsonb and its readers recurse. */
export const MAX_MAP_DEPTH = 64;

function checkDepth(v: unknown, field: string, depth = 0): void {
  if (v === null || typeof v !== "object") return;
  if (depth >= MAX_MAP_DEPTH) throw new FrameError("bad_body", `${field} nests deeper than ${MAX_MAP_DEPTH} levels`);
  if (Array.isArray(v)) for (const x of v) checkDepth(x, field, depth + 1);
  else if (!(v instanceof Uint8Array)) for (const k in v) checkDepth((v as Record<string, unknown>)[k], field, depth + 1);
}

function object(v: unknown, what: string): Record<string, unknown> {
  // Plain maps only: msgpackr also yields class instances (extensions, the 0xc1 marker).
  if (v === null || typeof v !== "object" || Object.getPrototypeOf(v) !== Object.prototype) {
    throw new FrameError("bad_body", `${what} must be a map`);
  }
  return v as Record<string, unknown>;
}

/**
 * Agents send the same set of names frame after frame, so checked name lists are memoized
 * (bounded; cleared when full). The result is shared: callers must not change it. It carries
 * the first copy of the joined string as its key, so every frame with these names hands on the
 * same string object, and the writer's and agent state's comparisons of keys (`===`) end at the
 * pointer instead of comparing ~1.5 kB each time.
 */
const namesMemo = new Map<string, { key: string; names: string[] }>();
const NAMES_MEMO_MAX = 20_000;

function seriesNames(joined: string): { key: string; names: string[] } {
  const hit = namesMemo.get(joined);
  if (hit) return hit;
  checkName(joined, "metrics.n");
  const names = joined.split("\n");
  if (names.length > 100_000) throw new FrameError("bad_body", `metrics.n lists ${names.length} series, over 100000`);
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    if (n.length === 0) throw new FrameError("bad_body", `metrics.n[${i}] is an empty series name`);
    if (n.length > MAX_NAME) throw new FrameError("bad_body", `metrics.n[${i}] is ${n.length} characters, over ${MAX_NAME}`);
  }
  if (new Set(names).size !== names.length) throw new FrameError("bad_body", "metrics.n repeats a series name");
  if (namesMemo.size >= NAMES_MEMO_MAX) namesMemo.clear();
  const entry = { key: joined, names };
  namesMemo.set(joined, entry);
  return entry;
}

function decodeMetrics(o: Record<string, unknown>, items: number): MetricsBody {
  const ts = f64(o.t, "metrics.t");
  timestamps(ts, "metrics.t");
  for (let i = 1; i < ts.length; i++) {
    if (!(ts[i]! > ts[i - 1]!)) throw new FrameError("bad_body", `metrics.t must increase: t[${i}] = ${ts[i]} follows ${ts[i - 1]}`);
  }
  // Readers find a block by its first timestamp; a bounded span keeps that search bounded.
  if (ts.length > 0 && ts[ts.length - 1]! - ts[0]! > MAX_METRICS_SPAN_MS) throw new FrameError("bad_body", `metrics.t spans more than ${MAX_METRICS_SPAN_MS / 3_600_000} hours`);
  if (typeof o.n !== "string") throw new FrameError("bad_body", "metrics.n must be the series names joined by newlines");
  const { key, names } = seriesNames(o.n);
  const values = f64(o.v, "metrics.v", names.length * ts.length);
  if (values.length !== items) throw new FrameError("bad_body", `header claims ${items} samples, body holds ${values.length}`);
  return { ts, names, values, namesKey: key };
}

function decodeLogs(o: Record<string, unknown>, items: number): LogsBody {
  const ts = f64(o.t, "logs.t", items);
  timestamps(ts, "logs.t");
  const sev = o.s;
  if (!(sev instanceof Uint8Array) || sev.length !== items) throw new FrameError("bad_body", `logs.s must be ${items} severity bytes`);
  const sources = strings(o.src, "logs.src", 1024);
  sources.forEach((x, i) => checkName(x, `logs.src[${i}]`));
  const si = o.si;
  if (!(si instanceof Uint8Array) || si.length !== items * 2) throw new FrameError("bad_body", `logs.si must be ${items} u16 source indexes`);
  const dv = new DataView(si.buffer, si.byteOffset, si.byteLength);
  const sourceIndex = new Uint16Array(items);
  for (let i = 0; i < items; i++) {
    const x = dv.getUint16(i * 2, true);
    if (x >= sources.length) throw new FrameError("bad_body", `logs.si[${i}] = ${x} but only ${sources.length} sources are listed`);
    sourceIndex[i] = x;
  }
  for (let i = 0; i < items; i++) if (sev[i]! > 7) throw new FrameError("bad_body", `logs.s[${i}] = ${sev[i]} is not a syslog severity 0-7`);
  const messages = strings(o.m, "logs.m", MAX_MESSAGE, items);
  return { ts, severity: sev, sources, sourceIndex, messages };
}

function decodeSecurity(o: Record<string, unknown>, items: number): SecurityEvent[] {
  const e = o.e;
  if (!Array.isArray(e) || e.length !== items) throw new FrameError("bad_body", `security.e must be an array of ${items} events`);
  return e.map((raw, i) => {
    const ev = object(raw, `security.e[${i}]`);
    const { ts, type, severity, path, data } = ev;
    const tsProblem = timestampProblem(ts, `security.e[${i}].ts`);
    if (tsProblem) throw tsProblem;
    if (typeof type !== "string" || type.length === 0 || type.length > 128) throw new FrameError("bad_body", `security.e[${i}].type must be a short string`);
    if (typeof severity !== "number" || !Number.isInteger(severity) || severity < 0 || severity > 10) throw new FrameError("bad_body", `security.e[${i}].severity must be 0-10`);
    if (path !== undefined && typeof path !== "string") throw new FrameError("bad_body", `security.e[${i}].path must be a string`);
    checkName(type, `security.e[${i}].type`);
    if (path !== undefined) checkName(path as string, `security.e[${i}].path`);
    if (data !== undefined) checkDepth(object(data, `security.e[${i}].data`), `security.e[${i}].data`);
    return { ts: ts as number, type: type as string, severity, path: path as string | undefined, data: data as Record<string, unknown> | undefined };
  });
}

/**
 * Expands one LZ4 block to exactly `rawLength` bytes or throws Lz4Error. The pure-TypeScript
 * `lz4Decompress` is the reference; the server may pass a faster one (src/ingest/lz4-native.ts)
 * that must accept and reject exactly the same blocks.
 */
export type Inflate = (src: Uint8Array, rawLength: number) => Uint8Array;

/** Decompresses and decodes a frame's body, checking it against its header. */
export function decodeFrameBody(h: FrameHeader, wire: Uint8Array, inflate: Inflate = lz4Decompress): FrameBody {
  let raw = wire;
  if (h.flags & FLAG_LZ4) {
    try {
      raw = inflate(wire, h.rawLength);
    } catch (e) {
      if (e instanceof Lz4Error) throw new FrameError("bad_lz4", e.message);
      throw e;
    }
  }
  let v: unknown;
  try {
    v = unpackr.unpack(raw);
  } catch (e) {
    throw new FrameError("bad_msgpack", `body is not valid msgpack: ${e instanceof Error ? e.message : e}`);
  }
  const o = object(v, `${KIND_NAMES[h.kind]} body`);
  switch (h.kind) {
    case FrameKind.Metrics:
      return { kind: h.kind, body: decodeMetrics(o, h.items) };
    case FrameKind.Logs:
      return { kind: h.kind, body: decodeLogs(o, h.items) };
    case FrameKind.SecurityEvents:
      return { kind: h.kind, body: { events: decodeSecurity(o, h.items) } };
    case FrameKind.Inventory:
      checkDepth(o, "inventory");
      return { kind: h.kind, body: o };
    case FrameKind.Heartbeat:
      checkDepth(o, "heartbeat");
      return { kind: h.kind, body: o };
    case FrameKind.Hello: {
      if (typeof o.nonce !== "string" || typeof o.version !== "string") throw new FrameError("bad_body", "hello needs string nonce and version");
      return { kind: h.kind, body: { nonce: o.nonce, version: o.version } };
    }
    default:
      throw new FrameError("unknown_kind", `frame kind ${h.kind} is unknown`);
  }
}
