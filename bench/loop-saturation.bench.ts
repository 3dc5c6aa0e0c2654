/**
 * What a saturated event loop does to each transport (bun bench/loop-saturation.bench.ts
 * [--quick]). A bare Bun.serve in a child process, as the server listens (TLS 1.3, HTTP/2,
 * HTTP/3, WebSocket on one port), answers every request after `--burn` µs of CPU on its event loop
 * and a 15 ms wait (a commit); 99 workers, a third on each transport, send bodies of `--bytes`
 * (14,400: the size of `bench:ingest`'s requests of four realistic frames) one after another for
 * `--seconds`. For each burn level (`--burn`, µs, comma-separated) it reports requests/s, each
 * transport's share, `server_loop_busy` (the server process's CPU seconds over wall seconds,
 * nearly all of it its event loop), and each transport's rate against its own at the first level
 * of the same run (`rate_vs_first_level`).
 *
 * Why: in `bench:ingest` HTTP/3 carried a third of the samples in some rounds and under a tenth in
 * others (docs/architecture.md). Here HTTP/3 keeps its third until the loop is busy all the time,
 * then falls to a few percent while HTTP/2 and WebSocket keep theirs, for bodies of many packets
 * (with `--bytes 1500`, an agent's tick, it keeps its share). TCP's acknowledgements come from the
 * kernel, QUIC's from the same busy loop, so a QUIC sender's window fills while the loop works.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSelfSigned } from "../src/tls/self-signed.ts";
import { freePort } from "../src/store/postgres/embedded.ts";
import { TLS_MIN_VERSION } from "../src/server.ts";
import { arg, cpuSeconds, environment, flag, round } from "./support.ts";

if (flag("serve")) {
  // the child: one listener, a CPU burn and a 15 ms wait per request or message
  const burnMs = Number(arg("burn", "0")) / 1000;
  const burn = () => {
    const end = performance.now() + burnMs;
    while (performance.now() < end);
  };
  const dir = arg("dir", "");
  Bun.serve({
    hostname: "127.0.0.1",
    port: Number(arg("port", "0")),
    tls: { cert: Bun.file(join(dir, "cert.pem")), key: Bun.file(join(dir, "key.pem")), minVersion: TLS_MIN_VERSION },
    http2: true,
    http3: true,
    routes: {
      "/ingest": {
        POST: async (req: Request) => {
          const n = (await req.arrayBuffer()).byteLength;
          burn();
          await Bun.sleep(15);
          return Response.json({ n });
        },
      },
      "/stream": (req: Request, srv: Bun.Server<undefined>) => (srv.upgrade(req) ? undefined : new Response("upgrade", { status: 400 })),
    },
    fetch: () => new Response("not found", { status: 404 }),
    websocket: {
      message(ws, m) {
        const n = typeof m === "string" ? m.length : m.byteLength;
        burn();
        setTimeout(() => ws.send(JSON.stringify({ n })), 15);
      },
    },
  } as Bun.Serve.Options<undefined>);
  console.log("ready");
} else {
  const quick = flag("quick");
  const levels = arg("burn", quick ? "0,250" : "0,100,175,250").split(",").map(Number);
  const SECONDS = Number(arg("seconds", quick ? "6" : "10"));
  const BYTES = Number(arg("bytes", "14400"));
  const WORKERS = 99;
  const TRANSPORTS = ["h2", "wss", "h3"] as const;
  const log = (s: string) => console.error(`[loop] ${s}`);
  const cert = createSelfSigned(["127.0.0.1"]);
  const body = new Uint8Array(BYTES).map((_, i) => (i * 2654435761) >>> 24);
  const results: Array<Record<string, unknown>> = [];
  const dir = mkdtempSync(join(tmpdir(), "servermind-loop-"));
  try {
    writeFileSync(join(dir, "cert.pem"), cert.certPem);
    writeFileSync(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
    for (const burnUs of levels) {
      const port = await freePort();
      const child = Bun.spawn([process.execPath, import.meta.path, "--serve", "--port", String(port), "--burn", String(burnUs), "--dir", dir], { stdout: "pipe", stderr: "inherit" });
      try {
        const reader = child.stdout.getReader();
        const first = await reader.read();
        if (!new TextDecoder().decode(first.value).includes("ready")) throw new Error("the server child did not start");
        const url = `https://127.0.0.1:${port}`;
        const counts: Record<string, number> = { h2: 0, wss: 0, h3: 0 };
        const end = performance.now() + SECONDS * 1000;
        const worker = async (t: (typeof TRANSPORTS)[number]) => {
          if (t === "wss") {
            const ws = new WebSocket(`wss://127.0.0.1:${port}/stream`, { tls: { rejectUnauthorized: false } } as unknown as string[]);
            await new Promise((ok, fail) => ((ws.onopen = ok), (ws.onerror = fail)));
            while (performance.now() < end) {
              await new Promise((ok) => ((ws.onmessage = ok), ws.send(body)));
              counts[t]!++;
            }
            ws.close();
            return;
          }
          while (performance.now() < end) {
            const r = await fetch(`${url}/ingest`, { method: "POST", body, tls: { rejectUnauthorized: false }, protocol: t === "h2" ? "http2" : "http3" } as RequestInit);
            await r.arrayBuffer();
            if (r.status !== 200) throw new Error(`${t}: ${r.status}`);
            counts[t]!++;
          }
        };
        // a first request per transport before the clock, so no transport's connection set-up is in the round
        await Promise.all(TRANSPORTS.filter((t) => t !== "wss").map((t) => fetch(`${url}/ingest`, { method: "POST", body, tls: { rejectUnauthorized: false }, protocol: t === "h2" ? "http2" : "http3" } as RequestInit).then((r) => r.arrayBuffer())));
        const cpu0 = cpuSeconds(child.pid);
        const t0 = performance.now();
        await Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(TRANSPORTS[i % 3]!)));
        const wall = (performance.now() - t0) / 1000;
        const busy = (cpuSeconds(child.pid) - cpu0) / wall;
        const total = counts.h2! + counts.wss! + counts.h3!;
        const row = {
          burn_us: burnUs,
          requests_per_s: Math.round(total / wall),
          server_loop_busy: round(busy, 2),
          share_by_transport: Object.fromEntries(TRANSPORTS.map((t) => [t, round(counts[t]! / total)])),
          requests_per_s_by_transport: Object.fromEntries(TRANSPORTS.map((t) => [t, Math.round(counts[t]! / wall)])),
        };
        results.push(row);
        log(JSON.stringify(row));
      } finally {
        child.kill();
        await child.exited;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const base = results[0]!.requests_per_s_by_transport as Record<string, number>;
  for (const r of results) {
    const by = r.requests_per_s_by_transport as Record<string, number>;
    // each transport's rate against its own at the first (lowest) burn level of the run
    r.rate_vs_first_level = Object.fromEntries(TRANSPORTS.map((t) => [t, round(by[t]! / base[t]!, 2)]));
  }
  console.log(JSON.stringify({ bench: "loop-saturation", ...environment(), quick, seconds: SECONDS, bytes: BYTES, workers: WORKERS, levels: results }));
}
