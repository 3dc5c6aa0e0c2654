/**
 * liblz4 (through bun:ffi) must judge every block as the TypeScript reference decoder does:
 * the same bytes for a good block, the same Lz4Error for a bad one. 60,000 mutated blocks
 * (seeded; FUZZ_SEED replays) are decoded both ways; the server's choice follows SERVERMIND_LZ4.
 */
import { expect, test } from "bun:test";
import { fuzzSeed, rng } from "../support/rng.ts";
import { lz4Compress, lz4Decompress, Lz4Error } from "../../src/ingest/frame/lz4.ts";
import { packMetrics, packLogs } from "../../src/ingest/frame/encode.ts";
import { chooseInflate, loadNativeLz4 } from "../../src/ingest/lz4-native.ts";
import { loadConfig } from "../../src/config.ts";
import { requireComponent } from "../support/ci.ts";

const native = loadNativeLz4();
const have = requireComponent("inflate" in native, `liblz4 (Debian package liblz4-1)${"error" in native ? `: ${native.error}` : ""}`);
const seed = fuzzSeed();


function outcome(f: () => Uint8Array): { ok: true; bytes: Uint8Array } | { ok: false; error: string } {
  try {
    return { ok: true, bytes: f() };
  } catch (e) {
    if (!(e instanceof Lz4Error)) throw e;
    return { ok: false, error: e.message };
  }
}

test.if(have)(`liblz4 and the TypeScript decoder agree on 60,000 mutated blocks (seed ${seed})`, () => {
  if (!("inflate" in native)) throw new Error("unreachable");
  console.log(`lz4 differential seed ${seed}, ${native.library}`);
  const rand = rng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const now = 1_790_000_000_000;
  const raws = [
    packMetrics({ ts: Float64Array.from({ length: 10 }, (_, i) => now + i * 10_000), names: Array.from({ length: 100 }, (_, i) => `cpu.core_${i}`), values: new Float64Array(1000).map((_, i) => (i % 7) * 1.5) }),
    packMetrics({ ts: Float64Array.from({ length: 10 }, (_, i) => now + i * 10_000), names: Array.from({ length: 100 }, (_, i) => `m${i}`), values: new Float64Array(1000).map(() => rand() * 1e6) }),
    packLogs({ ts: Float64Array.from({ length: 50 }, () => now), severity: new Uint8Array(50).fill(6), sources: ["/var/log/syslog"], sourceIndex: new Uint16Array(50), messages: Array.from({ length: 50 }, (_, i) => `sshd[${1000 + i}]: Accepted publickey for root from 10.0.0.${i}`) }),
    new TextEncoder().encode("a".repeat(5000)),
    Uint8Array.from({ length: 3000 }, () => int(256)),
  ];
  const blocks = raws.map((r) => ({ raw: r, block: lz4Compress(r) }));
  for (const { raw, block } of blocks) expect(native.inflate(block, raw.length)).toEqual(lz4Decompress(block, raw.length));
  let agreedOk = 0;
  let agreedBad = 0;
  for (let i = 0; i < 60_000; i++) {
    const { raw, block } = blocks[int(blocks.length)]!;
    let m = block.slice();
    let rawLength = raw.length;
    for (let k = 1 + int(3); k > 0; k--) {
      switch (int(5)) {
        case 0: m[int(m.length)]! ^= 1 << int(8); break;
        case 1: m[int(m.length)] = [0, 0xff, 0xf0, 0x0f, 0x1f][int(5)]!; break;
        case 2: m = m.subarray(0, int(m.length + 1)); break;
        case 3: rawLength = [0, 1, rawLength - 1, rawLength + 1, rawLength * 2][int(5)]!; break;
        case 4: { const at = int(m.length); m = Uint8Array.from([...m.subarray(0, at), int(256), ...m.subarray(at)]); break; }
      }
    }
    rawLength = Math.max(0, rawLength);
    const ours = outcome(() => lz4Decompress(m, rawLength));
    const theirs = outcome(() => native.inflate(m, rawLength));
    if (ours.ok !== theirs.ok || (ours.ok && theirs.ok && Buffer.compare(Buffer.from(ours.bytes), Buffer.from(theirs.bytes)) !== 0) || (!ours.ok && !theirs.ok && ours.error !== theirs.error)) {
      throw new Error(`decoders disagree at iteration ${i} (seed ${seed}): ${JSON.stringify({ ours: ours.ok || ours.error, liblz4: theirs.ok || (theirs as { error: string }).error })}`);
    }
    if (ours.ok) agreedOk++;
    else agreedBad++;
  }
  console.log(JSON.stringify({ agreed_ok: agreedOk, agreed_bad: agreedBad }));
  expect(agreedBad).toBeGreaterThan(30_000);
  expect(agreedOk).toBeGreaterThan(100);
}, 60_000);

test("SERVERMIND_LZ4 picks the decoder and rejects what it does not know", () => {
  expect(chooseInflate("js").inflate).toBe(lz4Decompress);
  expect(chooseInflate("js").description).toContain("TypeScript");
  if (have) {
    expect(chooseInflate("auto").description).toMatch(/^liblz4\S* \d+\.\d+\.\d+$/);
    expect(chooseInflate("native").inflate).not.toBe(lz4Decompress);
  }
  expect(loadConfig({}).lz4).toBe("auto");
  expect(() => loadConfig({ SERVERMIND_LZ4: "fast" })).toThrow('SERVERMIND_LZ4="fast" is not one of auto, native, js');
});
