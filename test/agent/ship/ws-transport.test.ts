import { expect, test } from "bun:test";
import { connectWsTransport, proxyFor } from "../../../agent/ship/ws-transport.ts";
import { pinnedTls } from "../../../agent/ship/pin.ts";
import { createSelfSigned } from "../../../src/tls/self-signed.ts";

test("commands and unknown message kinds pushed mid-send do not disturb the ack of that send", async () => {
  const cert = createSelfSigned(["127.0.0.1"]);
  const server = Bun.serve({
    hostname: "127.0.0.1", port: 0, tls: { cert: cert.certPem, key: cert.keyPem },
    fetch: (req, srv) => (srv.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 })),
    websocket: {
      open(ws) {
        ws.send(JSON.stringify({ type: "challenge", nonce: "abc" }));
      },
      message(ws, m) {
        const bytes = m as Uint8Array;
        if (bytes[0] === 0x48) return void ws.send(JSON.stringify({ type: "welcome", agentId: 1 })); // "H"ello
        ws.send(JSON.stringify({ type: "command", command: "collect-inventory", id: 7 }));
        ws.send(JSON.stringify({ type: "something-new", x: 1 }));
        ws.send(JSON.stringify({ type: "ack", acks: [{ batch: 5, seq: 9, status: "ok" }], rejects: [] }));
      },
    },
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
