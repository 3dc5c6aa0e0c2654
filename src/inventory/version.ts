/**
 * Package version comparison, as the host's package manager orders versions.
 *
 * Debian (dpkg): `[epoch:]upstream[-revision]`. Epochs compare as numbers; upstream and revision
 * compare with dpkg's verrevcmp: alternate runs of non-digits and digits; non-digit runs compare
 * character by character where `~` sorts before everything (even the end of the string), then
 * the end of the string, then letters, then every other character; digit runs compare as
 * numbers. So `1.0~rc1 < 1.0 < 1.0a < 1.0+b1 < 1.0.1`.
 *
 * RPM: rpmvercmp on epoch, version and release. Separators (anything not alphanumeric, `~` or
 * `^`) only split segments; a digit segment is newer than a letter segment; digit segments
 * compare as numbers, letter segments as strings; `~` sorts before everything, `^` after the
 * end but before any further segment. A release given on only one side is not compared
 * (`openssl < 3.0.11` holds for 3.0.7-27.el9), as rpm compares a version without release.
 *
 * Pure functions: strings in, -1/0/1 out.
 */

export type PackageFormat = "dpkg" | "rpm";

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}
function isAlpha(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
}

/** dpkg's order(): the weight of one character of a non-digit run ("" is the end). */
function order(c: string): number {
  if (c === "" || isDigit(c)) return 0;
  if (isAlpha(c)) return c.charCodeAt(0);
  if (c === "~") return -1;
  return c.charCodeAt(0) + 256;
}

/** dpkg's verrevcmp on one part (upstream or revision). */
export function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a[i]!)) || (j < b.length && !isDigit(b[j]!))) {
      const ac = order(a[i] ?? "");
      const bc = order(b[j] ?? "");
      if (ac !== bc) return Math.sign(ac - bc);
      i++;
      j++;
    }
    while (a[i] === "0") i++;
    while (b[j] === "0") j++;
    while (i < a.length && j < b.length && isDigit(a[i]!) && isDigit(b[j]!)) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a[i]!)) return 1;
    if (j < b.length && isDigit(b[j]!)) return -1;
    if (firstDiff) return Math.sign(firstDiff);
  }
  return 0;
}

export interface Evr {
  epoch: string;
  version: string;
  release: string;
}

/** Splits `[epoch:]version[-release]`: the epoch before the first colon, the release after the last hyphen. */
export function parseEvr(v: string): Evr {
  const s = v.trim();
  const colon = s.indexOf(":");
  const epoch = colon > 0 && /^\d+$/.test(s.slice(0, colon)) ? s.slice(0, colon) : "0";
  const rest = colon > 0 && /^\d+$/.test(s.slice(0, colon)) ? s.slice(colon + 1) : s;
  const dash = rest.lastIndexOf("-");
  return dash >= 0 ? { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) } : { epoch, version: rest, release: "" };
}

function compareEpoch(a: string, b: string): number {
  const x = BigInt(a || "0");
  const y = BigInt(b || "0");
  return x < y ? -1 : x > y ? 1 : 0;
}

/** dpkg --compare-versions: -1, 0 or 1. A missing revision compares as "" (equal to "0"). */
export function compareDebian(a: string, b: string): number {
  const x = parseEvr(a);
  const y = parseEvr(b);
  return compareEpoch(x.epoch, y.epoch) || verrevcmp(x.version, y.version) || verrevcmp(x.release, y.release);
}

function isAlnum(c: string): boolean {
  return isDigit(c) || isAlpha(c);
}

/** rpm's rpmvercmp on one part (version or release). */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while (i < a.length && !isAlnum(a[i]!) && a[i] !== "~" && a[i] !== "^") i++;
    while (j < b.length && !isAlnum(b[j]!) && b[j] !== "~" && b[j] !== "^") j++;
    if (a[i] === "~" || b[j] === "~") {
      if (a[i] !== "~") return 1;
      if (b[j] !== "~") return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === "^" || b[j] === "^") {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== "^") return 1;
      if (b[j] !== "^") return -1;
      i++;
      j++;
      continue;
    }
    if (!(i < a.length && j < b.length)) break;
    const si = i;
    const sj = j;
    const num = isDigit(a[i]!);
    const inRun = num ? isDigit : isAlpha;
    while (i < a.length && inRun(a[i]!)) i++;
    while (j < b.length && inRun(b[j]!)) j++;
    if (sj === j) return num ? 1 : -1; // segments of different kinds: the number is newer
    let x = a.slice(si, i);
    let y = b.slice(sj, j);
    if (num) {
      x = x.replace(/^0+/, "");
      y = y.replace(/^0+/, "");
      if (x.length !== y.length) return x.length > y.length ? 1 : -1;
    }
    if (x !== y) return x < y ? -1 : 1;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** rpm's EVR comparison; a release present on one side only is not compared. */
export function compareRpm(a: string, b: string): number {
  const x = parseEvr(a);
  const y = parseEvr(b);
  const e = compareEpoch(x.epoch, y.epoch);
  if (e) return e;
  const v = rpmvercmp(x.version, y.version);
  if (v || !x.release || !y.release) return v;
  return rpmvercmp(x.release, y.release);
}

export function compareVersions(format: PackageFormat, a: string, b: string): number {
  return format === "rpm" ? compareRpm(a, b) : compareDebian(a, b);
}

const RPM_OS = new Set(["rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "sles", "sled", "opensuse", "opensuse-leap", "opensuse-tumbleweed", "mariner", "azurelinux", "photon", "openEuler", "anolis", "circle", "eurolinux", "scientific"]);

/**
 * Which ordering a host's versions follow: its update source when it reported one (apt, or
 * dnf/yum), else its os-release ID. The agent reads dpkg's status file when there is one and rpm
 * otherwise; an unknown distribution is taken as dpkg.
 */
export function packageFormat(osId: string | null | undefined, updatesSource?: string | null): PackageFormat {
  if (updatesSource === "dnf" || updatesSource === "yum") return "rpm";
  if (updatesSource === "apt") return "dpkg";
  return RPM_OS.has(String(osId ?? "").toLowerCase()) || RPM_OS.has(String(osId ?? "")) ? "rpm" : "dpkg";
}

export const OPERATORS = ["=", "!=", "<", "<=", ">", ">="] as const;
export type Operator = (typeof OPERATORS)[number];

export function satisfies(format: PackageFormat, installed: string, op: Operator, wanted: string): boolean {
  const c = compareVersions(format, installed, wanted);
  switch (op) {
    case "=": return c === 0;
    case "!=": return c !== 0;
    case "<": return c < 0;
    case "<=": return c <= 0;
    case ">": return c > 0;
    case ">=": return c >= 0;
  }
}
