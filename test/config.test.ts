import { expect, test } from "bun:test";
import { loadConfig } from "../src/config.ts";

test("defaults: port 8443 on all addresses, embedded database under ./data, HTTP/3 on", () => {
  const c = loadConfig({});
  expect(c).toMatchObject({ port: 8443, host: "0.0.0.0", databaseUrl: "", http3: true, writers: 3 });
  expect(c.dataDir.endsWith("/data")).toBe(true);
});

test("bad values fail with the variable's name and the allowed range", () => {
  expect(() => loadConfig({ SERVERMIND_PORT: "http" })).toThrow('SERVERMIND_PORT="http" is not a whole number from 0 to 65535');
  expect(() => loadConfig({ SERVERMIND_WRITERS: "0" })).toThrow(/SERVERMIND_WRITERS/);
  expect(() => loadConfig({ SERVERMIND_HTTP3: "maybe" })).toThrow(/not a boolean/);
  expect(() => loadConfig({ SERVERMIND_TLS_CERT: "/x.pem" })).toThrow(/must be set together/);
});

test("large byte limits parse without 32-bit overflow", () => {
  expect(loadConfig({ SERVERMIND_MAX_PENDING_BYTES: String(8 * 2 ** 30) }).maxPendingBytes).toBe(8 * 2 ** 30);
});

test("incident thresholds: defaults, the variable's syntax, off, and a bad item naming the variable", () => {
  expect(loadConfig({}).incidentThresholds).toEqual([
    { metric: "cpu.usage_pct", above: 95 }, { metric: "mem.used_pct", above: 95 }, { metric: "disk.used_pct", above: 90, severity: 5 },
  ]);
  expect(loadConfig({ SERVERMIND_INCIDENT_THRESHOLDS: "load.1>8:6, swap.used_pct > 50, mem.available_bytes<100000000" }).incidentThresholds).toEqual([
    { metric: "load.1", above: 8, severity: 6 }, { metric: "swap.used_pct", above: 50 }, { metric: "mem.available_bytes", below: 100000000 },
  ]);
  expect(loadConfig({ SERVERMIND_INCIDENT_THRESHOLDS: "off" }).incidentThresholds).toEqual([]);
  expect(() => loadConfig({ SERVERMIND_INCIDENT_THRESHOLDS: "cpu.usage_pct>=95" })).toThrow(/SERVERMIND_INCIDENT_THRESHOLDS/);
  expect(() => loadConfig({ SERVERMIND_INCIDENT_THRESHOLDS: "cpu.usage_pct>95:11" })).toThrow(/severity from 1 to 10/);
});

test("the public URL: SERVERMIND_PUBLIC_URL as an origin, else the first TLS name and the port", () => {
  expect(loadConfig({ SERVERMIND_PUBLIC_URL: "https://sm.example.com:9443/" }).publicUrl).toBe("https://sm.example.com:9443");
  expect(loadConfig({ SERVERMIND_TLS_NAMES: "mon.example.net,10.0.0.5", SERVERMIND_PORT: "8443" }).publicUrl).toBe("https://mon.example.net:8443");
  expect(() => loadConfig({ SERVERMIND_PUBLIC_URL: "https://sm.example.com/console" })).toThrow(/origin without a path/);
});

test("retention per metric tier: raw 30 days, 1-minute rollups 90, 10-minute 730, 1-hour 730, each settable", () => {
  expect(loadConfig({})).toMatchObject({ retentionMetricsDays: 30, retentionRollup1mDays: 90, retentionRollup10mDays: 730, retentionRollup1hDays: 730 });
  const c = loadConfig({ SERVERMIND_RETENTION_ROLLUP_1M_DAYS: "120", SERVERMIND_RETENTION_ROLLUP_10M_DAYS: "400", SERVERMIND_RETENTION_ROLLUP_1H_DAYS: "1825" });
  expect([c.retentionRollup1mDays, c.retentionRollup10mDays, c.retentionRollup1hDays]).toEqual([120, 400, 1825]);
  expect(() => loadConfig({ SERVERMIND_RETENTION_ROLLUP_10M_DAYS: "0" })).toThrow(/SERVERMIND_RETENTION_ROLLUP_10M_DAYS/);
  expect(() => loadConfig({ SERVERMIND_RETENTION_ROLLUP_1H_DAYS: "0" })).toThrow(/SERVERMIND_RETENTION_ROLLUP_1H_DAYS/);
});
