/**
 * Optional forwarding of audit records to a SIEM as RFC 5424 syslog messages over UDP.
 * Facility 13 (log audit); severity notice for successes, warning for failures.
 */
import { createSocket, type Socket } from "node:dgram";
import { hostname } from "node:os";
import type { AuditRecord } from "./audit.ts";

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

export interface SyslogTarget {
  host: string;
  port: number;
}

/** Returns a sender that never throws (forwarding must not fail the audited action). */
export function createSyslogForwarder(target: () => SyslogTarget | null): { send(r: AuditRecord): void; close(): void } {
  let socket: Socket | null = null;
  return {
    send(r) {
      const t = target();
      if (!t) return;
      socket ??= createSocket(t.host.includes(":") ? "udp6" : "udp4");
      socket.send(Buffer.from(formatSyslog(r)), t.port, t.host, () => {});
    },
    close() {
      socket?.close();
      socket = null;
    },
  };
}
