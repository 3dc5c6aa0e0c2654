import { describe, expect, test } from "bun:test";
import { connectWsTransport, proxyFor } from "../../../agent/ship/ws-transport.ts";
import { pinnedTls } from "../../../agent/ship/pin.ts";
import { createSelfSigned } from "../../../src/tls/self-signed.ts";
import type { ServerWebSocket } from "bun";

const cert = createSelfSigned(["127.0.0.1"]);

/** A scripted stream endpoint (the transport's parsing alone; shipper.test.ts runs the real server): challenge "abc", then `message`. */
function scriptedStream(message: (ws: ServerWebSocket<undefined>, bytes: Uint8Array) => void) {
  return Bun.serve({
    hostname: "127.0.0.1", port: 0, tls: { cert: cert.certPem, key: cert.keyPem },
    fetch: (req, srv) => (srv.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 })),
    websocket: {
      open(ws) {
        ws.send(JSON.stringify({ type: "challenge", nonce: "abc" }));
      },
      message: (ws, m) => message(ws, m as Uint8Array),
    },
  });
}

test("commands and unknown message kinds pushed mid-send do not disturb the ack of that send", async () => {
  const server = scriptedStream((ws, bytes) => {
    if (bytes[0] === 0x48) return void ws.send(JSON.stringify({ type: "welcome", agentId: 1 })); // "H"ello
    ws.send(JSON.stringify({ type: "command", command: "collect-inventory", id: 7 }));
    ws.send(JSON.stringify({ type: "something-new", x: 1 }));
    ws.send(JSON.stringify({ type: "ack", acks: [{ batch: 5, seq: 9, status: "ok" }], rejects: [] }));
  });
  try {
    const commands: unknown[] = [];
    let nonce = "";
    const t = await connectWsTransport({
      baseUrl: `https://127.0.0.1:${server.port}`, tls: pinnedTls(cert.certPem, cert.fingerprint), timeoutMs: 3000,
      hello: (n) => ((nonce = n), new TextEncoder().encode("Hello")), onCommand: (m) => commands.push(m),
    });
    expect(nonce).toBe("abc");
    const r = await t.send([Uint8Array.of(1, 2, 3)]);
    expect(r.acks).toEqual([{ batch: 5, seq: 9, status: "ok" }]);
    expect(commands).toEqual([{ type: "command", command: "collect-inventory", id: 7 }]);
    t.close();
  } finally {
    server.stop(true);
  }
});

test("HTTPS_PROXY applies unless NO_PROXY names the host", () => {
  expect(proxyFor("https://ingest.example.com:8443", { HTTPS_PROXY: "http://p:3128" })).toBe("http://p:3128");
  expect(proxyFor("https://ingest.example.com:8443", { https_proxy: "http://p:3128", NO_PROXY: "example.com" })).toBeUndefined();
  expect(proxyFor("https://ingest.example.com:8443", { HTTPS_PROXY: "http://p:3128", NO_PROXY: "other.com,*" })).toBeUndefined();
  expect(proxyFor("https://ingest.example.com:8443", { HTTPS_PROXY: "http://p:3128", NO_PROXY: "other.com" })).toBe("http://p:3128");
  expect(proxyFor("https://ingest.example.com:8443", {})).toBeUndefined();
});

describe("the welcome's session", () => {
  /** A stream endpoint whose welcome carries `session` (left out when undefined). */
  async function welcomeWith(session: unknown) {
    const server = scriptedStream((ws) => ws.send(JSON.stringify(session === undefined ? { type: "welcome", agentId: 1 } : { type: "welcome", agentId: 1, session })));
    try {
      const t = await connectWsTransport({
        baseUrl: `https://127.0.0.1:${server.port}`, tls: pinnedTls(cert.certPem, cert.fingerprint), timeoutMs: 3000,
        hello: () => new TextEncoder().encode("Hello"),
      });
      t.close();
      return t.session;
    } finally {
      server.stop(true);
    }
  }
  const key = Buffer.alloc(32, 9).toString("base64");

  test("a valid session is the transport's", async () => {
    const s = await welcomeWith({ id: 77, key, expiresMs: 1_900_000_000_000 });
    expect(s?.id).toBe(77);
    expect(s?.expiresMs).toBe(1_900_000_000_000);
    expect(Buffer.from(s!.key).equals(Buffer.alloc(32, 9))).toBe(true);
  });

  test("an older server's welcome has none", async () => {
    expect(await welcomeWith(undefined)).toBeUndefined();
  });

  test("a malformed session is ignored, and the connection still works", async () => {
    for (const bad of [{ id: 0, key, expiresMs: 1 }, { id: 2 ** 32, key, expiresMs: 1 }, { id: 5, key: "c2hvcnQ=", expiresMs: 1 }, { id: 5, key }, "yes"]) {
      expect(await welcomeWith(bad)).toBeUndefined();
    }
  });
});
