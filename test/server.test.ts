/** The one port: TLS 1.3 only, HTTP/1.1 + HTTP/2 + HTTP/3, Alt-Svc, /metrics valid for promtool. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { metricsAuth, startTestServer, type TestServer } from "./support/server.ts";
import { requireComponent } from "./support/ci.ts";
import { enroll, metricsFrame, post } from "./support/sim-agent.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

/** Runs openssl s_client in a child process (asynchronously: the server shares this event loop). */
async function sClient(flag: string): Promise<string> {
  const p = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${s.port}`, flag, "-servername", "localhost"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill(), 10_000);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  clearTimeout(timer);
  return out + err;
}

test("TLS 1.2 and older handshakes are refused by a real TLS client; TLS 1.3 is accepted", async () => {
  if (!requireComponent(has("openssl"), "the openssl command (Debian package openssl)")) return;
  const v12 = await sClient("-tls1_2");
  expect(v12).toMatch(/alert protocol version/);
  expect(v12).toMatch(/Cipher is \(NONE\)/);
  const v11 = await sClient("-tls1_1");
  expect(v11).not.toMatch(/Cipher is TLS|Cipher is ECDHE/);
  const v13 = await sClient("-tls1_3");
  expect(v13).toMatch(/TLSv1\.3/);
  expect(v13).toMatch(/Cipher is TLS_AES/);
});

test("HTTP/1.1, HTTP/2 and HTTP/3 on the same port; responses advertise HTTP/3", async () => {
  for (const protocol of ["http1.1", "http2", "http3"] as const) {
    const r = await fetch(`${s.url}/healthz`, { tls: { rejectUnauthorized: false }, protocol } as RequestInit);
    expect(r.status).toBe(200);
    // TCP responses point clients to HTTP/3 on the same port; HTTP/3 responses need not.
    if (protocol !== "http3") expect(r.headers.get("alt-svc")).toContain(`h3=":${s.port}"`);
  }
});

test("unknown routes get a JSON 404", async () => {
  const r = await fetch(`${s.url}/nope`, { tls: { rejectUnauthorized: false } });
  expect(r.status).toBe(404);
  expect(((await r.json()) as any).error.code).toBe("not_found");
});

test("/metrics is valid Prometheus text that counts frames, samples and rejects", async () => {
  const a = await enroll(s.url, await s.token(), "m-1");
  await post(s.url, metricsFrame(a, 10, 10, Date.now()));
  await post(s.url, new Uint8Array(70).fill(1));
  const text = await (await fetch(`${s.url}/metrics`, { headers: metricsAuth, tls: { rejectUnauthorized: false } })).text();
  expect(text).toMatch(/^ingest_samples_total 100$/m);
  expect(text).toMatch(/^ingest_rejects_total\{reason="bad_magic"\} 1$/m);
  expect(text).toMatch(/^store_copy_seconds_count [1-9]/m);
  expect(text).toMatch(/^batch_pending_bytes 0$/m);
  if (!requireComponent(has("promtool"), "promtool (Debian package prometheus)")) return;
  const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" }); // no server call: sync is fine
  expect(check.stdout + check.stderr).not.toMatch(/error/i);
  expect(check.status).toBe(0);
});
