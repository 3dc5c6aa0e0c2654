/** Which control family applies to a root, from its /etc/os-release. */
import type { Platform } from "./controls.ts";
import type { RootFs } from "./root-fs.ts";

export function detectPlatform(fs: RootFs): { platform: Platform | null; id: string; version: string } {
  const text = fs.read("/etc/os-release") ?? fs.read("/usr/lib/os-release") ?? "";
  const get = (k: string) => text.match(new RegExp(`^${k}=("?)(.*)\\1$`, "m"))?.[2] ?? "";
  const id = get("ID");
  const like = get("ID_LIKE");
  const version = get("VERSION_ID");
  const major = version.split(".")[0];
  let platform: Platform | null = null;
  if (id === "ubuntu") platform = "ubuntu22.04";
  else if (id === "debian" || /\bdebian\b/.test(like)) platform = "debian12";
  else if (/\b(rhel|fedora|centos)\b/.test(`${id} ${like}`) && (major === "9" || major === "")) platform = "rhel9";
  else if (/\b(rhel|fedora|centos)\b/.test(`${id} ${like}`)) platform = "rhel9";
  return { platform, id, version };
}
