/** Usage of every mounted block-device filesystem (from /proc/mounts) via statfs, per mount point. */
import type { CollectorOptions, MetricCollector } from "../collector.ts";

const NETWORK_OR_SPECIAL = new Set(["zfs", "btrfs", "overlay"]);

export interface Mount {
  device: string;
  mountPoint: string;
  fsType: string;
}

/** Unescapes the octal sequences /proc/mounts uses for spaces and tabs in paths. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMounts(text: string): Mount[] {
  const seen = new Set<string>();
  const out: Mount[] = [];
  for (const line of text.split("\n")) {
    const [device, mp, fsType] = line.split(" ");
    if (!device || !mp || !fsType) continue;
    if (!device.startsWith("/dev/") && !NETWORK_OR_SPECIAL.has(fsType)) continue;
    if (device.startsWith("/dev/loop")) continue;
    const mountPoint = unescape(mp);
    if (seen.has(mountPoint)) continue;
    seen.add(mountPoint);
    out.push({ device, mountPoint, fsType });
  }
  return out;
}

export function createDiskCollector({ fs }: CollectorOptions): MetricCollector {
  return {
    name: "disk",
    collect(emit) {
      const text = fs.read("proc/mounts") ?? fs.read("proc/self/mounts");
      if (!text) throw new Error("proc/mounts is not readable");
      for (const m of parseMounts(text)) {
        const s = fs.statfs(m.mountPoint);
        if (!s || s.total === 0) continue;
        const label = `{mount=${JSON.stringify(m.mountPoint)}}`;
        const used = s.total - s.free;
        emit(`disk.total_bytes${label}`, s.total);
        emit(`disk.used_bytes${label}`, used);
        emit(`disk.avail_bytes${label}`, s.avail);
        // as df: used / (used + available to unprivileged users)
        emit(`disk.used_pct${label}`, used + s.avail > 0 ? (100 * used) / (used + s.avail) : 0);
        if (s.files > 0) emit(`disk.inodes_used_pct${label}`, (100 * (s.files - s.filesFree)) / s.files);
      }
    },
  };
}
