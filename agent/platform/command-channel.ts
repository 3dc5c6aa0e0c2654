/**
 * The command channel: a WebSocket stream kept open to the server only to receive commands,
 * whatever transport ships the data (HTTP/3 has no way for the server to push). Reconnects with
 * backoff and jitter; each command goes to `onCommand` with a reply function.
 */
import { connectWsTransport, proxyFor } from "../ship/ws-transport.ts";
import type { PinnedTls } from "../ship/pin.ts";

export interface CommandChannelOptions {
  serverUrl: string;
  tls: PinnedTls;
  timeoutMs: number;
  hello: (nonce: string) => Uint8Array;
  onCommand: (msg: Record<string, unknown>, reply: (result: unknown) => void, output?: (chunk: { seq: number; lines: unknown[] }) => void) => void;
  log: (m: string) => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export function startCommandChannel(o: CommandChannelOptions): { connected(): boolean; stop(): void } {
  let stopped = false;
  let connected = false;
  let close: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let backoff = o.minBackoffMs ?? 1000;
  const max = o.maxBackoffMs ?? 60_000;

  let scheduled = false;
  /** Schedules one reconnect; a failed handshake reports both a close and an error: one retry. */
  const retry = () => {
    if (stopped || scheduled) return;
    scheduled = true;
    const delay = backoff * (0.5 + Math.random()); // jitter, so a server restart does not bring every agent back at once
    backoff = Math.min(max, backoff * 2);
    timer = setTimeout(() => {
      scheduled = false;
      void open();
    }, delay);
  };

  const open = async () => {
    try {
      const t = await connectWsTransport({
        baseUrl: o.serverUrl, tls: o.tls, timeoutMs: o.timeoutMs, hello: o.hello, proxy: proxyFor(o.serverUrl),
        onCommand: o.onCommand,
        onClose: (e) => {
          connected = false;
          if (!stopped) o.log(`command channel closed: ${e.message}`);
          retry();
        },
      });
      if (stopped) return t.close();
      connected = true;
      backoff = o.minBackoffMs ?? 1000;
      close = () => t.close();
    } catch (e) {
      o.log(`command channel: ${e instanceof Error ? e.message : e}`);
      retry();
    }
  };
  void open();
  return {
    connected: () => connected,
    stop() {
      stopped = true;
      clearTimeout(timer);
      close?.();
    },
  };
}
