import { expect, test } from "bun:test";
import { createBackoff } from "../../../agent/ship/backoff.ts";

test("waits grow exponentially up to the cap, with full jitter, and reset", () => {
  const top = createBackoff({ baseMs: 1000, maxMs: 60_000, random: () => 0.999999 });
  const waits = Array.from({ length: 10 }, () => top.next());
  expect(waits.slice(0, 7)).toEqual([999, 1999, 3999, 7999, 15999, 31999, 59999]);
  expect(Math.max(...waits)).toBeLessThan(60_000);
  top.reset();
  expect(top.next()).toBe(999);
  const low = createBackoff({ baseMs: 1000, maxMs: 60_000, random: () => 0 });
  expect(low.next()).toBe(500); // floor of base/2
});

test("10,000 agents that failed together spread their retries over the window", () => {
  const seconds = new Map<number, number>();
  for (let i = 0; i < 10_000; i++) {
    const b = createBackoff({ baseMs: 1000, maxMs: 60_000 });
    for (let k = 0; k < 5; k++) b.next();
    const s = Math.floor(b.next() / 1000);
    seconds.set(s, (seconds.get(s) ?? 0) + 1);
  }
  // the 6th wait is uniform over [0, 32 s): no second holds more than a few percent
  expect(Math.max(...seconds.values())).toBeLessThan(600);
  expect(seconds.size).toBeGreaterThanOrEqual(30);
});
