/**
 * Every request gets an answer (issue #13, finding 6): over HTTP/2 a POST with a small body to
 * a route that answers without reading it (an unknown path: 404) often got no response at all
 * from the full server (curl: status 000 in most tries). The server as `npm start` runs it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import http2 from "node:http2";
import { startServerProcess, type ServerProcess } from "../support/server-process.ts";
import { requireComponent } from "../support/ci.ts";

let s: ServerProcess;
beforeAll(async () => {
  s = await startServerProcess();
}, 60_000);
afterAll(async () => {
  await s?.stop();
}, 30_000);

function h2Post(url: string, path: string, body: string): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(url, { rejectUnauthorized: false });
    session.on("error", (e) => resolve(`error ${e.message}`));
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/json" });
    const timer = setTimeout(() => {
      resolve("no answer");
      session.destroy();
    }, 3000);
    req.on("response", (h) => {
      clearTimeout(timer);
      resolve(String(h[":status"]));
      session.close();
    });
    req.on("error", (e) => {
      clearTimeout(timer);
      resolve(`error ${e.message}`);
      session.destroy();
    });
    req.end(body);
  });
}

const BODY = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} });

// /mcp without a token answers 401 without reading the body either (docs/mcp.md)
test("node:http2: POST with a small JSON body to an unknown path (404) or /mcp without a token (401) gets its answer, 10 times of 10", async () => {
  const answers: string[] = [];
  for (let i = 0; i < 10; i++) answers.push(await h2Post(s.url, i % 2 ? "/mcp" : "/no/such/path", BODY));
  expect(answers).toEqual(Array.from({ length: 10 }, (_, i) => (i % 2 ? "401" : "404")));
}, 60_000);

test("curl --http2: POST /mcp (no token) with a small JSON body gets its 401, 10 times of 10", async () => {
  const hasCurl = Bun.spawnSync(["sh", "-c", "curl --version | grep -q HTTP2"]).exitCode === 0;
  if (!requireComponent(hasCurl, "curl with HTTP/2 (Debian package curl)")) return;
  const codes: string[] = [];
  for (let i = 0; i < 10; i++) {
    const p = Bun.spawn(["curl", "-sk", "--http2", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "content-type: application/json", "--data-binary", BODY, `${s.url}/mcp`], { stdout: "pipe" });
    codes.push(await new Response(p.stdout).text());
    await p.exited;
  }
  expect(codes).toEqual(Array(10).fill("401"));
}, 60_000);

test("a body larger than the server takes in unread still gets its answer, and the connection is closed after it", async () => {
  const big = "x".repeat(200 * 1024);
  expect(await h2Post(s.url, "/no/such/path", big)).toBe("404");
}, 30_000);
