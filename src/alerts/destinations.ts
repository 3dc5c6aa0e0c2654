/**
 * Where notifications may go. A channel's URL or SMTP host is typed by a console user with
 * `notifications.edit`, and the server then connects to it: without a rule, that user could make
 * the server post to its own loopback services, the cloud metadata address or anything on the
 * internal network (server-side request forgery). So destinations that resolve to a loopback,
 * private, link-local, shared, multicast or otherwise non-public address are refused, unless the
 * operator allows their network with SERVERMIND_NOTIFY_ALLOW_NETWORKS (CIDR list; an internal
 * Mattermost or mail relay, say). Literal addresses are checked when a channel is saved; names
 * are resolved and checked at each send, every address they resolve to.
 */
import { BlockList, isIP } from "node:net";
import { lookup } from "node:dns/promises";

/** Address ranges that are not the public internet (IANA special-purpose registries). */
const NON_PUBLIC: [string, number, "ipv4" | "ipv6"][] = [
  ["0.0.0.0", 8, "ipv4"], ["10.0.0.0", 8, "ipv4"], ["100.64.0.0", 10, "ipv4"], ["127.0.0.0", 8, "ipv4"],
  ["169.254.0.0", 16, "ipv4"], ["172.16.0.0", 12, "ipv4"], ["192.0.0.0", 24, "ipv4"], ["192.0.2.0", 24, "ipv4"],
  ["192.168.0.0", 16, "ipv4"], ["198.18.0.0", 15, "ipv4"], ["198.51.100.0", 24, "ipv4"], ["203.0.113.0", 24, "ipv4"],
  ["224.0.0.0", 4, "ipv4"], ["240.0.0.0", 4, "ipv4"],
  ["::", 128, "ipv6"], ["::1", 128, "ipv6"], ["64:ff9b:1::", 48, "ipv6"], ["100::", 64, "ipv6"], ["2001:db8::", 32, "ipv6"],
  ["fc00::", 7, "ipv6"], ["fe80::", 10, "ipv6"], ["ff00::", 8, "ipv6"],
];

const nonPublic = new BlockList();
for (const [a, p, t] of NON_PUBLIC) nonPublic.addSubnet(a, p, t);

/** An IPv4 address written as IPv6 (::ffff:a.b.c.d) is judged as the IPv4 address. */
function plain(ip: string): { ip: string; family: "ipv4" | "ipv6" } {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (m) return { ip: m[1]!, family: "ipv4" };
  return { ip, family: isIP(ip) === 6 ? "ipv6" : "ipv4" };
}

export function isPublicAddress(ip: string): boolean {
  const p = plain(ip);
  return !nonPublic.check(p.ip, p.family);
}

export interface DestinationPolicy {
  /** the networks the operator allows although they are not public */
  allowed: BlockList;
  /** as configured, for messages */
  text: string;
}

/** Parses SERVERMIND_NOTIFY_ALLOW_NETWORKS: comma-separated CIDRs (a bare address is /32 or /128). */
export function parseAllowedNetworks(raw: string): DestinationPolicy {
  const allowed = new BlockList();
  const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    const [addr, bits, extra] = item.split("/");
    const family = isIP(addr ?? "");
    const max = family === 6 ? 128 : 32;
    const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (!family || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      throw new Error(`SERVERMIND_NOTIFY_ALLOW_NETWORKS: ${JSON.stringify(item)} is not an address or a CIDR network (e.g. 10.20.0.0/16, fd00::/8)`);
    }
    allowed.addSubnet(addr!, prefix, family === 6 ? "ipv6" : "ipv4");
  }
  return { allowed, text: items.join(",") };
}

let configured: DestinationPolicy | undefined;

/** The server's policy (src/main.ts, from the configuration). */
export function useDestinationPolicy(p: DestinationPolicy): void {
  configured = p;
}

/** The policy in force: the configured one, else the environment's (none: public addresses only). */
export function destinationPolicy(): DestinationPolicy {
  configured ??= parseAllowedNetworks(process.env.SERVERMIND_NOTIFY_ALLOW_NETWORKS ?? "");
  return configured;
}

/** Why `ip` may not be sent to, or undefined when it may. */
export function refusedAddress(ip: string, policy = destinationPolicy()): string | undefined {
  if (isPublicAddress(ip)) return undefined;
  const p = plain(ip);
  if (policy.allowed.check(p.ip, p.family)) return undefined;
  return `${ip} is not a public address; an operator may allow its network with SERVERMIND_NOTIFY_ALLOW_NETWORKS`;
}

/** For a channel being saved: a literal address in it that the policy refuses (names wait for the send). */
export function refusedLiteral(host: string, policy = destinationPolicy()): string | undefined {
  const h = host.replace(/^\[|\]$/g, "");
  return isIP(h) ? refusedAddress(h, policy) : undefined;
}

/**
 * Before a send: resolves `host` and checks every address it has. (A name that resolves to
 * another address between this check and the connection, DNS rebinding, is not caught; the
 * connection is made by name so that TLS verifies the certificate against it.)
 */
export async function checkDestination(host: string, policy = destinationPolicy()): Promise<string | undefined> {
  const h = host.replace(/^\[|\]$/g, "");
  if (isIP(h)) return refusedAddress(h, policy);
  let addrs: { address: string }[];
  try {
    addrs = await lookup(h, { all: true, verbatim: true });
  } catch (e) {
    return `${h} does not resolve (${e instanceof Error ? (e as NodeJS.ErrnoException).code ?? e.message : e})`;
  }
  for (const a of addrs) {
    const why = refusedAddress(a.address, policy);
    if (why) return `${h} resolves to ${why}`;
  }
  return undefined;
}
