/**
 * Where notifications may go (src/alerts/destinations.ts): a channel pointed at loopback, a
 * private network or the cloud metadata address is refused when saved (a literal address) and
 * when sent (every address a name resolves to), and the receiver gets nothing; an operator's
 * SERVERMIND_NOTIFY_ALLOW_NETWORKS lets an internal destination through. Real receivers on
 * 127.0.0.1 (this run's preload allows loopback; each test here sets the policy it checks).
 */
import { afterAll, expect, test } from "bun:test";
import { createServer } from "node:net";
import { sendThrough, validateChannel, type Channel } from "../../src/alerts/channels.ts";
import { checkDestination, isPublicAddress, parseAllowedNetworks, useDestinationPolicy } from "../../src/alerts/destinations.ts";
import { buildPayload } from "../../src/alerts/payload.ts";
import { loadConfig } from "../../src/config.ts";

afterAll(() => useDestinationPolicy(parseAllowedNetworks(process.env.SERVERMIND_NOTIFY_ALLOW_NETWORKS ?? "")));

const payload = () => buildPayload({
  groupKey: "1", labels: {}, status: "firing", alerts: [],
  rule: { id: 1, name: "r", kind: "host_offline", enabled: true, severity: "info", scopeTags: [], labels: {}, params: {}, forSeconds: 0, channelIds: [], groupBy: [], groupWaitSeconds: 0, groupIntervalSeconds: 0, repeatIntervalSeconds: 0, builtin: false },
});
const channel = (kind: Channel["kind"], config: Channel["config"]): Channel => ({ id: 1, name: kind, kind, config, hasSecret: true, enabled: true });

function receiver() {
  let hits = 0;
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (hits++, new Response("ok")) });
  return { hits: () => hits, port: server.port, stop: () => server.stop(true) };
}

test("public and non-public addresses", () => {
  for (const ip of ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]) expect({ ip, public: isPublicAddress(ip) }).toEqual({ ip, public: true });
  for (const ip of ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254"]) {
    expect({ ip, public: isPublicAddress(ip) }).toEqual({ ip, public: false });
  }
});

test("SERVERMIND_NOTIFY_ALLOW_NETWORKS is checked at start, naming the bad entry", () => {
  expect(() => loadConfig({ SERVERMIND_NOTIFY_ALLOW_NETWORKS: "10.0.0.0/8,10.0.0.0/33" })).toThrow('"10.0.0.0/33" is not an address or a CIDR network');
  expect(() => loadConfig({ SERVERMIND_NOTIFY_ALLOW_NETWORKS: "intranet" })).toThrow("SERVERMIND_NOTIFY_ALLOW_NETWORKS");
  const c = loadConfig({ SERVERMIND_NOTIFY_ALLOW_NETWORKS: " 10.20.0.0/16 , fd00::/8, 192.168.1.5" });
  expect(c.notifyPolicy.text).toBe("10.20.0.0/16,fd00::/8,192.168.1.5");
  expect(c.notifyPolicy.allowed.check("10.20.9.9", "ipv4")).toBe(true);
  expect(c.notifyPolicy.allowed.check("192.168.1.6", "ipv4")).toBe(false);
});

test("saving: a literal non-public address in a URL or SMTP host is refused unless allowed", () => {
  useDestinationPolicy(parseAllowedNetworks(""));
  expect(validateChannel("webhook", "w", { url: "http://169.254.169.254/latest/meta-data/" }, "k", false)).toEqual([
    "The webhook URL is refused: 169.254.169.254 is not a public address; an operator may allow its network with SERVERMIND_NOTIFY_ALLOW_NETWORKS.",
  ]);
  expect(validateChannel("webhook", "w", { url: "http://[::1]:8080/" }, "k", false)[0]).toContain("::1 is not a public address");
  expect(validateChannel("slack", "s", {}, "https://10.0.0.7/services/x", false)[0]).toContain("10.0.0.7 is not a public address");
  expect(validateChannel("pagerduty", "p", { url: "http://127.0.0.1:9/enqueue" }, "k", false)[0]).toContain("127.0.0.1 is not a public address");
  expect(validateChannel("email", "e", { host: "192.168.0.25", port: 25, from: "a@b.c", to: ["d@e.f"] }, "", false)[0]).toContain("The SMTP host is refused");
  // names wait for the send; public literals pass
  expect(validateChannel("webhook", "w", { url: "https://hooks.example.com/x" }, "k", false)).toEqual([]);
  expect(validateChannel("webhook", "w", { url: "https://1.1.1.1/x" }, "k", false)).toEqual([]);
  useDestinationPolicy(parseAllowedNetworks("10.0.0.0/8"));
  expect(validateChannel("slack", "s", {}, "https://10.0.0.7/services/x", false)).toEqual([]);
});

test("sending: a webhook, Slack or PagerDuty URL on loopback (by address or by name) is refused and nothing arrives", async () => {
  const r = receiver();
  try {
    useDestinationPolicy(parseAllowedNetworks("10.0.0.0/8"));
    for (const host of ["127.0.0.1", "localhost"]) {
      const url = `http://${host}:${r.port}/hook`;
      const sends = [
        await sendThrough(channel("webhook", { url }), "k", payload()),
        await sendThrough(channel("slack", {}), url, payload()),
        await sendThrough(channel("pagerduty", { url }), "k", payload()),
      ];
      for (const s of sends) {
        expect(s.ok).toBe(false);
        expect(s.error).toStartWith("destination refused: ");
        expect(s.error).toMatch(/(127\.0\.0\.1|::1) is not a public address/);
      }
    }
    expect(r.hits()).toBe(0);
    // the operator allows loopback: the same channel delivers
    useDestinationPolicy(parseAllowedNetworks("127.0.0.0/8"));
    expect(await sendThrough(channel("webhook", { url: `http://localhost:${r.port}/hook` }), "k", payload())).toEqual({ ok: true, status: 200 });
    expect(r.hits()).toBe(1);
  } finally {
    r.stop();
  }
});

test("sending: an SMTP host on loopback is refused before any connection", async () => {
  let connections = 0;
  const smtp = createServer((c) => (connections++, c.end("554 no\r\n")));
  await new Promise<void>((ok) => smtp.listen(0, "127.0.0.1", ok));
  try {
    useDestinationPolicy(parseAllowedNetworks(""));
    const port = (smtp.address() as { port: number }).port;
    const s = await sendThrough(channel("email", { host: "127.0.0.1", port, from: "a@b.c", to: ["d@e.f"] }), undefined, payload());
    expect(s).toEqual({ ok: false, error: "destination refused: 127.0.0.1 is not a public address; an operator may allow its network with SERVERMIND_NOTIFY_ALLOW_NETWORKS" });
    expect(connections).toBe(0);
  } finally {
    smtp.close();
  }
});

test("a name that does not resolve is a clear error, not a crash", async () => {
  expect(await checkDestination("no-such-host.invalid")).toMatch(/^no-such-host\.invalid does not resolve \(/);
});
