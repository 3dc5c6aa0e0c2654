/**
 * The WebSocket transport (wss://host/api/v1/stream) with the certificate pinned (`ca` plus a
 * fingerprint check in checkServerIdentity), optionally through an HTTP CONNECT proxy.
 *
 * Handshake: the server sends {"type":"challenge","nonce"}; we answer with a signed Hello frame
 * carrying the nonce; the server answers {"type":"welcome"}, with a session (docs/protocol.md 3.5)
 * from servers that have them, exposed as the transport's `session`. Then each send() is one binary
 * message answered by one {"type":"ack"} message (one message in flight at a time, so answers
 * match sends by order). {"type":"slow","retryAfterMs"} asks us to pause. {"type":"command"}
 * messages may arrive at any time and go to `onCommand`; other unknown types are ignored.
 */
import type { PinnedTls } from "./pin.ts";
import { parseSessionGrant, type SessionGrant } from "./session.ts";
import { parseAnswer, TransportError, type SendResult, type Transport } from "./transport.ts";

export interface WsTransportOptions {
  baseUrl: string;
  tls: PinnedTls;
  timeoutMs: number;
  /** Builds the signed Hello frame for the server's challenge nonce. */
  hello: (nonce: string) => Uint8Array;
  /** http(s)://[user:pass@]host:port of a CONNECT proxy; see proxyFor(). */
  proxy?: string;
  /**
   * Receives {"type":"command"} messages the server pushes (Platform hands them to Control);
   * `reply` sends the answer back as {"type":"command-result","id","result"}.
   */
  onCommand?: (msg: Record<string, unknown>, reply: (result: unknown) => void, output?: (chunk: { seq: number; lines: unknown[] }) => void) => void;
  /** Called once when the stream ends, for whatever reason. */
  onClose?: (e: Error) => void;
}

/** The proxy for `target` from HTTPS_PROXY / https_proxy, unless NO_PROXY names its host. */
export function proxyFor(target: string, env: Record<string, string | undefined> = process.env): string | undefined {
  const proxy = env.HTTPS_PROXY || env.https_proxy;
  if (!proxy) return undefined;
  const host = new URL(target).hostname.toLowerCase();
  const noProxy = (env.NO_PROXY || env.no_proxy || "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const n of noProxy) {
    if (n === "*" || host === n || host.endsWith(n.startsWith(".") ? n : `.${n}`)) return undefined;
  }
  return proxy;
}

export async function connectWsTransport(o: WsTransportOptions): Promise<Transport> {
  const url = new URL("/api/v1/stream", o.baseUrl);
  url.protocol = "wss:";
  const ws = new WebSocket(url.toString(), { tls: o.tls, proxy: o.proxy, perMessageDeflate: false } as any);
  ws.binaryType = "arraybuffer";
  let pending: { resolve: (r: SendResult) => void; reject: (e: Error) => void; timer: Timer } | undefined;
  let closedWith: Error | undefined;
  let pauseUntil = 0;
  // from the welcome; absent or malformed (older servers send none) means frames stay signed
  let session: SessionGrant | undefined;

  const fail = (e: Error) => {
    if (!closedWith) queueMicrotask(() => o.onClose?.(e));
    closedWith ??= e;
    if (pending) {
      clearTimeout(pending.timer);
      pending.reject(e);
      pending = undefined;
    }
  };

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new TransportError(`wss: no welcome from ${url.host} within ${o.timeoutMs} ms`));
      ws.close();
    }, o.timeoutMs);
    let welcomed = false;
    ws.onmessage = (ev) => {
      let m: any;
      try {
        m = typeof ev.data === "string" ? JSON.parse(ev.data) : undefined;
      } catch {
        m = undefined;
      }
      if (!welcomed) {
        if (m?.type === "challenge" && typeof m.nonce === "string" && m.nonce.length <= 256) {
          try {
            ws.send(o.hello(m.nonce) as Uint8Array<ArrayBuffer>);
          } catch (e) {
            reject(new TransportError(`wss: sending hello failed: ${e instanceof Error ? e.message : e}`));
          }
        } else if (m?.type === "welcome") {
          welcomed = true;
          session = parseSessionGrant(m.session);
          clearTimeout(timer);
          resolve();
        } else if (m?.type === "error") {
          clearTimeout(timer);
          reject(new TransportError(`wss: server refused the hello: ${String(m.code)}: ${String(m.message).slice(0, 300)}`));
        } else {
          clearTimeout(timer);
          reject(new TransportError("wss: unexpected message during the handshake"));
          ws.close();
        }
        return;
      }
      if (m?.type === "command") {
        // pushed by the server at any time, never an answer to a send
        try {
          o.onCommand?.(m, (result) => {
            try {
              ws.send(JSON.stringify({ type: "command-result", id: m.id, result }));
            } catch {
              /* the stream closed; the server times the command out */
            }
          }, (chunk) => {
            try {
              ws.send(JSON.stringify({ type: "command-output", id: m.id, seq: chunk.seq, lines: chunk.lines }));
            } catch {
              /* the stream closed: the output is lost, the result still tries */
            }
          });
        } catch {
          /* a bad command must not break the stream */
        }
        return;
      }
      if (m && typeof m.type === "string" && !["ack", "error", "slow"].includes(m.type)) return; // newer message kinds
      if (m?.type === "slow") {
        const ms = Number(m.retryAfterMs);
        pauseUntil = Date.now() + (Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 60_000) : 1000);
        return;
      }
      if (!pending) return;
      const p = pending;
      pending = undefined;
      clearTimeout(p.timer);
      if (m?.type === "ack") {
        try {
          const r = parseAnswer(m, "wss ack");
          if (pauseUntil > Date.now()) r.retryAfterMs = pauseUntil - Date.now();
          p.resolve(r);
        } catch (e) {
          p.reject(e as Error);
        }
      } else if (m?.type === "error") p.reject(new TransportError(`wss: ${String(m.code)}: ${String(m.message).slice(0, 300)}`));
      else p.reject(new TransportError("wss: answer is not an ack"));
    };
    ws.onerror = () => {
      clearTimeout(timer);
      const e = new TransportError(`wss: connection to ${url.host} failed${o.proxy ? " (through proxy)" : ""}`);
      fail(e);
      reject(e);
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      // 1009: the message was over the server's limit (docs/protocol.md, Limits)
      const e = new TransportError(`wss: connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`, false, ev.code === 1009);
      fail(e);
      reject(e);
    };
  });

  return {
    name: "wss",
    session,
    send(frames) {
      if (closedWith) return Promise.reject(closedWith);
      if (pending) return Promise.reject(new TransportError("wss: a send is already waiting for its ack"));
      return new Promise<SendResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending = undefined;
          reject(new TransportError(`wss: no ack within ${o.timeoutMs} ms`));
          ws.close();
        }, o.timeoutMs);
        pending = { resolve, reject, timer };
        try {
          ws.send(Buffer.concat(frames));
        } catch (e) {
          fail(new TransportError(`wss: send failed: ${e instanceof Error ? e.message : e}`));
        }
      });
    },
    close() {
      fail(new TransportError("wss: closed"));
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    },
  };
}
