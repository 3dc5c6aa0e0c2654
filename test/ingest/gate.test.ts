import { expect, test } from "bun:test";
import { Busy, Gate } from "../../src/ingest/gate.ts";

test("tokens up to capacity, then a bounded wait, then Busy", async () => {
  const g = new Gate({ maxConcurrent: 2, maxWaitMs: 30, maxWaiters: 10, hasRoom: () => true });
  const a = await g.acquire();
  await g.acquire();
  expect(g.used).toBe(2);
  const waiting = g.acquire();
  expect(g.waiting).toBe(1);
  a(); // the token passes to the waiter
  await waiting;
  expect(g.used).toBe(2);
  const t = performance.now();
  const err = await g.acquire().catch((e) => e);
  expect(err).toBeInstanceOf(Busy);
  expect(err.message).toMatch(/no ingest slot freed within 30 ms/);
  expect(performance.now() - t).toBeGreaterThanOrEqual(25);
});

test("a full batcher refuses at once, naming the setting", async () => {
  const g = new Gate({ maxConcurrent: 2, maxWaitMs: 30, maxWaiters: 10, hasRoom: () => false });
  const err = await g.acquire().catch((e) => e);
  expect(err).toBeInstanceOf(Busy);
  expect(err.message).toMatch(/SERVERMIND_MAX_PENDING_BYTES/);
});

test("too many waiters are refused without waiting; release is idempotent", async () => {
  const g = new Gate({ maxConcurrent: 1, maxWaitMs: 1000, maxWaiters: 0, hasRoom: () => true });
  const r = await g.acquire();
  expect(await g.acquire().catch((e) => e.message)).toMatch(/requests wait/);
  r();
  r();
  expect(g.used).toBe(0);
});
