/**
 * VictoriaMetrics side by side (bench:ingest, bench:store): starts Debian's single-node
 * `victoria-metrics` on 127.0.0.1 with a temp data directory, feeds it the same samples the bench
 * gave ServerMind, several senders at once, and measures samples/s, its CPU seconds
 * (/proc/<pid>/stat) and its bytes on disk after a flush and a forced merge.
 *
 * Ingest paths (`--vm-path`): `remote-write` (the default: Prometheus remote write, protobuf
 * with a snappy block of one literal, which VictoriaMetrics reads without decompression work)
 * or `import` (/api/v1/import, JSON lines, one per series and frame). Measured on this machine
 * with the same 1 M samples, 8 senders: remote write cost VictoriaMetrics 0.37-0.55 CPU-s per
 * million samples, the Prometheus text import 0.50-0.74, the JSON import 0.57-0.71.
 *
 * Install: `apt-get install victoria-metrics` (or VM_BINARY=/path/to/victoria-metrics).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../src/store/postgres/embedded.ts";
import { cpuSeconds, onInterrupt, waitIdle } from "./support.ts";

export const VM_BINARY = process.env.VM_BINARY ?? "/usr/bin/victoria-metrics";

/** Fails loudly, before the bench spends minutes on ServerMind, when VictoriaMetrics is missing. */
export function requireVictoria(): void {
  if (existsSync(VM_BINARY)) return;
  const bar = "!".repeat(78);
  console.error(`\n${bar}\n!! VictoriaMetrics is not installed: ${VM_BINARY} is missing.\n!! The side-by-side numbers (vm_*) need it:  apt-get install victoria-metrics\n!! (or set VM_BINARY to a victoria-metrics binary; --no-vm runs without it)\n${bar}\n`);
  process.exit(2);
}

/** One series of one host in one frame: what becomes one JSON line. */
export interface VmBody {
  host: number;
  names: string[];
  ts: ArrayLike<number>;
  /** series-major, names.length x ts.length */
  values: ArrayLike<number>;
}

/** A metric name VictoriaMetrics accepts as __name__: the agent's labels-in-name flattened. */
export const vmName = (n: string) => n.replace(/[^a-zA-Z0-9_:]/g, "_");

/** JSON lines for /api/v1/import: one line per (host, series) with all of the frame's timestamps. */
export function vmImportLines(bodies: VmBody[]): string {
  const parts: string[] = [];
  for (const b of bodies) {
    const tsJson = `],"timestamps":[${Array.from(b.ts, (t) => Math.round(t)).join(",")}]}\n`;
    const n = b.ts.length;
    for (let j = 0; j < b.names.length; j++) {
      const vs: string[] = new Array(n);
      for (let k = 0; k < n; k++) vs[k] = String(b.values[j * n + k]);
      parts.push(`{"metric":{"__name__":"${vmName(b.names[j]!)}","host":"h${b.host}"},"values":[${vs.join(",")}${tsJson}`);
    }
  }
  return parts.join("");
}

/** Bytes of an unsigned varint. */
const varintLen = (v: number) => (v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : v < 268435456 ? 4 : Math.ceil(Math.log2(v + 1) / 7));

class Out {
  buf: Uint8Array;
  dv: DataView;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
  }
  varint(v: number) {
    while (v >= 128) {
      this.buf[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  bytes(b: Uint8Array) {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

const utf8 = new TextEncoder();
/** protobuf Label { name = 1; value = 2 } as a length-delimited field 1 of a TimeSeries */
function labelField(name: string, value: string): Uint8Array {
  const n = utf8.encode(name);
  const v = utf8.encode(value);
  const inner = 2 + varintLen(n.length) + n.length + varintLen(v.length) + v.length;
  const o = new Out(1 + varintLen(inner) + inner);
  o.buf[o.pos++] = 0x0a;
  o.varint(inner);
  o.buf[o.pos++] = 0x0a;
  o.varint(n.length);
  o.bytes(n);
  o.buf[o.pos++] = 0x12;
  o.varint(v.length);
  o.bytes(v);
  return o.buf;
}

/**
 * A Prometheus remote-write request (WriteRequest { repeated TimeSeries timeseries = 1 }, each
 * with labels __name__ and host and one Sample { double value = 1; int64 timestamp = 2 } per
 * stamp), snappy-framed as a single literal: the body for POST /api/v1/write.
 */
export function vmRemoteWrite(bodies: VmBody[]): Uint8Array {
  const nameLabels = new Map<string, Uint8Array>();
  let size = 0;
  const plan: Array<{ labels: Uint8Array[]; ts: number[]; inner: number }> = [];
  for (const b of bodies) {
    const host = labelField("host", `h${b.host}`);
    const ts = Array.from(b.ts, (t) => Math.round(t));
    let samples = 0;
    for (const t of ts) samples += 2 + 10 + varintLen(t); // field tag + length + (0x09 + 8 bytes) + (0x10 + varint)
    for (const n of b.names) {
      let nl = nameLabels.get(n);
      if (!nl) nameLabels.set(n, (nl = labelField("__name__", vmName(n))));
      const inner = nl.length + host.length + samples;
      plan.push({ labels: [nl, host], ts, inner });
      size += 1 + varintLen(inner) + inner;
    }
  }
  const o = new Out(varintLen(size) + 5 + size);
  o.varint(size); // snappy: the uncompressed length, then one literal of `size` bytes (tag 63 << 2: 4-byte length - 1)
  o.buf[o.pos++] = 63 << 2;
  o.dv.setUint32(o.pos, size - 1, true);
  o.pos += 4;
  let i = 0;
  for (const b of bodies) {
    const n = b.ts.length;
    for (let j = 0; j < b.names.length; j++) {
      const p = plan[i++]!;
      o.buf[o.pos++] = 0x0a;
      o.varint(p.inner);
      for (const l of p.labels) o.bytes(l);
      for (let k = 0; k < n; k++) {
        o.buf[o.pos++] = 0x12;
        o.varint(10 + varintLen(p.ts[k]!));
        o.buf[o.pos++] = 0x09;
        o.dv.setFloat64(o.pos, b.values[j * n + k]!, true);
        o.pos += 8;
        o.buf[o.pos++] = 0x10;
        o.varint(p.ts[k]!);
      }
    }
  }
  if (o.pos !== o.buf.length) throw new Error(`remote-write encoder: ${o.pos} of ${o.buf.length} bytes written`);
  return o.buf;
}

export type VmPath = "remote-write" | "import";

/** The request bodies for `path`, `perRequest` bodies each. */
export function vmRequests(bodies: VmBody[], path: VmPath, perRequest = 50): Array<string | Uint8Array> {
  const out: Array<string | Uint8Array> = [];
  for (let i = 0; i < bodies.length; i += perRequest) {
    const chunk = bodies.slice(i, i + perRequest);
    out.push(path === "import" ? vmImportLines(chunk) : vmRemoteWrite(chunk));
  }
  return out;
}

export interface Victoria {
  url: string;
  pid: number;
  dataDir: string;
  /** POSTs the request bodies with `senders` at a time; resolves with the wall time. */
  ingest(requests: Array<string | Uint8Array>, senders: number): Promise<{ seconds: number; cpuSeconds: number }>;
  /** Makes everything received searchable and on disk. */
  flush(): Promise<void>;
  /**
   * Flushes, then waits (at most `maxMs`) until no merge is active and the process has been idle
   * for a second: the work VictoriaMetrics defers past its acknowledgements (writing parts,
   * merging them), so that it does not run during the next measurement of the other side.
   * Resolves with that work's wall time and CPU seconds (the flush's included).
   */
  settle(maxMs?: number): Promise<{ seconds: number; cpuSeconds: number }>;
  /** Flushes, forces a merge of every partition, and waits until the data directory stops shrinking. */
  compact(): Promise<void>;
  /** Bytes under the data directory's `data` and `indexdb` (caches not counted). */
  diskBytes(): number;
  /** The same split: samples (`data`) and the series index (`indexdb`). */
  diskSplit(): { data: number; index: number };
  /** Samples VictoriaMetrics says it holds (its own /metrics: vm_rows, small + big parts). */
  rows(): Promise<number>;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

function dirBytes(p: string): number {
  let total = 0;
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const e of readdirSync(p)) total += dirBytes(join(p, e));
  return total;
}

export async function startVictoria(log: (s: string) => void = () => {}): Promise<Victoria> {
  requireVictoria();
  const dataDir = mkdtempSync(join(tmpdir(), "servermind-vm-bench-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(VM_BINARY, [
    `-storageDataPath=${dataDir}`,
    `-httpListenAddr=127.0.0.1:${port}`,
    "-retentionPeriod=100y",
    "-loggerLevel=ERROR",
    "-search.disableCache",
  ], { stdio: ["ignore", "ignore", "inherit"] });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((r) => {
        child.once("exit", () => r());
        child.kill("SIGTERM");
      });
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const forget = onInterrupt(stop);
  // a bench that fails with an error exits without stopping it: not left running, nor its directory
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`victoria-metrics exited with ${child.exitCode} before it was ready`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error("victoria-metrics did not answer /health within 30 s");
    }
    await Bun.sleep(100);
  }
  log(`victoria-metrics pid ${child.pid} at ${url}, data in ${dataDir}`);
  const get = async (path: string) => {
    const r = await fetch(`${url}${path}`);
    if (!r.ok) throw new Error(`victoria-metrics ${path}: ${r.status} ${await r.text()}`);
    return r.text();
  };
  const activeMerges = async () => {
    let n = 0;
    for (const m of (await get("/metrics")).matchAll(/^vm_active_merges\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
    return n;
  };
  const vm: Victoria = {
    url,
    pid: child.pid!,
    dataDir,
    async ingest(requests, senders) {
      const cpu0 = cpuSeconds(child.pid!);
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: senders }, async () => {
          for (;;) {
            const i = next++;
            if (i >= requests.length) break;
            const body = requests[i]!;
            const r = typeof body === "string"
              ? await fetch(`${url}/api/v1/import`, { method: "POST", body })
              : await fetch(`${url}/api/v1/write`, { method: "POST", body: body as Uint8Array<ArrayBuffer>, headers: { "content-type": "application/x-protobuf", "content-encoding": "snappy", "x-prometheus-remote-write-version": "0.1.0" } });
            if (r.status !== 204 && r.status !== 200) throw new Error(`victoria-metrics import: ${r.status} ${await r.text()}`);
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, cpuSeconds: cpuSeconds(child.pid!) - cpu0 };
    },
    async flush() {
      await get("/internal/force_flush");
    },
    async settle(maxMs = 60_000) {
      const t0 = performance.now();
      const cpu0 = cpuSeconds(child.pid!);
      await get("/internal/force_flush");
      // idle, its /metrics scrapes included, with no merge active
      await waitIdle(() => cpuSeconds(child.pid!), { maxMs, quiet: async () => (await activeMerges()) === 0 });
      return { seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSeconds(child.pid!) - cpu0 };
    },
    async compact() {
      await get("/internal/force_flush");
      await get("/internal/force_merge");
      // the merge runs in the background: wait until no merge is active (its own /metrics) and
      // the size has stayed put for 3 s, at most 5 min
      let last = -1;
      let still = 0;
      const end = Date.now() + 300_000;
      while (still < 3 && Date.now() < end) {
        await Bun.sleep(1000);
        const b = vm.diskBytes();
        still = b === last && (await activeMerges()) === 0 ? still + 1 : 0;
        last = b;
      }
    },
    diskBytes() {
      return dirBytes(join(dataDir, "data")) + dirBytes(join(dataDir, "indexdb"));
    },
    diskSplit: () => ({ data: dirBytes(join(dataDir, "data")), index: dirBytes(join(dataDir, "indexdb")) }),
    async rows() {
      const text = await get("/metrics");
      let n = 0;
      for (const m of text.matchAll(/^vm_rows\{type="storage\/(?:small|big)"\} (\d+)/gm)) n += Number(m[1]);
      return n;
    },
    cpuSeconds: () => cpuSeconds(child.pid!),
    async stop() {
      forget();
      process.off("exit", onExit);
      await stop();
    },
  };
  return vm;
}
