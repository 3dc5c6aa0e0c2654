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

test("a request that waited for a slot is refused if the store fell behind meanwhile; the slot passes on", async () => {
  let room = true;
  const g = new Gate({ maxConcurrent: 1, maxWaitMs: 1000, maxWaiters: 10, hasRoom: () => room });
  const first = await g.acquire();
  const second = g.acquire(); // admitted to wait while there was room
  const third = g.acquire();
  expect(g.waiting).toBe(2);
  room = false; // the first request's frames filled the bound
  first();
  expect(await second.catch((e) => e)).toBeInstanceOf(Busy);
  expect(await third.catch((e) => e.message)).toMatch(/SERVERMIND_MAX_PENDING_BYTES/);
  expect(g.used).toBe(0);
  expect(g.waiting).toBe(0);
});
