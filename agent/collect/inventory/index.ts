/**
 * The inventory snapshot: OS, kernel, packages (dpkg status file, or rpm), systemd services,
 * listening ports (from /proc/net/{tcp,udp}{,6}) and users (/etc/passwd; never /etc/shadow).
 * Commands (rpm, systemctl) go through the injected `run`, so tests feed recorded output.
 */
import type { HostFs } from "../collector.ts";

export interface InventoryOptions {
  fs: HostFs;
  /** Runs a command and returns its stdout, or undefined when it is missing or fails. */
  run: (argv: string[]) => string | undefined;
}

export interface Inventory {
  os: { id: string; name: string; version: string; prettyName: string };
  kernel: { release: string; version: string; arch: string };
  hostname: string;
  packages: Array<{ name: string; version: string; arch: string }>;
  services: Array<{ name: string; load: string; active: string; sub: string }>;
  ports: Array<{ proto: string; address: string; port: number; uid: number }>;
  users: Array<{ name: string; uid: number; gid: number; home: string; shell: string }>;
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^["']|["']$/g, "");
  }
  return out;
}

export function parseDpkgStatus(text: string): Inventory["packages"] {
  const out: Inventory["packages"] = [];
  for (const para of text.split(/\n\n+/)) {
    const f: Record<string, string> = {};
    for (const line of para.split("\n")) {
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m) f[m[1]!] = m[2]!;
    }
    if (f.Package && f.Status?.endsWith(" installed")) out.push({ name: f.Package, version: f.Version ?? "", arch: f.Architecture ?? "" });
  }
  return out;
}

export function parseSystemctlUnits(text: string): Inventory["services"] {
  const out: Inventory["services"] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().replace(/^●\s*/, "").split(/\s+/);
    if (f.length >= 4 && f[0]!.endsWith(".service")) out.push({ name: f[0]!, load: f[1]!, active: f[2]!, sub: f[3]! });
  }
  return out;
}

function hexIpv4(h: string): string {
  const n = parseInt(h, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join(".");
}

function hexIpv6(h: string): string {
  // four 32-bit words, each in host (little-endian) byte order
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = h.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:{3,}/, "::");
}

/** Listening TCP sockets and bound, unconnected UDP sockets from one /proc/net table. */
export function parseListening(text: string, proto: string): Inventory["ports"] {
  const out: Inventory["ports"] = [];
  const v6 = proto.endsWith("6");
  const lines = text.split("\n");
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [addr, port] = f[1]!.split(":");
    const st = f[3]!.toUpperCase();
    const listening = proto.startsWith("tcp") ? st === "0A" : st === "07" && /^0+:0000$/.test(f[2]!);
    if (!listening || !addr || !port) continue;
    out.push({ proto, address: v6 ? hexIpv6(addr) : hexIpv4(addr), port: parseInt(port, 16), uid: Number(f[7]) });
  }
  return out;
}

export function parsePasswd(text: string): Inventory["users"] {
  const out: Inventory["users"] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || line.startsWith("#")) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! });
  }
  return out;
}

export function collectInventory({ fs, run }: InventoryOptions): Inventory {
  const os = parseOsRelease(fs.read("etc/os-release") ?? fs.read("usr/lib/os-release") ?? "");
  const dpkg = fs.read("var/lib/dpkg/status");
  let packages = dpkg ? parseDpkgStatus(dpkg) : [];
  if (!dpkg) {
    const rpm = run(["rpm", "--root", fs.root, "-qa", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"]);
    if (rpm) packages = rpm.split("\n").filter(Boolean).map((l) => {
      const [name, version, arch] = l.split("\t");
      return { name: name ?? "", version: version ?? "", arch: arch ?? "" };
    });
  }
  const units = run(["systemctl", "list-units", "--type=service", "--all", "--no-legend", "--plain", "--no-pager"]);
  const ports = ["tcp", "tcp6", "udp", "udp6"].flatMap((p) => parseListening(fs.read(`proc/net/${p}`) ?? "", p));
  return {
    os: { id: os.ID ?? "", name: os.NAME ?? "", version: os.VERSION_ID ?? "", prettyName: os.PRETTY_NAME ?? "" },
    kernel: {
      release: fs.read("proc/sys/kernel/osrelease")?.trim() ?? "",
      version: fs.read("proc/sys/kernel/version")?.trim() ?? "",
      arch: process.arch,
    },
    hostname: fs.read("proc/sys/kernel/hostname")?.trim() ?? fs.read("etc/hostname")?.trim() ?? "",
    packages,
    services: units ? parseSystemctlUnits(units) : [],
    ports,
    users: parsePasswd(fs.read("etc/passwd") ?? ""),
  };
}

/** The real command runner: bounded in time and output, never throws. */
export function runCommand(argv: string[]): string | undefined {
  try {
    const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "ignore", stdin: "ignore", timeout: 20_000, maxBuffer: 16 << 20 });
    return p.exitCode === 0 ? p.stdout.toString() : undefined;
  } catch {
    return undefined;
  }
}
