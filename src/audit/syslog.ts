/**
 * Optional forwarding of audit records to a SIEM as RFC 5424 syslog messages, over UDP
 * (RFC 5426, the default) or over TLS (RFC 5425: octet-counted framing, `LEN SP MSG`, on one
 * long-lived TLS 1.2+ connection). Facility 13 (log audit); severity notice for successes,
 * warning for failures. The destination host and port come from the audit settings; the
 * transport from the environment:
 *   SERVERMIND_SYSLOG_TRANSPORT  udp (default) | tls
 *   SERVERMIND_SYSLOG_CA_FILE    PEM file: with TLS, trust only this CA (pinning); without it the
 *                                system's trusted CAs. The certificate is always checked against
 *                                the host name (or IP) of the destination.
 * TLS keeps at most 10,000 messages queued while (re)connecting, with back-off from 1 s to 30 s;
 * beyond that the oldest are dropped and counted in the error log. Forwarding never throws and
 * never fails the audited action.
 */
import { createSocket, type Socket } from "node:dgram";
import { connect, type TLSSocket } from "node:tls";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { readFileSync } from "node:fs";
import type { AuditRecord } from "./record.ts";

const FACILITY_LOG_AUDIT = 13;

function sdValue(v: string): string {
  return v.replace(/[\\"\]]/g, (c) => `\\${c}`);
}

export function formatSyslog(r: AuditRecord, host = hostname()): string {
  const severity = r.success ? 5 : 4;
  const pri = FACILITY_LOG_AUDIT * 8 + severity;
  const sd = `[audit@32473 id="${r.id}" category="${sdValue(r.category)}" action="${sdValue(r.action)}" actor="${sdValue(r.actor_name)}" ip="${sdValue(r.ip)}" target="${sdValue(r.target)}" success="${r.success}"]`;
  const msg = `${r.actor_name || r.actor_type} ${r.action} ${r.target} ${r.success ? "succeeded" : "failed"}`;
  return `<${pri}>1 ${new Date(r.ts).toISOString()} ${host.replace(/\s/g, "_") || "-"} servermind - ${r.action.replace(/\s/g, "_").slice(0, 32)} ${sd} \ufeff${msg}`;
}

/** RFC 5425 section 4.3: the message's length in octets, a space, the message. */
export function octetCounted(msg: string): Buffer {
  const body = Buffer.from(msg, "utf8");
  return Buffer.concat([Buffer.from(`${body.length} `, "ascii"), body]);
}

export interface SyslogTarget {
  host: string;
  port: number;
}

export interface SyslogTransport {
  kind: "udp" | "tls";
  /** PEM of the only CA trusted for the receiver's certificate (TLS). */
  ca?: string;
}

export function syslogTransportFromEnv(env: Record<string, string | undefined> = process.env): SyslogTransport {
  const kind = (env.SERVERMIND_SYSLOG_TRANSPORT || "udp").toLowerCase();
  if (kind !== "udp" && kind !== "tls") throw new Error(`SERVERMIND_SYSLOG_TRANSPORT is udp or tls, got "${env.SERVERMIND_SYSLOG_TRANSPORT}"`);
  const caFile = env.SERVERMIND_SYSLOG_CA_FILE;
  return { kind, ...(caFile ? { ca: readFileSync(caFile, "utf8") } : {}) };
}

const MAX_QUEUE = 10_000;

/** One TLS connection at a time to the current target, reconnecting with back-off. */
function createTlsSender(transport: SyslogTransport, log: (s: string) => void) {
  let socket: TLSSocket | null = null;
  let connected = false;
  let dest = "";
  let queue: Buffer[] = [];
  let dropped = 0;
  let backoffMs = 1000;
  let retry: ReturnType<typeof setTimeout> | null = null;
  let closed = false;

  function flush() {
    if (!socket || !connected) return;
    for (const b of queue) socket.write(b);
    queue = [];
  }

  function open(t: SyslogTarget) {
    dest = `${t.host}:${t.port}`;
    connected = false;
    const s = connect({
      host: t.host, port: t.port, minVersion: "TLSv1.2", rejectUnauthorized: true,
      ...(isIP(t.host) ? {} : { servername: t.host }),
      ...(transport.ca ? { ca: [transport.ca] } : {}),
    });
    socket = s;
    s.setNoDelay(true);
    s.once("secureConnect", () => {
      if (socket !== s) return;
      connected = true;
      backoffMs = 1000;
      flush();
    });
    s.on("error", (e) => log(`syslog over TLS to ${dest}: ${e.message}`));
    s.on("close", () => {
      if (socket !== s) return;
      socket = null;
      connected = false;
      if (closed || retry) return;
      retry = setTimeout(() => {
        retry = null;
        if (!closed && queue.length) open(t);
      }, backoffMs);
      retry.unref?.();
      backoffMs = Math.min(backoffMs * 2, 30_000);
    });
  }

  return {
    send(t: SyslogTarget, frame: Buffer) {
      if (closed) return;
      if (queue.length >= MAX_QUEUE) {
        queue.shift();
        if (dropped++ % 1000 === 0) log(`syslog over TLS to ${dest}: queue full (${MAX_QUEUE}), ${dropped} messages dropped so far`);
      }
      queue.push(frame);
      if (socket && dest !== `${t.host}:${t.port}`) socket.destroy(); // the settings changed
      if (!socket && !retry) open(t);
      else flush();
    },
    close() {
      closed = true;
      if (retry) clearTimeout(retry);
      socket?.end();
      socket = null;
    },
  };
}

/** Returns a sender that never throws (forwarding must not fail the audited action). */
export function createSyslogForwarder(
  target: () => SyslogTarget | null,
  transport: SyslogTransport = syslogTransportFromEnv(),
  log: (s: string) => void = console.error,
): { send(r: AuditRecord): void; close(): void } {
  let udp: Socket | null = null;
  const tls = transport.kind === "tls" ? createTlsSender(transport, log) : null;
  return {
    send(r) {
      const t = target();
      if (!t) return;
      try {
        if (tls) {
          tls.send(t, octetCounted(formatSyslog(r)));
          return;
        }
        udp ??= createSocket(t.host.includes(":") ? "udp6" : "udp4");
        udp.send(Buffer.from(formatSyslog(r)), t.port, t.host, () => {});
      } catch (e) {
        log(`syslog forwarding failed: ${e instanceof Error ? e.message : e}`);
      }
    },
    close() {
      udp?.close();
      udp = null;
      tls?.close();
    },
  };
}
