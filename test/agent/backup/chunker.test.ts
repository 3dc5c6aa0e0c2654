import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Chunker, gearTable } from "../../../agent/backup/chunker.ts";

const params = { min: 8 * 1024, avg: 32 * 1024, max: 128 * 1024 };
const cuts = (c: Chunker, data: Uint8Array) => {
  const out: number[] = [];
  for (let off = 0; off < data.length; ) out.push((off += c.cut(data, off, data.length - off)));
  return out;
};

test("chunks respect min and max, average near avg, and cover the input", () => {
  const c = new Chunker(params, gearTable(randomBytes(32)));
  const data = randomBytes(8 * 1024 * 1024);
  const ends = cuts(c, data);
  expect(ends.at(-1)).toBe(data.length);
  const sizes = ends.map((e, i) => e - (ends[i - 1] ?? 0));
  for (const s of sizes.slice(0, -1)) {
    expect(s).toBeGreaterThanOrEqual(params.min);
    expect(s).toBeLessThanOrEqual(params.max);
  }
  const avg = data.length / sizes.length;
  expect(avg).toBeGreaterThan(params.avg * 0.6);
  expect(avg).toBeLessThan(params.avg * 1.6);
});

test("an insertion near the start moves only the boundaries around it (content-defined)", () => {
  const c = new Chunker(params, gearTable(randomBytes(32)));
  const data = randomBytes(4 * 1024 * 1024);
  const shifted = Buffer.concat([data.subarray(0, 1000), Buffer.from("inserted!"), data.subarray(1000)]);
  const a = new Set(cuts(c, data));
  const b = cuts(c, shifted).map((e) => e - 9);
  const same = b.filter((e) => a.has(e)).length;
  expect(same).toBeGreaterThanOrEqual(a.size - 3);
});

test("the gear seed is a secret that changes the boundaries", () => {
  const data = randomBytes(2 * 1024 * 1024);
  const seed = randomBytes(32);
  expect(cuts(new Chunker(params, gearTable(seed)), data)).toEqual(cuts(new Chunker(params, gearTable(seed)), data));
  expect(cuts(new Chunker(params, gearTable(randomBytes(32))), data)).not.toEqual(cuts(new Chunker(params, gearTable(seed)), data));
});

test("chunking a file in windows gives the same chunks as chunking it in memory", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sm-chunk-"));
  try {
    const c = new Chunker({ min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 }, gearTable(randomBytes(32)));
    const data = randomBytes(40 * 1024 * 1024 + 123); // spans several 16 MiB windows
    await writeFile(join(dir, "f"), data);
    const fromFile: number[] = [];
    let total = 0;
    for await (const piece of c.file(join(dir, "f"))) fromFile.push((total += piece.length));
    expect(fromFile).toEqual(cuts(c, data));
    await writeFile(join(dir, "empty"), "");
    const empty: Uint8Array[] = [];
    for await (const piece of c.file(join(dir, "empty"))) empty.push(piece);
    expect(empty).toEqual([]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("held chunks stay intact in their window while later files and windows are read; released windows are reused", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sm-chunk-"));
  try {
    const c = new Chunker({ min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 }, gearTable(randomBytes(32)));
    // small files share a window; big ones make it move on (16 MiB windows)
    const sizes = [3000, 70_000, 20 * 1024 * 1024 + 7, 1, 0, 9 * 1024 * 1024, 500_000, 33 * 1024 * 1024];
    const files = sizes.map((n, i) => ({ path: join(dir, `f${i}`), data: new Uint8Array(randomBytes(n)) }));
    for (const f of files) await writeFile(f.path, f.data);
    const held: { piece: Uint8Array; want: Uint8Array; release: () => void }[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for (const f of files) {
      let off = 0;
      for await (const piece of c.file(f.path)) {
        expect(piece.buffer).toBeInstanceOf(SharedArrayBuffer);
        buffers.add(piece.buffer);
        const want = f.data.subarray(off, off + piece.length);
        off += piece.length;
        expect(piece).toEqual(want);
        // hold every other chunk until the end, as the pool does until a job settles
        if (held.length % 2 === 0 || piece.length < 100_000) {
          let release!: () => void;
          c.hold(piece, new Promise<void>((r) => (release = r)));
          held.push({ piece, want, release });
        } else held.push({ piece: piece.slice(), want, release: () => {} });
      }
      expect(off).toBe(f.data.length);
    }
    for (const h of held) expect(h.piece).toEqual(h.want);
    const windowsWhileHeld = buffers.size;
    for (const h of held) h.release();
    await Bun.sleep(0);
    // with nothing held, reading everything again needs no new window
    const again = new Set<ArrayBufferLike>();
    for (const f of files) {
      let off = 0;
      for await (const piece of c.file(f.path)) {
        again.add(piece.buffer);
        expect(piece).toEqual(f.data.subarray(off, (off += piece.length)));
      }
    }
    for (const b of again) expect(buffers.has(b)).toBe(true);
    expect(again.size).toBeLessThanOrEqual(windowsWhileHeld);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
