/**
 * Misbehaving clients over real TLS, for tests and the attack bench: a slow POST that declares a
 * large body and trickles it (slowloris), and a WebSocket that never says hello but pings.
 * `localAddress` picks the client's loopback address (127.0.0.0/8), so per-address caps can be
 * exercised from one machine. Every client ends by itself within `maxMs`.
 */
import tls from "node:tls";
import { randomBytes } from "node:crypto";

export interface RawClientOptions {
  port: number;
  localAddress?: string;
  /** The client gives up (and closes) after this long. */
  maxMs?: number;
}

export interface SlowPostResult {
  /** HTTP status the server answered with, 0 for none. */
  status: number;
  /** When the server closed the connection, ms after the start (or the client gave up: `gaveUp`). */
  closedMs: number;
  gaveUp: boolean;
}

/** POST `path` with a large Content-Length, then one byte every `everyMs` (HTTP/1.1). */
export function slowPost(o: RawClientOptions & { path?: string; contentType?: string; contentLength?: number; everyMs?: number; firstBytes?: Uint8Array }): { done: Promise<SlowPostResult>; close(): void } {
  const t0 = performance.now();
  let out = "";
  let gaveUp = false;
  let tick: ReturnType<typeof setInterval> | undefined;
  const s = tls.connect({ host: "127.0.0.1", port: o.port, localAddress: o.localAddress, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] } as tls.ConnectionOptions, () => {
    const head = `POST ${o.path ?? "/api/v1/ingest"} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${o.contentType ?? "application/vnd.servermind.frames"}\r\nContent-Length: ${o.contentLength ?? 10_000_000}\r\n\r\n`;
    s.write(Buffer.concat([Buffer.from(head), o.firstBytes ?? Buffer.from("x")]));
    tick = setInterval(() => {
      if (!s.destroyed && s.writable) s.write("x");
    }, o.everyMs ?? 300);
  });
  const limit = setTimeout(() => {
    gaveUp = true;
    s.destroy();
  }, o.maxMs ?? 30_000);
  s.on("data", (d) => (out += d));
  s.on("error", () => {});
  const done = new Promise<SlowPostResult>((resolve) =>
    s.on("close", () => {
      clearInterval(tick);
      clearTimeout(limit);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(out);
      resolve({ status: m ? Number(m[1]) : 0, closedMs: performance.now() - t0, gaveUp });
    }),
  );
  return { done, close: () => s.destroy() };
}

export interface SilentSocketResult {
  /** Status of the upgrade answer (101 when it was accepted). */
  status: number;
  /** Close code of the server's close frame, 0 for none. */
  closeCode: number;
  closedMs: number;
  gaveUp: boolean;
}

/** Opens the agent stream and never says hello; sends a ping every `pingEveryMs`. */
export function silentSocket(o: RawClientOptions & { pingEveryMs?: number }): { upgraded: Promise<number>; done: Promise<SilentSocketResult>; close(): void } {
  const t0 = performance.now();
  let head = "";
  let status = 0;
  let closeCode = 0;
  let gaveUp = false;
  let rest = Buffer.alloc(0);
  let onStatus: (n: number) => void;
  const upgraded = new Promise<number>((r) => (onStatus = r));
  const s = tls.connect({ host: "127.0.0.1", port: o.port, localAddress: o.localAddress, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] } as tls.ConnectionOptions, () => {
    s.write(
      `GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
  const ping = setInterval(() => {
    // a masked, empty ping frame
    if (status === 101 && !s.destroyed && s.writable) s.write(Buffer.concat([Buffer.from([0x89, 0x80]), randomBytes(4)]));
  }, o.pingEveryMs ?? 200);
  const limit = setTimeout(() => {
    gaveUp = true;
    s.destroy();
  }, o.maxMs ?? 30_000);
  s.on("data", (d: Buffer) => {
    if (!status) {
      head += d.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      onStatus(status);
      rest = Buffer.from(head.slice(end + 4), "latin1");
    } else rest = Buffer.concat([rest, d]);
    // server frames are unmasked; look for a close frame (opcode 8) and read its code
    while (rest.length >= 2) {
      const len7 = rest[1]! & 0x7f;
      const hdr = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
      if (rest.length < hdr) break;
      const len = len7 === 126 ? rest.readUInt16BE(2) : len7 === 127 ? Number(rest.readBigUInt64BE(2)) : len7;
      if (rest.length < hdr + len) break;
      if ((rest[0]! & 0x0f) === 8 && len >= 2) closeCode = rest.readUInt16BE(hdr);
      rest = rest.subarray(hdr + len);
    }
  });
  s.on("error", () => {});
  const done = new Promise<SilentSocketResult>((resolve) =>
    s.on("close", () => {
      clearInterval(ping);
      clearTimeout(limit);
      onStatus(status);
      resolve({ status, closeCode, closedMs: performance.now() - t0, gaveUp });
    }),
  );
  return { upgraded, done, close: () => s.destroy() };
}

/**
 * Sends `body` to `path` again and again over one HTTP/1.1 connection from `localAddress`
 * (reconnecting when the server closes it), waiting `pauseMs` after each answer (more after a
 * 429), until `maxMs`. Returns how many answers of each status it got.
 */
export async function repeatPost(o: RawClientOptions & { path: string; body: Uint8Array; pauseMs: number }): Promise<Record<string, number>> {
  const end = performance.now() + (o.maxMs ?? 10_000);
  const counts: Record<string, number> = {};
  const head = Buffer.from(`POST ${o.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.servermind.frames\r\nContent-Length: ${o.body.length}\r\n\r\n`);
  const request = Buffer.concat([head, o.body]);
  while (performance.now() < end) {
    await new Promise<void>((resolve) => {
      let buf = Buffer.alloc(0);
      const s = tls.connect({ host: "127.0.0.1", port: o.port, localAddress: o.localAddress, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] } as tls.ConnectionOptions, () => s.write(request));
      const limit = setTimeout(() => s.destroy(), Math.max(0, end - performance.now()));
      s.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const at = buf.indexOf("\r\n\r\n");
          if (at < 0) return;
          const headers = buf.subarray(0, at).toString("latin1");
          const length = Number(/content-length: *(\d+)/i.exec(headers)?.[1] ?? 0);
          if (buf.length < at + 4 + length) return;
          const status = /^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? "0";
          counts[status] = (counts[status] ?? 0) + 1;
          buf = buf.subarray(at + 4 + length);
          if (/connection: *close/i.test(headers) || performance.now() >= end) return s.destroy();
          setTimeout(() => !s.destroyed && s.write(request), status === "429" ? 1000 : o.pauseMs);
        }
      });
      s.on("error", () => {});
      s.on("close", () => {
        clearTimeout(limit);
        resolve();
      });
    });
  }
  return counts;
}

/** A client WebSocket frame (masked, as every client frame is): `opcode` 1 text, 2 binary. */
export function maskedFrame(opcode: number, payload: Uint8Array): Buffer {
  const len = payload.length;
  const head = Buffer.alloc(len < 126 ? 2 : len < 65536 ? 4 : 10);
  head[0] = 0x80 | opcode;
  if (len < 126) head[1] = 0x80 | len;
  else if (len < 65536) (head[1] = 0x80 | 126), head.writeUInt16BE(len, 2);
  else (head[1] = 0x80 | 127), head.writeBigUInt64BE(BigInt(len), 2);
  const mask = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i & 3]!;
  return Buffer.concat([head, mask, body]);
}

/**
 * The agent stream over raw TLS, so a test can stop reading (`deafen()`) and keep writing. Text
 * messages from the server are parsed as JSON into `messages`; `next()` waits for the next one.
 */
export function rawStream(o: RawClientOptions): {
  next(): Promise<any>;
  write(frame: Uint8Array): boolean;
  /** Stops reading: what the server sends piles up in its buffers. */
  deafen(): void;
  /** Resolves when the connection is closed (by the server, or `maxMs`), with the server's close code (0 for none seen). */
  done: Promise<{ closeCode: number; closedMs: number; gaveUp: boolean }>;
  readonly closed: boolean;
  close(): void;
} {
  const t0 = performance.now();
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let closed = false;
  let closeCode = 0;
  let gaveUp = false;
  const messages: any[] = [];
  let wake: (() => void) | undefined;
  const s = tls.connect({ host: "127.0.0.1", port: o.port, localAddress: o.localAddress, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] } as tls.ConnectionOptions, () => {
    s.write(
      `GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
  s.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (!upgraded) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      upgraded = true;
      buf = buf.subarray(end + 4);
    }
    while (buf.length >= 2) {
      const len7 = buf[1]! & 0x7f;
      const hdr = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
      if (buf.length < hdr) break;
      const len = len7 === 126 ? buf.readUInt16BE(2) : len7 === 127 ? Number(buf.readBigUInt64BE(2)) : len7;
      if (buf.length < hdr + len) break;
      const op = buf[0]! & 0x0f;
      if (op === 8 && len >= 2) closeCode = buf.readUInt16BE(hdr);
      else if (op === 1) messages.push(JSON.parse(buf.subarray(hdr, hdr + len).toString()));
      buf = buf.subarray(hdr + len);
      wake?.();
    }
  });
  s.on("error", () => {});
  const limit = setTimeout(() => {
    gaveUp = true;
    s.destroy();
  }, o.maxMs ?? 30_000);
  const done = new Promise<{ closeCode: number; closedMs: number; gaveUp: boolean }>((resolve) =>
    s.on("close", () => {
      closed = true;
      clearTimeout(limit);
      wake?.();
      resolve({ closeCode, closedMs: performance.now() - t0, gaveUp });
    }),
  );
  return {
    async next() {
      while (!messages.length && !closed) await new Promise<void>((r) => (wake = r));
      return messages.shift();
    },
    write: (frame) => !s.destroyed && s.write(frame),
    deafen: () => void s.pause(),
    done,
    get closed() {
      return closed;
    },
    close: () => s.destroy(),
  };
}

/** An HTTP/2 frame as RFC 9113 section 4.1 lays it out: 24-bit length, type, flags, 31-bit stream id. */
export function h2Frame(type: number, flags: number, stream: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export const H2 = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9, END_STREAM: 1, END_HEADERS: 4 } as const;

/** A GET of `path` as an HPACK header block of static-table entries and literals, no Huffman (RFC 7541). */
export function h2GetHeaders(path: string, authority = "127.0.0.1"): Buffer {
  const literal = (nameIndex: number, value: string) => Buffer.concat([Buffer.of(nameIndex), Buffer.of(value.length), Buffer.from(value)]); // without indexing, indexed name
  return Buffer.concat([Buffer.of(0x82, 0x87), literal(0x04, path), literal(0x01, authority)]); // :method GET, :scheme https, :path, :authority
}

/**
 * A raw HTTP/2 connection over TLS (ALPN h2), for clients that break the rules. It sends the
 * preface and an empty SETTINGS, acknowledges nothing, and records the server's GOAWAY.
 */
export function rawH2(o: RawClientOptions): {
  /** Writes; false once the socket is closed. */
  write(b: Uint8Array): boolean;
  /** The server's GOAWAY error code, when it sent one. */
  readonly goaway: number | undefined;
  readonly closed: boolean;
  done: Promise<{ closedMs: number; goaway: number | undefined; gaveUp: boolean }>;
  ready: Promise<void>;
  close(): void;
} {
  const t0 = performance.now();
  let buf = Buffer.alloc(0);
  let goaway: number | undefined;
  let closed = false;
  let gaveUp = false;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const s = tls.connect({ host: "127.0.0.1", port: o.port, localAddress: o.localAddress, rejectUnauthorized: false, ALPNProtocols: ["h2"] } as tls.ConnectionOptions, () => {
    s.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), h2Frame(H2.SETTINGS, 0, 0)]));
    ready();
  });
  s.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      if (buf[3] === H2.GOAWAY && len >= 8) goaway = buf.readUInt32BE(9 + 4);
      buf = buf.subarray(9 + len);
    }
  });
  s.on("error", () => {});
  const limit = setTimeout(() => {
    gaveUp = true;
    s.destroy();
  }, o.maxMs ?? 30_000);
  const done = new Promise<{ closedMs: number; goaway: number | undefined; gaveUp: boolean }>((resolve) =>
    s.on("close", () => {
      closed = true;
      clearTimeout(limit);
      resolve({ closedMs: performance.now() - t0, goaway, gaveUp });
    }),
  );
  return {
    write: (b) => !closed && !s.destroyed && s.write(b),
    get goaway() {
      return goaway;
    },
    get closed() {
      return closed;
    },
    done,
    ready: isReady,
    close: () => s.destroy(),
  };
}
