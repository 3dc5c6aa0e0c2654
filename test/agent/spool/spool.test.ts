import { afterAll, describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { createSpool } from "../../../agent/spool/spool.ts";
import { tempDirs } from "../../support/temp.ts";

const dirs = tempDirs("sm-spool-");
afterAll(() => dirs.removeAll());

function path() {
  const dir = dirs.make();
  return join(dir, "spool.db");
}

const body = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

describe("spool", () => {
  test("entries come back in order and survive a reopen", () => {
    const p = path();
    const s = createSpool({ path: p, maxBytes: 1 << 20 });
    const ids = [1, 2, 3].map((i) => s.append({ kind: 1, items: i, createdMs: 1_700_000_000_000 + i, body: body(10, i) }));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    s.close();
    const r = createSpool({ path: p, maxBytes: 1 << 20 });
    const got = r.peek(10);
    expect(got.map((e) => e.id)).toEqual(ids);
    expect(got.map((e) => e.items)).toEqual([1, 2, 3]);
    expect(Array.from(got[2]!.body)).toEqual(Array.from(body(10, 3)));
    expect(r.peek(10, ids[0]).map((e) => e.id)).toEqual(ids.slice(1));
    expect(r.stats().frames).toBe(3);
    r.close();
  });

  test("only ack removes an entry, and ids are never reused after removal", () => {
    const p = path();
    const s = createSpool({ path: p, maxBytes: 1 << 20 });
    const a = s.append({ kind: 2, items: 5, createdMs: 1, body: body(20) });
    const b = s.append({ kind: 2, items: 5, createdMs: 2, body: body(20) });
    expect(s.ack([a, 999])).toBe(1);
    expect(s.has(a)).toBe(false);
    expect(s.has(b)).toBe(true);
    expect(s.ack([b])).toBe(1);
    expect(s.stats().frames).toBe(0);
    expect(s.stats().bytes).toBe(0);
    s.close();
    const r = createSpool({ path: p, maxBytes: 1 << 20 });
    const c = r.append({ kind: 2, items: 1, createdMs: 3, body: body(5) });
    expect(c).toBeGreaterThan(b);
    r.close();
  });

  test("bounded by bytes: the oldest are dropped and counted, also across reopen", () => {
    const p = path();
    const s = createSpool({ path: p, maxBytes: 10_000 });
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) ids.push(s.append({ kind: 1, items: 7, createdMs: i, body: body(1000) }));
    const st = s.stats();
    expect(st.bytes).toBeLessThanOrEqual(10_000);
    expect(st.frames + st.droppedFrames).toBe(50);
    expect(st.droppedItems).toBe(st.droppedFrames * 7);
    const left = s.peek(100).map((e) => e.id);
    expect(left).toEqual(ids.slice(ids.length - st.frames));
    s.close();
    const r = createSpool({ path: p, maxBytes: 10_000 });
    expect(r.stats().droppedFrames).toBe(st.droppedFrames);
    expect(r.stats().bytes).toBe(st.bytes);
    r.close();
  });

  test("the file shrinks again once a large backlog is acknowledged", () => {
    const p = path();
    const s = createSpool({ path: p, maxBytes: 64 << 20 });
    const ids = Array.from({ length: 400 }, (_, i) => s.append({ kind: 1, items: 1, createdMs: i, body: body(20_000, i & 255) }));
    s.close(); // checkpoint the WAL into the main file
    const r = createSpool({ path: p, maxBytes: 64 << 20 });
    const full = statSync(p).size;
    r.ack(ids);
    r.close();
    expect(full).toBeGreaterThan(5_000_000);
    expect(statSync(p).size).toBeLessThan(full / 4);
  });

  test("sequence numbers strictly increase across restarts, even after a crash", () => {
    const p = path();
    const s = createSpool({ path: p, maxBytes: 1 << 20, seqBlock: 4 });
    const first = Array.from({ length: 10 }, () => s.nextSeq());
    // no close(): as after kill -9, the counter must not go back
    const r = createSpool({ path: p, maxBytes: 1 << 20, seqBlock: 4 });
    const next = r.nextSeq();
    expect(next).toBeGreaterThan(first[first.length - 1]!);
    for (let i = 1; i < first.length; i++) expect(first[i]!).toBe(first[i - 1]! + 1);
    r.close();
    s.close();
  });
});
