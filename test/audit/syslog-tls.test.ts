/**
 * RFC 5425 forwarding: audit records reach a real TLS receiver (a node:tls server on 127.0.0.1
 * with a self-signed certificate, parsing the octet-counted framing, and Debian's rsyslog with
 * its gtls driver); a receiver whose certificate is not signed by the pinned CA gets nothing.
 */
import { test, expect, afterAll } from "bun:test";
import { createServer, type Server, type TLSSocket } from "node:tls";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { requireComponent } from "../support/ci.ts";
import { freePort } from "../../src/store/postgres/embedded.ts";
import { testDatabase } from "../support/db.ts";
import { audit, onAudit } from "../../src/audit/audit.ts";
import { createSyslogForwarder, formatSyslog, octetCounted, syslogTransportFromEnv } from "../../src/audit/syslog.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";

const db = await testDatabase(2);
afterAll(() => db.drop());

/** A TLS syslog receiver: splits the stream into `LEN SP MSG` frames, refusing anything else. */
async function receiver(cert: { certPem: string; keyPem: string }) {
  const messages: string[] = [];
  const problems: string[] = [];
  let handshakes = 0;
  const server: Server = createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: "TLSv1.2" }, (sock: TLSSocket) => {
    handshakes++;
    let buf = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const sp = buf.indexOf(0x20);
        if (sp < 0) break;
        const lenText = buf.subarray(0, sp).toString("ascii");
        if (!/^[1-9]\d{0,8}$/.test(lenText)) {
          problems.push(`bad frame length "${lenText}"`);
          sock.destroy();
          return;
        }
        const len = Number(lenText);
        if (buf.length < sp + 1 + len) break;
        messages.push(buf.subarray(sp + 1, sp + 1 + len).toString("utf8"));
        buf = buf.subarray(sp + 1 + len);
      }
    });
    sock.on("error", () => {});
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as { port: number }).port;
  return { port, messages, problems, handshakes: () => handshakes, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

const ev = (action: string, target = "console") => ({
  actor: { type: "user" as const, id: 7, name: "alice" }, ip: "198.51.100.4", userAgent: "UA/1.0",
  category: "authentication" as const, action, target, success: false,
});

test("octet counting counts bytes, not characters", () => {
  expect(octetCounted("héllo").toString("utf8")).toBe("6 héllo");
});

test("the transport comes from SERVERMIND_SYSLOG_TRANSPORT; a typo fails with the variable's name", () => {
  expect(syslogTransportFromEnv({})).toEqual({ kind: "udp" });
  expect(syslogTransportFromEnv({ SERVERMIND_SYSLOG_TRANSPORT: "tls" })).toEqual({ kind: "tls" });
  expect(() => syslogTransportFromEnv({ SERVERMIND_SYSLOG_TRANSPORT: "tcp" })).toThrow(/SERVERMIND_SYSLOG_TRANSPORT/);
});

test("audit records arrive over TLS, octet-counted, at a receiver whose certificate the pinned CA signed", async () => {
  const cert = createSelfSigned(["127.0.0.1", "localhost"], "syslog receiver");
  const r = await receiver(cert);
  const fwd = createSyslogForwarder(() => ({ host: "127.0.0.1", port: r.port }), { kind: "tls", ca: cert.certPem }, () => {});
  const off = onAudit((rec) => fwd.send(rec));
  try {
    // a message with spaces, a multi-byte character and the SD escapes, then a burst
    const first = await audit(db.sql, ev("login.password", 'x"]y é'));
    const burst = [];
    for (let i = 0; i < 20; i++) burst.push(await audit(db.sql, ev(`burst.${i}`)));
    const ids = new Set([first, ...burst].map((x) => ` [audit@32473 id="${x.id}" `));
    const ours = () => r.messages.filter((m) => [...ids].some((id) => m.includes(id)));
    for (const end = Date.now() + 5000; ours().length < 21 && Date.now() < end; ) await Bun.sleep(10);
    expect(r.problems).toEqual([]);
    expect(ours()[0]).toBe(formatSyslog(first));
    expect(ours().slice(1)).toEqual(burst.map((b) => formatSyslog(b)));
    expect(r.handshakes()).toBe(1); // one long-lived connection
  } finally {
    off();
    fwd.close();
    await r.close();
  }
});

test("a receiver with a certificate outside the pinned CA gets no message", async () => {
  const pinned = createSelfSigned(["127.0.0.1"], "the SIEM's CA");
  const impostor = createSelfSigned(["127.0.0.1"], "impostor");
  const r = await receiver(impostor);
  const errors: string[] = [];
  const fwd = createSyslogForwarder(() => ({ host: "127.0.0.1", port: r.port }), { kind: "tls", ca: pinned.certPem }, (s) => errors.push(s));
  try {
    fwd.send(await audit(db.sql, ev("login.refused")));
    for (const end = Date.now() + 3000; errors.length === 0 && Date.now() < end; ) await Bun.sleep(10);
    await Bun.sleep(100);
    expect(errors.join("\n")).toMatch(/syslog over TLS to 127\.0\.0\.1:\d+: .*(certificate|self.signed|verify)/i);
    expect(r.messages).toEqual([]);
  } finally {
    fwd.close();
    await r.close();
  }
});

const hasRsyslogGtls = spawnSync("sh", ["-c", "command -v rsyslogd"]).status === 0 &&
  ["/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so", "/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so"].some((f) => existsSync(f));

test("Debian's rsyslog (imtcp + gtls) receives the forwarded records intact", async () => {
  if (!requireComponent(hasRsyslogGtls, "rsyslogd with its gtls driver (Debian packages rsyslog, rsyslog-gnutls)")) return;
  const dir = mkdtempSync(join(tmpdir(), "servermind-rsyslog-"));
  const cert = createSelfSigned(["127.0.0.1"], "rsyslog receiver");
  writeFileSync(join(dir, "cert.pem"), cert.certPem);
  writeFileSync(join(dir, "key.pem"), cert.keyPem, { mode: 0o600 });
  const port = await freePort();
  const out = join(dir, "out.log");
  writeFileSync(join(dir, "rsyslog.conf"), [
    `global(workDirectory="${dir}" DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="${dir}/cert.pem"`,
    `  DefaultNetstreamDriverCertFile="${dir}/cert.pem" DefaultNetstreamDriverKeyFile="${dir}/key.pem")`,
    `module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")`,
    `input(type="imtcp" port="${port}" address="127.0.0.1")`,
    `template(name="raw" type="string" string="%rawmsg%\\n")`,
    `*.* action(type="omfile" file="${out}" template="raw")`,
  ].join("\n"));
  const daemon = spawn("rsyslogd", ["-n", "-f", join(dir, "rsyslog.conf"), "-i", join(dir, "rsyslogd.pid")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  daemon.stderr!.on("data", (d) => (stderr += d));
  const fwd = createSyslogForwarder(() => ({ host: "127.0.0.1", port }), { kind: "tls", ca: cert.certPem }, () => {});
  try {
    // wait (at most 10 s) until rsyslog listens
    for (const end = Date.now() + 10_000; ; ) {
      const up = await new Promise<boolean>((ok) => {
        const c = connect(port, "127.0.0.1", () => (c.destroy(), ok(true)));
        c.on("error", () => ok(false));
      });
      if (up) break;
      if (Date.now() > end || daemon.exitCode !== null) throw new Error(`rsyslogd did not start: ${stderr}`);
      await Bun.sleep(50);
    }
    const recs = [];
    for (let i = 0; i < 5; i++) recs.push(await audit(db.sql, ev(`rsyslog.${i}`, `target é ${i}`)));
    for (const r of recs) fwd.send(r);
    const want = recs.map((r) => formatSyslog(r));
    let got: string[] = [];
    for (const end = Date.now() + 10_000; got.length < want.length && Date.now() < end; ) {
      await Bun.sleep(50);
      got = existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean) : [];
    }
    expect(got).toEqual(want);
  } finally {
    fwd.close();
    daemon.kill("SIGTERM");
    await new Promise((ok) => (daemon.exitCode !== null ? ok(null) : daemon.once("exit", ok)));
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
