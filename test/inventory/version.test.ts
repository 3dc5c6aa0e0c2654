/**
 * Version ordering: known pairs from dpkg's and rpm's own rules, then many generated pairs
 * cross-checked against the real `dpkg --compare-versions` and rpm's own rpm.vercmp (both on the
 * machine: dpkg always on Debian, rpm in .ci/run's APT_PACKAGES).
 */
import { expect, test } from "bun:test";
import { compareDebian, compareRpm, packageFormat, rpmvercmp, satisfies } from "../../src/inventory/version.ts";
import { fuzzSeed, rng } from "../support/rng.ts";
import { requireComponent } from "../support/ci.ts";

const DEBIAN: Array<[string, string, number]> = [
  ["1.0", "1.0", 0],
  ["1.0", "1.0-0", 0], // a missing revision is "0"
  ["1.0-1", "1.0-2", -1],
  ["1.22.1-9", "1.22", 1],
  ["1.0~rc1", "1.0", -1], // ~ sorts before the end
  ["1.0~~", "1.0~", -1],
  ["1.0~", "1.0", -1],
  ["1.0~rc1-1", "1.0-1", -1],
  ["1.0", "1.0a", -1], // the end before letters
  ["1.0a", "1.0+", -1], // letters before non-letters
  ["1.0+b1", "1.0.1", -1], // '+' < '.'
  ["1.0.1", "1.0+b1", 1],
  ["1:1.0", "2.0", 1], // epoch first
  ["0:1.0", "1.0", 0],
  ["2:0.1", "1:9.9", 1],
  ["1.10", "1.9", 1], // digits as numbers
  ["1.010", "1.10", 0], // leading zeros
  ["3.0.11-1~deb12u2", "3.0.11-1", -1],
  ["3.0.11-1~deb12u2", "3.0.9-1", 1],
  ["7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1],
  ["1.2.3-1ubuntu1", "1.2.3-1", 1],
  ["a", "b", -1],
  ["1.0-1.1", "1.0-1-1", -1], // the revision follows the last hyphen: upstream "1.0" < "1.0-1"
];

const RPM: Array<[string, string, number]> = [
  ["1.0", "1.0", 0],
  ["1.0", "2.0", -1],
  ["2.0.1", "2.0", 1],
  ["2.0.1a", "2.0.1", 1],
  ["5.5p1", "5.5p2", -1],
  ["5.5p10", "5.5p1", 1],
  ["10xyz", "10.1xyz", -1],
  ["xyz10", "xyz10.1", -1],
  ["1.0", "1.0a", -1],
  ["1.0a", "1.0.1", -1], // a letter segment is older than a digit segment
  ["1.0", "1_0", 0], // separators only separate
  ["1..0", "1.0", 0],
  ["1.0~rc1", "1.0", -1],
  ["1.0~rc1", "1.0~rc2", -1],
  ["1.0^", "1.0", 1], // ^ after the end
  ["1.0^git1", "1.0.1", -1], // but before a further segment
  ["1.0^git1", "1.0^git2", -1],
  ["3.0.7-27.el9", "3.0.11", -1], // a release on one side only is not compared
  ["3.0.7-27.el9", "3.0.7", 0],
  ["3.0.7-27.el9", "3.0.7-28.el9", -1],
  ["1:1.0-1", "2.0-1", 1],
  ["1.0010", "1.9", 1],
  ["1.05", "1.5", 0],
];

test("Debian versions order as dpkg says (known pairs)", () => {
  for (const [a, b, want] of DEBIAN) {
    expect({ a, b, c: compareDebian(a, b) }).toEqual({ a, b, c: want });
    expect({ a, b, c: compareDebian(b, a) }).toEqual({ a, b, c: -want || 0 });
  }
});

test("RPM versions order as rpmvercmp says (known pairs)", () => {
  for (const [a, b, want] of RPM) {
    expect({ a, b, c: compareRpm(a, b) }).toEqual({ a, b, c: want });
    expect({ a, b, c: compareRpm(b, a) }).toEqual({ a, b, c: -want || 0 });
  }
});

test("operators and the host's package format", () => {
  expect(satisfies("dpkg", "1.22.1-9", ">=", "1.22")).toBe(true);
  expect(satisfies("dpkg", "1.22~rc1-1", ">=", "1.22")).toBe(false);
  expect(satisfies("dpkg", "3.0.11-1~deb12u2", "<", "3.0.11")).toBe(false); // 3.0.11-1~deb12u2 > 3.0.11 (revision "1~…" > "")
  expect(satisfies("dpkg", "3.0.9-1", "<", "3.0.11")).toBe(true);
  expect(satisfies("rpm", "3.0.7-27.el9", "<", "3.0.11")).toBe(true);
  expect(satisfies("rpm", "3.0.7-27.el9", "=", "3.0.7")).toBe(true);
  expect(satisfies("rpm", "3.0.7-27.el9", "!=", "3.0.7-28.el9")).toBe(true);
  expect(satisfies("dpkg", "1.0", "<=", "1.0")).toBe(true);
  expect(satisfies("dpkg", "1.0", ">", "1.0")).toBe(false);
  expect(packageFormat("debian", null)).toBe("dpkg");
  expect(packageFormat("ubuntu", "apt")).toBe("dpkg");
  expect(packageFormat("rocky", null)).toBe("rpm");
  expect(packageFormat("", "dnf")).toBe("rpm");
  expect(packageFormat("", null)).toBe("dpkg");
  // the two orders differ: this pair decides which one a host gets
  expect(compareDebian("1.0a", "1.0.1")).toBe(-1);
  expect(compareDebian("1.0+b1", "1.0.1")).toBe(-1);
  expect(compareRpm("1.0_1", "1.0.1")).toBe(0);
  expect(compareDebian("1.0_1", "1.0.1")).toBe(1); // '_' (95+256) > '.' (46+256)
});

/** Random versions built from the characters that matter: digits, letters, . + ~ - : and ^ for rpm. */
function versions(seed: number, n: number, rpm: boolean): string[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const upstreamChars = rpm ? ["0", "1", "2", "9", "10", "a", "b", "z", "rc", ".", ".", "~", "^", "_", "+"] : ["0", "1", "2", "9", "10", "a", "b", "z", "rc", ".", ".", "~", "+"];
  const part = (len: number) => {
    let s = pick(["0", "1", "2", "3", "10", "01"]);
    for (let i = 0; i < len; i++) s += pick(upstreamChars);
    return s;
  };
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let v = part(Math.floor(r() * 6));
    if (r() < 0.5) v += `-${part(Math.floor(r() * 4))}`;
    if (r() < 0.2) v = `${pick(["0", "1", "2"])}:${v}`;
    out.push(v);
  }
  return out;
}

/** Pairs with many near-equal neighbours, where comparison bugs show. */
function pairs(vs: string[], seed: number): Array<[string, string]> {
  const r = rng(seed + 1);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < vs.length; i++) {
    const b = vs[Math.floor(r() * vs.length)]!;
    out.push([vs[i]!, r() < 0.3 ? vs[i]!.replace(/\d+$/, (d) => String(Number(d) + 1)) : b]);
  }
  return out;
}

test("Debian: many generated pairs agree with the real dpkg --compare-versions", () => {
  if (!requireComponent(Bun.which("dpkg") !== null, "dpkg (dpkg --compare-versions)")) return;
  const seed = fuzzSeed();
  const ps = pairs(versions(seed, 400, false), seed);
  // one shell runs every comparison: "lt" and "eq" give the three outcomes
  const script = ps.map(([a, b]) => `if dpkg --compare-versions '${a}' lt '${b}'; then echo -1; elif dpkg --compare-versions '${a}' eq '${b}'; then echo 0; else echo 1; fi`).join("\n");
  const p = Bun.spawnSync(["sh", "-c", script], { stdout: "pipe", stderr: "pipe", timeout: 120_000 });
  const got = p.stdout.toString().trim().split("\n").map(Number);
  expect({ seed, lines: got.length }).toEqual({ seed, lines: ps.length });
  const wrong = ps.map(([a, b], i) => ({ a, b, dpkg: got[i], ours: compareDebian(a, b) })).filter((x) => x.dpkg !== x.ours);
  expect({ seed, wrong }).toEqual({ seed, wrong: [] });
  expect(new Set(got).size).toBe(3); // all three outcomes occurred
}, 150_000);

test("RPM: many generated pairs agree with rpm's own rpm.vercmp and rpm.ver", () => {
  if (!requireComponent(Bun.which("rpm") !== null, "rpm (rpm --eval with rpm.vercmp)")) return;
  const seed = fuzzSeed();
  const all = pairs(versions(seed + 7, 1000, true), seed + 7);
  // rpm.vercmp parses epoch:version-release too; without ':' and '-' it is rpmvercmp itself
  const plain = (v: string) => v.replace(/^\d+:/, "").replace(/-/g, ".");
  const ps = all.map(([a, b]): [string, string] => [plain(a), plain(b)]);
  // rpm.vercmp: the segment comparison (rpmvercmp); rpm.ver: epoch, version, release
  // compared in turn (pairs where one side has no release are left out of that one: rpm.ver
  // then compares the release with "", where a version constraint, as rpm's dependency
  // matching, ignores it; the known pairs above pin that)
  const evr = all.filter(([a, b]) => a.includes("-") === b.includes("-"));
  const lua = [
    ...ps.map(([a, b]) => `print(rpm.vercmp("${a}", "${b}") .. "\\n")`),
    ...evr.map(([a, b]) => `do local x, y = rpm.ver("${a}"), rpm.ver("${b}"); print((x < y and -1 or (x == y and 0 or 1)) .. "\\n") end`),
  ].join(" ");
  const p = Bun.spawnSync(["rpm", "--eval", `%{lua: ${lua}}`], { stdout: "pipe", stderr: "pipe", timeout: 60_000 });
  const got = p.stdout.toString().trim().split("\n").map(Number);
  expect({ seed, lines: got.length, err: p.stderr.toString().slice(0, 300) }).toEqual({ seed, lines: ps.length + evr.length, err: "" });
  const wrong = ps.map(([a, b], i) => ({ a, b, rpm: got[i], ours: rpmvercmp(a, b) })).filter((x) => x.rpm !== x.ours);
  expect({ seed, wrong }).toEqual({ seed, wrong: [] });
  const wrongEvr = evr.map(([a, b], i) => ({ a, b, rpm: got[ps.length + i], ours: compareRpm(a, b) })).filter((x) => x.rpm !== x.ours);
  expect({ seed, wrongEvr }).toEqual({ seed, wrongEvr: [] });
  expect(new Set(got).size).toBe(3);
  expect(evr.length).toBeGreaterThan(300);
}, 60_000);
