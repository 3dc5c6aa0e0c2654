/**
 * UDP receive buffers for HTTP/3 (Linux /proc; elsewhere nothing here acts).
 *
 * Bun gives its QUIC socket the kernel's default receive buffer (net.core.rmem_default) and
 * offers no way to size it. The common default, 208 KiB, fills when many agents send at once;
 * the kernel then drops datagrams, which QUIC must detect and resend (docs/operations.md,
 * "HTTP/3 and UDP receive buffers"). The server package raises the default
 * (packaging/servermind-server.sysctl.conf); a server started another way says so at start,
 * and /metrics counts the host's drops.
 */
import { readFileSync } from "node:fs";
import { Gauge } from "../metrics/registry.ts";

/** What the server package sets, and the least it warns below. */
export const RECOMMENDED_RMEM_DEFAULT = 4 * 1024 * 1024;
export const MIN_RMEM_DEFAULT = 2 * 1024 * 1024;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** net.core.rmem_default in bytes (from the text of /proc/sys/net/core/rmem_default), or undefined when unknown. */
export function udpReceiveDefault(text: string | undefined): number | undefined {
  const n = Number(text?.trim());
  return text !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * The host's UDP datagrams dropped for a full receive buffer (RcvbufErrors in /proc/net/snmp),
 * or undefined when the table cannot be read. Every socket on the host counts, not only ours.
 */
export function udpReceiveBufferErrors(snmp: string | undefined): number | undefined {
  if (snmp === undefined) return undefined;
  const lines = snmp.split("\n").filter((l) => l.startsWith("Udp: "));
  if (lines.length < 2) return undefined;
  const names = lines[0]!.trim().split(/\s+/);
  const values = lines[1]!.trim().split(/\s+/);
  const i = names.indexOf("RcvbufErrors");
  const v = i > 0 ? Number(values[i]) : NaN;
  return Number.isFinite(v) ? v : undefined;
}

export const hostUdpReceiveDefault = () => udpReceiveDefault(read("/proc/sys/net/core/rmem_default"));
export const hostUdpReceiveBufferErrors = () => udpReceiveBufferErrors(read("/proc/net/snmp"));

/** A start-up warning when HTTP/3 is on and the default receive buffer (undefined: unknown) is small. */
export function udpBufferWarning(http3: boolean, rmemDefault: number | undefined): string | undefined {
  if (!http3 || rmemDefault === undefined || rmemDefault >= MIN_RMEM_DEFAULT) return undefined;
  return (
    `warning: HTTP/3 is on, but UDP sockets get a ${Math.round(rmemDefault / 1024)} KiB receive buffer (net.core.rmem_default); ` +
    `when many agents send at once the kernel drops datagrams, which QUIC must detect and resend. ` +
    `Set net.core.rmem_default=${RECOMMENDED_RMEM_DEFAULT} (the server package installs /usr/lib/sysctl.d/60-servermind-server.conf; ` +
    `otherwise put it in /etc/sysctl.d/ and run sysctl --system), or turn HTTP/3 off (SERVERMIND_HTTP3=false). ` +
    `docs/operations.md, "HTTP/3 and UDP receive buffers"`
  );
}

/** For /metrics: the buffer default (a gauge) and the host's drops since boot (a counter); absent when unknown. */
export function udpBufferMetrics(): Array<{ render(): string }> {
  return [
    new Gauge("host_udp_receive_buffer_default_bytes", "net.core.rmem_default: the receive buffer the server's HTTP/3 (QUIC) socket gets (-1: unknown).", () => hostUdpReceiveDefault() ?? -1),
    {
      render() {
        const n = hostUdpReceiveBufferErrors();
        if (n === undefined) return "";
        const name = "host_udp_receive_buffer_errors_total";
        return `# HELP ${name} UDP datagrams this host dropped for a full receive buffer since boot (RcvbufErrors in /proc/net/snmp; every socket counts). Rising while agents send over HTTP/3 means net.core.rmem_default is too small.\n# TYPE ${name} counter\n${name} ${n}\n`;
      },
    },
  ];
}
