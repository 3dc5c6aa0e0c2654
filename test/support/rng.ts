/** Seeded randomness for fuzz tests, so a failure replays with the seed they print (FUZZ_SEED). */
export const fuzzSeed = (): number => Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: a small, fast, seeded generator of numbers in [0, 1). */
export function rng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
