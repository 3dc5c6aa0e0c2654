/**
 * The Collector's hand-off to Platform: a bounded in-memory queue sent in order over the IPC
 * socket. An entry leaves only when Platform replies that it is in the spool; then its `commit`
 * runs (log offsets advance). When Platform is down the queue holds up to its bounds and then
 * drops its oldest entries, counting them.
 */
import { connectIpc, type IpcClient } from "../ipc/socket.ts";

export interface OutboxEntry {
  kind: number;
  items: number;
  createdMs: number;
  body: Uint8Array;
  commit?: () => void;
}

export interface OutboxOptions {
  socketPath: string;
  maxEntries?: number;
  maxBytes?: number;
  retryMs?: number;
  log?: (m: string) => void;
}

export interface Outbox {
  push(e: OutboxEntry): void;
  /** Waits until every queued entry is spooled, or `ms` passes. */
  flush(ms: number): Promise<boolean>;
  stats(): { queued: number; bytes: number; dropped: number; droppedItems: number; sent: number };
  close(): void;
}

export function createOutbox(o: OutboxOptions): Outbox {
  const maxEntries = o.maxEntries ?? 10_000;
  const maxBytes = o.maxBytes ?? 64 << 20;
  const retryMs = o.retryMs ?? 250;
  const log = o.log ?? ((m: string) => console.error(m));
  const q: OutboxEntry[] = [];
  let bytes = 0;
  let dropped = 0;
  let droppedItems = 0;
  let sent = 0;
  let client: IpcClient | undefined;
  let running = false;
  let closed = false;
  let kick: (() => void) | undefined;
  let lastError = "";

  async function pump() {
    if (running) return;
    running = true;
    try {
      while (!closed && q.length) {
        try {
          if (!client || !client.connected) client = await connectIpc(o.socketPath);
          const e = q[0]!;
          const r = await client.request({ t: "batch", kind: e.kind, items: e.items, createdMs: e.createdMs, body: e.body }, 30_000);
          if (r.t !== "spooled") {
            // Platform refused this entry for good (bad kind/body); it will never be accepted
            log(`platform refused a batch of kind ${e.kind}: ${String(r.message)}`);
          }
          if (q[0] === e) {
            q.shift();
            bytes -= e.body.length;
          }
          if (r.t === "spooled") {
            sent++;
            e.commit?.();
          }
          lastError = "";
        } catch (err) {
          client?.close();
          client = undefined;
          const msg = err instanceof Error ? err.message : String(err);
          if (msg !== lastError) log(`platform unreachable (${msg}); ${q.length} batches queued`);
          lastError = msg;
          await new Promise<void>((r) => {
            const t = setTimeout(r, retryMs);
            kick = () => {
              clearTimeout(t);
              r();
            };
          });
          kick = undefined;
        }
      }
    } finally {
      running = false;
    }
  }

  return {
    push(e) {
      q.push(e);
      bytes += e.body.length;
      // never drop the head while it may be in flight
      while ((q.length > maxEntries || bytes > maxBytes) && q.length > 2) {
        const [old] = q.splice(1, 1);
        bytes -= old!.body.length;
        dropped++;
        droppedItems += old!.items;
      }
      void pump();
    },
    async flush(ms) {
      const end = Date.now() + ms;
      while (q.length && Date.now() < end) {
        kick?.();
        await Bun.sleep(20);
      }
      return q.length === 0;
    },
    stats: () => ({ queued: q.length, bytes, dropped, droppedItems, sent }),
    close() {
      closed = true;
      kick?.();
      client?.close();
    },
  };
}
