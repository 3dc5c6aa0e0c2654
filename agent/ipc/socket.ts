/**
 * Messages between the agent's processes over Unix sockets: each message is a u32 little-endian
 * length and a msgpack body, at most `MAX_MESSAGE` bytes (a larger one closes the connection).
 * Every request carries an id and gets exactly one reply with the same id; before it, the server
 * may send any number of `{t: "progress", id, ...}` messages with that id (output of a command
 * that is still running), which the client hands to the request's `onProgress`.
 *
 * Who may connect is decided by the file system: each socket lives in a directory whose group
 * is the one peer allowed to reach it (see agent/supervisor/layout.ts), mode 0750.
 */
// the pure-JS entry, as in src/ingest/frame/encode.ts: no native-addon lookup in every process
import { Packr } from "msgpackr/pack";
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import type { Socket, UnixSocketListener } from "bun";

const packr = new Packr({ useRecords: false });
export const MAX_MESSAGE = 32 << 20;

export type Message = Record<string, unknown> & { id?: number };

/** Splits a byte stream into messages; bounded by MAX_MESSAGE. */
export function createMessageReader(onMessage: (m: Message) => void, onError: (e: Error) => void) {
  let buf = new Uint8Array(0);
  return (chunk: Uint8Array) => {
    const joined = new Uint8Array(buf.length + chunk.length);
    joined.set(buf);
    joined.set(chunk, buf.length);
    buf = joined;
    while (buf.length >= 4) {
      const len = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, true);
      if (len > MAX_MESSAGE) return onError(new Error(`IPC message of ${len} bytes is over the ${MAX_MESSAGE} byte limit`));
      if (buf.length < 4 + len) break;
      let m: unknown;
      try {
        m = packr.unpack(buf.subarray(4, 4 + len));
      } catch (e) {
        return onError(new Error(`IPC message is not msgpack: ${e instanceof Error ? e.message : e}`));
      }
      buf = buf.slice(4 + len);
      if (m && typeof m === "object" && !Array.isArray(m)) onMessage(m as Message);
      else return onError(new Error("IPC message is not a map"));
    }
  };
}

export function encodeMessage(m: Message): Uint8Array {
  const body = packr.pack(m);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

interface Conn {
  reader: (chunk: Uint8Array) => void;
  queue: Uint8Array[];
}

function writeAll(sock: Socket<Conn>, data: Uint8Array) {
  const q = sock.data.queue;
  if (q.length) {
    q.push(data);
    return;
  }
  const n = sock.write(data);
  if (n < data.length) q.push(data.subarray(Math.max(n, 0)));
}

function flush(sock: Socket<Conn>) {
  const q = sock.data.queue;
  while (q.length) {
    const d = q[0]!;
    const n = sock.write(d);
    if (n < d.length) {
      q[0] = d.subarray(Math.max(n, 0));
      return;
    }
    q.shift();
  }
}

export interface IpcServer {
  stop(): void;
}

/**
 * Serves requests on `path`; `handle` returns the reply (without id). The socket file is 0666:
 * its directory (0750, group = the one intended client) is what keeps everyone else out.
 */
export function listenIpc(path: string, handle: (m: Message, progress: (p: Message) => void) => Promise<Message> | Message): IpcServer {
  if (existsSync(path)) unlinkSync(path);
  const server: UnixSocketListener<Conn> = Bun.listen<Conn>({
    unix: path,
    socket: {
      open(sock) {
        sock.data = {
          queue: [],
          reader: createMessageReader(
            async (m) => {
              let reply: Message;
              let done = false;
              // progress after the reply would be mistaken for nothing: dropped
              const progress = (p: Message) => {
                if (!done) writeAll(sock, encodeMessage({ ...p, t: "progress", id: m.id }));
              };
              try {
                reply = await handle(m, progress);
              } catch (e) {
                reply = { t: "error", message: e instanceof Error ? e.message : String(e) };
              }
              done = true;
              writeAll(sock, encodeMessage({ ...reply, id: m.id }));
            },
            () => sock.end(),
          ),
        };
      },
      data(sock, chunk) {
        sock.data.reader(chunk);
      },
      drain: flush,
      error() {},
    },
  });
  chmodSync(path, 0o666);
  return { stop: () => server.stop(true) };
}

export interface IpcClient {
  /** `onProgress` gets the `{t: "progress"}` messages sent for this request before its reply. */
  request(m: Message, timeoutMs?: number, onProgress?: (p: Message) => void): Promise<Message>;
  close(): void;
  readonly connected: boolean;
}

/** Connects to `path`; rejects when the peer is not there or refuses us (permissions). */
export async function connectIpc(path: string): Promise<IpcClient> {
  let nextId = 1;
  let open = true;
  const waiting = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void; timer: Timer; onProgress?: (p: Message) => void }>();
  const failAll = (e: Error) => {
    open = false;
    for (const w of waiting.values()) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    waiting.clear();
  };
  const sock = await Bun.connect<Conn>({
    unix: path,
    socket: {
      open(s) {
        s.data = {
          queue: [],
          reader: createMessageReader(
            (m) => {
              const w = typeof m.id === "number" ? waiting.get(m.id) : undefined;
              if (!w) return;
              if (m.t === "progress") {
                try {
                  w.onProgress?.(m);
                } catch {
                  /* a progress consumer must not break the connection */
                }
                return;
              }
              waiting.delete(m.id as number);
              clearTimeout(w.timer);
              w.resolve(m);
            },
            (e) => {
              failAll(e);
              s.end();
            },
          ),
        };
      },
      data(s, chunk) {
        s.data.reader(chunk);
      },
      drain: flush,
      close() {
        failAll(new Error(`IPC connection to ${path} closed`));
      },
      error(_s, e) {
        failAll(e);
      },
    },
  });
  return {
    get connected() {
      return open;
    },
    request(m, timeoutMs = 10_000, onProgress) {
      if (!open) return Promise.reject(new Error(`IPC connection to ${path} is closed`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`IPC request to ${path} got no reply within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, { resolve, reject, timer, onProgress });
        writeAll(sock, encodeMessage({ ...m, id }));
      });
    },
    close() {
      open = false;
      sock.end();
    },
  };
}
