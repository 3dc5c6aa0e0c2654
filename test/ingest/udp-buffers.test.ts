/**
 * UDP receive buffers for HTTP/3: the start-up check reads net.core.rmem_default, /metrics shows
 * it and the host's receive-buffer drops, and the value the server package installs is the one
 * the check recommends (packaging/servermind-server.sysctl.conf).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MIN_RMEM_DEFAULT, RECOMMENDED_RMEM_DEFAULT, udpBufferWarning, udpReceiveBufferErrors, udpReceiveDefault } from "../../src/http/udp-buffers.ts";
import { metricsAuth, startTestServer, type TestServer } from "../support/server.ts";

const SNMP = `Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 212211 7 1145 213364 1140 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
`;

test("RcvbufErrors is read from the Udp row of /proc/net/snmp, not UdpLite's; anything else is unknown", () => {
  expect(udpReceiveBufferErrors(SNMP)).toBe(1140);
  expect(udpReceiveBufferErrors("Udp: InDatagrams NoPorts\nUdp: 1 2\n")).toBeUndefined();
  expect(udpReceiveBufferErrors("garbage")).toBeUndefined();
  expect(udpReceiveBufferErrors(undefined)).toBeUndefined();
});

test("rmem_default parses a positive integer; anything else is unknown", () => {
  expect(udpReceiveDefault("212992\n")).toBe(212992);
  expect(udpReceiveDefault("")).toBeUndefined();
  expect(udpReceiveDefault("-1")).toBeUndefined();
  expect(udpReceiveDefault(undefined)).toBeUndefined();
});

test("the start-up warning: only with HTTP/3 on and a default below 2 MiB, naming the setting and the fix", () => {
  const w = udpBufferWarning(true, 212992);
  expect(w).toContain("208 KiB receive buffer (net.core.rmem_default)");
  expect(w).toContain(`net.core.rmem_default=${RECOMMENDED_RMEM_DEFAULT}`);
  expect(w).toContain("SERVERMIND_HTTP3=false");
  expect(udpBufferWarning(false, 212992)).toBeUndefined();
  expect(udpBufferWarning(true, MIN_RMEM_DEFAULT)).toBeUndefined();
  expect(udpBufferWarning(true, undefined)).toBeUndefined();
});

test("the server package sets the default the warning recommends, and a higher maximum", () => {
  const conf = readFileSync(join(import.meta.dir, "../../packaging/servermind-server.sysctl.conf"), "utf8");
  const setting = (k: string) => Number(new RegExp(`^${k.replace(/\./g, "\\.")}\\s*=\\s*(\\d+)$`, "m").exec(conf)?.[1]);
  expect(setting("net.core.rmem_default")).toBe(RECOMMENDED_RMEM_DEFAULT);
  expect(setting("net.core.rmem_max")).toBeGreaterThanOrEqual(RECOMMENDED_RMEM_DEFAULT);
});

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

test.skipIf(process.platform !== "linux")("/metrics shows this host's rmem_default and its UDP receive-buffer drops as /proc has them", async () => {
  const before = udpReceiveBufferErrors(readFileSync("/proc/net/snmp", "utf8"))!;
  const text = await (await fetch(`${server.url}/metrics`, { headers: metricsAuth, tls: { rejectUnauthorized: false } } as RequestInit)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1]);
  expect(text).toContain("# TYPE host_udp_receive_buffer_errors_total counter");
  expect(value("host_udp_receive_buffer_default_bytes")).toBe(Number(readFileSync("/proc/sys/net/core/rmem_default", "utf8").trim()));
  // a counter since boot: at least what /proc said just before the scrape
  expect(value("host_udp_receive_buffer_errors_total")).toBeGreaterThanOrEqual(before);
});
