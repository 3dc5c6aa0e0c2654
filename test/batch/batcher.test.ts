/** The batcher with an injected clock: flush triggers, bounds, failure handling. */
import { describe, expect, test } from "bun:test";
import { Batcher, type Clock } from "../../src/batch/batcher.ts";
import type { Batch, FrameStatus } from "../../src/batch/batch.ts";
import { FrameError, FrameKind } from "../../src/ingest/frame/frame.ts";

function fakeClock() {
  let now = 0;
  let timers: Array<{ at: number; fn: () => void; id: number }> = [];
  let deferred: Array<() => void> = [];
  let nextId = 1;
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const t = { at: now + ms, fn, id: nextId++ };
      timers.push(t);
      return t.id;
    },
    clearTimeout: (id) => (timers = timers.filter((t) => t.id !== id)),
    defer: (fn) => deferred.push(fn),
  };
  return {
    clock,
    advance(ms: number) {
      now += ms;
      const due = timers.filter((t) => t.at <= now);
      timers = timers.filter((t) => t.at > now);
      for (const t of due) t.fn();
    },
    runDeferred() {
      const d = deferred;
      deferred = [];
      for (const fn of d) fn();
    },
  };
}

function frame(agentId: number, batchId: number, rows = 10, bytes = 1000) {
  return { agentId, batchId, seq: batchId, createdMs: 0, data: { kind: FrameKind.Heartbeat, body: {} } as any, bytes, rows, receivedAt: 0, transport: "test" };
}

function recorder(opts: { fail?: number; gate?: Promise<void> } = {}) {
  const batches: Batch[] = [];
  let failures = opts.fail ?? 0;
  return {
    batches,
    write: async (b: Batch): Promise<FrameStatus[]> => {
      batches.push(b);
      await opts.gate;
      if (failures > 0) {
        failures--;
        throw new Error("database unavailable");
      }
      return b.frames.map(() => "ok");
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("Batcher", () => {
  test("frames that arrive together commit together when a writer is free", async () => {
    const c = fakeClock();
    const r = recorder();
    const b = new Batcher({ write: r.write, maxRows: 1000, maxBytes: 1e9, maxAgeMs: 50, maxPendingBytes: 1e9, writers: 1, clock: c.clock });
    const ps = [b.push(frame(1, 1)), b.push(frame(2, 1)), b.push(frame(3, 1))];
    expect(r.batches.length).toBe(0);
    c.runDeferred();
    expect(await Promise.all(ps)).toEqual(["ok", "ok", "ok"]);
    expect(r.batches.length).toBe(1);
    expect(r.batches[0]!.frames.length).toBe(3);
  });

  test("while every writer is busy, frames accumulate and flush at maxRows", async () => {
    const c = fakeClock();
    let open!: () => void;
    const r = recorder({ gate: new Promise((res) => (open = res)) });
    const b = new Batcher({ write: r.write, maxRows: 30, maxBytes: 1e9, maxAgeMs: 1000, maxPendingBytes: 1e9, writers: 1, clock: c.clock });
    const first = b.push(frame(1, 1));
    c.runDeferred(); // writer 1 now busy
    const more = [2, 3, 4].map((i) => b.push(frame(i, 1)));
    expect(r.batches.length).toBe(1);
    expect(b.queuedBatches).toBe(2); // one writing, the full one queued at 30 rows
    open();
    expect(await first).toBe("ok");
    expect(await Promise.all(more)).toEqual(["ok", "ok", "ok"]);
    expect(r.batches.map((x) => x.frames.length)).toEqual([1, 3]);
  });

  test("flushes at maxAgeMs when writers stay busy", async () => {
    const c = fakeClock();
    let open!: () => void;
    const r = recorder({ gate: new Promise((res) => (open = res)) });
    const b = new Batcher({ write: r.write, maxRows: 1000, maxBytes: 1e9, maxAgeMs: 50, maxPendingBytes: 1e9, writers: 1, clock: c.clock });
    void b.push(frame(1, 1));
    c.runDeferred();
    void b.push(frame(2, 1));
    c.advance(30);
    expect(b.queuedBatches).toBe(1);
    c.advance(40); // past 50 ms +- 20% jitter
    expect(b.queuedBatches).toBe(2);
    open();
    await b.drain();
  });

  test("maxBytes closes a batch; pending bytes bound admission until commit", async () => {
    const c = fakeClock();
    let open!: () => void;
    const r = recorder({ gate: new Promise((res) => (open = res)) });
    const b = new Batcher({ write: r.write, maxRows: 1e9, maxBytes: 2500, maxAgeMs: 1000, maxPendingBytes: 5000, writers: 1, clock: c.clock });
    const ps = [1, 2, 3].map((i) => b.push(frame(i, 1, 1, 1000)));
    expect(b.queuedBatches).toBe(1); // 3000 bytes >= 2500: flushed by size
    expect(b.pendingBytes).toBe(3000);
    expect(b.hasRoom(2000)).toBe(true);
    expect(b.hasRoom(2001)).toBe(false);
    open();
    await Promise.all(ps);
    expect(b.pendingBytes).toBe(0);
  });

  test("a failing store is retried, then every frame of the batch is rejected, none dropped silently", async () => {
    const c = fakeClock();
    const errors: number[] = [];
    const r = recorder({ fail: 5 });
    const b = new Batcher({ write: r.write, maxRows: 1000, maxBytes: 1e9, maxAgeMs: 50, maxPendingBytes: 1e9, writers: 1, attempts: 3, clock: c.clock, onError: (_e, n) => errors.push(n) });
    const ps = [b.push(frame(1, 1)), b.push(frame(2, 1))].map((p) => p.then(() => "stored", (e: Error) => e.message));
    c.runDeferred();
    const out = await Promise.all(ps);
    expect(out[0]).toMatch(/after 3 attempts: database unavailable/);
    expect(out[1]).toMatch(/after 3 attempts/);
    expect(errors).toEqual([1, 2, 3]);
    expect(b.pendingBytes).toBe(0);
    // the next batch succeeds after two more failures
    const p = b.push(frame(3, 1));
    c.runDeferred();
    expect(await p).toBe("ok");
  });

  test("a batch the store refuses is split until only the guilty frames are rejected as store_rejected", async () => {
    const c = fakeClock();
    const guilty = new Set([3, 11]);
    const writes: number[] = [];
    const refused: number[] = [];
    let storeErrors = 0;
    const write = async (batch: Batch): Promise<FrameStatus[]> => {
      writes.push(batch.frames.length);
      if (batch.frames.some((f) => guilty.has(f.agentId))) throw Object.assign(new Error("invalid byte sequence"), { code: "22021" });
      return batch.frames.map(() => "ok");
    };
    const b = new Batcher({
      write, maxRows: 1e9, maxBytes: 1e9, maxAgeMs: 50, maxPendingBytes: 1e9, writers: 1, attempts: 3, clock: c.clock,
      isRefusal: (e) => (e as { code?: string }).code === "22021",
      onRefused: (f) => refused.push(f.agentId),
      onError: () => storeErrors++, // a refusal is not store trouble
    });
    const ps = Array.from({ length: 16 }, (_, i) => b.push(frame(i, 1)).then((s) => s, (e: FrameError) => e.code));
    c.runDeferred();
    const out = await Promise.all(ps);
    expect(out).toEqual(Array.from({ length: 16 }, (_, i) => (guilty.has(i) ? "store_rejected" : "ok")));
    expect(refused.sort((x, y) => x - y)).toEqual([3, 11]);
    expect(storeErrors).toBe(0);
    // no retry of a refusal: 1 + 2 + 4 + 4 + 4 writes (halves of 8, 4, 2, 1 around each guilty frame)
    expect(writes.length).toBeLessThanOrEqual(1 + 2 * 2 * Math.log2(16));
    await b.drain();
    expect(b.pendingBytes).toBe(0);
  });

  test("a transient error in a half of a split batch is retried, and ends in store_unavailable as before", async () => {
    const c = fakeClock();
    let transient = 3; // the half holding frame 0 loses its connection three times in a row
    const write = async (batch: Batch): Promise<FrameStatus[]> => {
      if (batch.frames.length > 1 && batch.frames.some((f) => f.agentId === 3)) throw Object.assign(new Error("bad"), { code: "22P05" });
      if (batch.frames.length === 2 && batch.frames[0]!.agentId === 0 && transient-- > 0) throw new Error("write CONNECTION_CLOSED");
      if (batch.frames.some((f) => f.agentId === 3)) throw Object.assign(new Error("bad"), { code: "22P05" });
      return batch.frames.map(() => "ok");
    };
    const b = new Batcher({ write, maxRows: 1e9, maxBytes: 1e9, maxAgeMs: 50, maxPendingBytes: 1e9, writers: 1, attempts: 3, clock: c.clock, isRefusal: (e) => (e as { code?: string }).code === "22P05" });
    const ps = Array.from({ length: 4 }, (_, i) => b.push(frame(i, 1)).then((s) => s, (e: Error) => (e instanceof FrameError ? e.code : "unavailable")));
    c.runDeferred();
    expect(await Promise.all(ps)).toEqual(["unavailable", "unavailable", "ok", "store_rejected"]);
  });

  test("drain() waits for everything accepted", async () => {
    const c = fakeClock();
    const r = recorder();
    const b = new Batcher({ write: r.write, maxRows: 1000, maxBytes: 1e9, maxAgeMs: 50, maxPendingBytes: 1e9, writers: 2, clock: c.clock });
    const ps = Array.from({ length: 10 }, (_, i) => b.push(frame(i, 1)));
    await b.drain();
    await tick();
    expect((await Promise.all(ps)).every((s) => s === "ok")).toBe(true);
    expect(b.pendingBytes).toBe(0);
  });
});
