/**
 * The block encoder's thread (src/store/postgres/block-encoder.ts): the same rows as the main
 * thread, byte for byte, for every job and in every order; the same errors; and a thread that
 * will not start or dies makes the main thread encode, losing no job.
 */
import { afterAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { MetricsBody } from "../../../src/ingest/frame/frame.ts";
import { CodecError, decodeBlock, MAX_BLOCK_TIMESTAMPS } from "../../../src/store/codec/block.ts";
import { encodeRows, ThreadEncoder, type EncodeItem } from "../../../src/store/postgres/block-encoder.ts";
import { BlockRows } from "../../../src/store/postgres/metric-blocks.ts";
import { tempDirs } from "../../support/temp.ts";

const temps = tempDirs("sm-encoder-");
afterAll(() => temps.removeAll());

/** A deterministic generator, so a failure names a reproducible job. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A frame's body with every shape the encoder has a mode for: constants, counters, decimal gauges, noisy doubles, NaN and the special values. */
function body(r: () => number, nts: number, nseries: number): MetricsBody {
  const t0 = 1_790_000_000_000 + Math.floor(r() * 1e6);
  const ts = Float64Array.from({ length: nts }, (_, i) => t0 + i * 10_000 + (r() < 0.1 ? Math.floor(r() * 50) : 0));
  const values = new Float64Array(nts * nseries);
  const specials = [0, -0, Infinity, -Infinity, NaN, Number.MIN_VALUE, Number.MAX_VALUE, 2 ** 53];
  for (let j = 0; j < nseries; j++) {
    const shape = j % 5;
    let level = r() * 1e6;
    for (let i = 0; i < nts; i++) {
      const k = j * nts + i;
      if (shape === 0) values[k] = 42;
      else if (shape === 1) values[k] = (level += Math.floor(r() * 1000));
      else if (shape === 2) values[k] = Math.round(r() * 10000) / 100;
      else if (shape === 3) values[k] = level * (1 + (r() - 0.5) / 50);
      else values[k] = r() < 0.5 ? specials[Math.floor(r() * specials.length)]! : r() * 1e-3;
    }
  }
  return { ts, values, names: Array.from({ length: nseries }, (_, j) => `m${j}`), namesKey: "" } as unknown as MetricsBody;
}

function job(seed: number): EncodeItem[] {
  const r = rng(seed);
  const idsA = Int32Array.from({ length: 40 }, (_, j) => j + 1);
  const idsB = Int32Array.from({ length: 40 }, (_, j) => 1000 + j * 3);
  return Array.from({ length: 1 + Math.floor(r() * 30) }, (_, i) => ({
    agentId: 1 + Math.floor(r() * 2000),
    batchId: 1_700_000_000_000 + i,
    body: body(r, 1 + Math.floor(r() * 30), 40),
    ids: r() < 0.5 ? idsA : idsB,
  }));
}

test("the thread writes the main thread's rows byte for byte, for 60 jobs in flight at once, each answered with its own", async () => {
  const enc = new ThreadEncoder();
  try {
    expect(enc.threads).toBe(1);
    const jobs = Array.from({ length: 60 }, (_, s) => job(s + 1));
    const fromThread = await Promise.all(jobs.map((j) => enc.encode(j)));
    const rows = new BlockRows();
    let samples = 0;
    jobs.forEach((items, n) => {
      const inline = encodeRows(items, rows);
      const got = fromThread[n]!;
      expect({ ...got, blocks: Buffer.from(got.blocks).toString("hex") }).toEqual({ ...inline, blocks: Buffer.from(inline.blocks).toString("hex") });
      // and the blocks hold the job's values, bit for bit (a frame may take several rows)
      const offsets = got.offsets.split(",").map(Number);
      const lengths = got.lengths.split(",").map(Number);
      let row = 0;
      for (const it of items) {
        const sids: number[] = [];
        const parts: Buffer[] = [];
        while (sids.length < it.ids.length) {
          const d = decodeBlock(got.blocks.subarray(offsets[row]!, offsets[row]! + lengths[row]!));
          sids.push(...d.sids);
          parts.push(Buffer.from(d.values.buffer, d.values.byteOffset, d.values.byteLength));
          row++;
        }
        expect(sids).toEqual(Array.from(it.ids));
        expect(Buffer.concat(parts).equals(Buffer.from(it.body.values.buffer, it.body.values.byteOffset, it.body.values.byteLength))).toBe(true);
        samples += it.body.values.length;
      }
      expect(row).toBe(got.count);
    });
    expect(samples).toBeGreaterThan(100_000);
  } finally {
    enc.close();
  }
});

test("an encoding error comes back from the thread as the main thread's own: CodecError, same message", async () => {
  const enc = new ThreadEncoder();
  try {
    // more timestamps than a block may hold
    const nts = MAX_BLOCK_TIMESTAMPS + 1;
    const bad: EncodeItem[] = [{ agentId: 1, batchId: 1, ids: Int32Array.of(1), body: { ts: Float64Array.from({ length: nts }, (_, i) => i), values: new Float64Array(nts), names: ["a"], namesKey: "" } as unknown as MetricsBody }];
    let inline: unknown;
    try {
      encodeRows(bad, new BlockRows());
    } catch (e) {
      inline = e;
    }
    expect(inline).toBeInstanceOf(CodecError);
    const fromThread = await enc.encode(bad).then(() => undefined, (e: unknown) => e);
    expect(fromThread).toBeInstanceOf(CodecError);
    expect((fromThread as Error).message).toBe((inline as Error).message);
    // and the thread goes on
    const ok = job(7);
    expect(Buffer.from((await enc.encode(ok)).blocks).equals(Buffer.from(encodeRows(ok, new BlockRows()).blocks))).toBe(true);
    expect(enc.threads).toBe(1);
  } finally {
    enc.close();
  }
});

test("a thread that will not load: every job is encoded here, the same rows, and the log says so once", async () => {
  const dir = temps.make();
  const script = join(dir, "broken-worker.ts");
  writeFileSync(script, `throw new Error("this worker does not load");\n`);
  const lines: string[] = [];
  const enc = new ThreadEncoder(script, (l) => lines.push(l));
  try {
    const jobs = [job(11), job(12), job(13)];
    const got = await Promise.all(jobs.map((j) => enc.encode(j)));
    jobs.forEach((j, i) => expect(Buffer.from(got[i]!.blocks).equals(Buffer.from(encodeRows(j, new BlockRows()).blocks))).toBe(true));
    expect(enc.threads).toBe(0);
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("encoded on the main thread");
    // later jobs too
    const later = job(14);
    expect((await enc.encode(later)).agents).toBe(encodeRows(later, new BlockRows()).agents);
    expect(lines.length).toBe(1);
  } finally {
    enc.close();
  }
});

test("a thread that dies holding jobs: they are encoded here instead, none lost, and so is every later job", async () => {
  const dir = temps.make();
  const script = join(dir, "dying-worker.ts");
  // takes the first job and exits without an answer
  writeFileSync(script, `self.onmessage = () => process.exit(3);\n`);
  const lines: string[] = [];
  const enc = new ThreadEncoder(script, (l) => lines.push(l));
  try {
    const jobs = [job(21), job(22), job(23), job(24)];
    const got = await Promise.all(jobs.map((j) => enc.encode(j)));
    jobs.forEach((j, i) => expect(Buffer.from(got[i]!.blocks).equals(Buffer.from(encodeRows(j, new BlockRows()).blocks))).toBe(true));
    expect(enc.threads).toBe(0);
    expect(lines.length).toBe(1);
    const later = job(25);
    expect((await enc.encode(later)).lengths).toBe(encodeRows(later, new BlockRows()).lengths);
  } finally {
    enc.close();
  }
});

test("an idle thread does not keep the process alive", async () => {
  const dir = temps.make();
  const script = join(dir, "idle.ts");
  const module = join(import.meta.dir, "../../../src/store/postgres/block-encoder.ts");
  writeFileSync(
    script,
    `import { ThreadEncoder } from ${JSON.stringify(module)};
const enc = new ThreadEncoder();
const r = await enc.encode([{ agentId: 1, batchId: 1, ids: Int32Array.of(1, 2), body: { ts: Float64Array.of(0, 10_000), values: Float64Array.of(1, 2, 3, 4), names: ["a", "b"], namesKey: "" } }]);
console.log("rows", r.count, "threads", enc.threads);
`,
  );
  const t = performance.now();
  const p = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
  const killer = setTimeout(() => p.kill(), 10_000);
  const code = await p.exited;
  clearTimeout(killer);
  expect(await new Response(p.stdout).text()).toBe("rows 1 threads 1\n");
  expect(code).toBe(0);
  expect(performance.now() - t).toBeLessThan(10_000);
});
