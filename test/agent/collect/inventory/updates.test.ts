/**
 * Pending updates (agent/collect/inventory/updates.ts): the parsers on recorded apt, dnf and yum
 * output (written for these tests in the tools' formats), malformed input, the reader's decisions
 * through an injected runner, and one real run of apt-get on this machine.
 */
import { describe, expect, test } from "bun:test";
import {
  hasProgram, killRunningChecks, MAX_NAMES, parseAptSimulation, parseDnfCheckUpdate, parseDnfUpdateinfo, readPendingUpdates, runAsync, UPDATES_TIMEOUT_MS,
  type RunResult,
} from "../../../../agent/collect/inventory/updates.ts";
import { requireComponent } from "../../../support/ci.ts";
import { packMap } from "../../../../src/ingest/frame/encode.ts";
import { readFileSync } from "node:fs";

const APT_DEBIAN = `Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following NEW packages will be installed:
  linux-image-6.1.0-28-amd64
The following packages will be upgraded:
  base-files libssl3 linux-image-amd64 openssl tzdata
5 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.
Inst base-files [12.4+deb12u7] (12.4+deb12u8 Debian:12.8/stable [amd64])
Inst libssl3 [3.0.14-1~deb12u1] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Inst linux-image-6.1.0-28-amd64 (6.1.119-1 Debian-Security:12/stable-security [amd64])
Inst linux-image-amd64 [6.1.115-1] (6.1.119-1 Debian:12.8/stable, Debian-Security:12/stable-security [amd64])
Inst openssl [3.0.14-1~deb12u1] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2024b-0+deb12u1 Debian:12.8/stable-updates [all])
Inst libpam-modules-bin [1.5.2-6+deb12u1] (1.5.2-6+deb12u2 Debian-Security:12/stable-security [amd64]) [libpam-modules:amd64 on libpam-modules-bin:amd64] [libpam-modules:amd64 ]
Conf base-files (12.4+deb12u8 Debian:12.8/stable [amd64])
Conf libssl3 (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Conf linux-image-6.1.0-28-amd64 (6.1.119-1 Debian-Security:12/stable-security [amd64])
Conf linux-image-amd64 (6.1.119-1 Debian:12.8/stable, Debian-Security:12/stable-security [amd64])
Conf openssl (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Conf tzdata (2024b-0+deb12u1 Debian:12.8/stable-updates [all])
`;

const APT_UBUNTU = `Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
3 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.
Inst libc6 [2.35-0ubuntu3.7] (2.35-0ubuntu3.8 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst snapd [2.61.3+22.04] (2.63+22.04 Ubuntu:22.04/jammy-updates [amd64])
Inst vim-common [2:8.2.3995-1ubuntu2.15] (2:8.2.3995-1ubuntu2.16 Ubuntu:22.04/jammy-updates [all]) []
Conf libc6 (2.35-0ubuntu3.8 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
`;

const APT_NONE = `Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.
`;

const DNF_CHECK = `
Last metadata expiration check: 1:02:11 ago on Sat 05 Dec 2026 21:58:04 UTC.

bind-libs.x86_64                     32:9.16.23-18.el9_4.6            appstream
curl.x86_64                          7.76.1-29.el9_4.1                baseos
kernel.x86_64                        5.14.0-427.42.1.el9_4            baseos
libcurl.x86_64                       7.76.1-29.el9_4.1                baseos
tzdata.noarch                        2024b-2.el9                      baseos
a-very-long-package-name-that-wraps.x86_64
                                     1.2.3-4.el9                      appstream
Obsoleting Packages
grub2-tools.x86_64                   1:2.06-80.el9_4                  baseos
    grub2-tools.x86_64               1:2.06-77.el9                    @baseos
`;

const DNF_SECURITY = `Last metadata expiration check: 1:02:14 ago on Sat 05 Dec 2026 21:58:04 UTC.
RHSA-2024:8830 Moderate/Sec.  bind-libs-32:9.16.23-18.el9_4.6.x86_64
RHSA-2024:8856 Important/Sec. kernel-5.14.0-427.42.1.el9_4.x86_64
RHSA-2024:8856 Important/Sec. kernel-core-5.14.0-427.42.1.el9_4.x86_64
ALSA-2024:9011 Low/Sec.       curl-7.76.1-29.el9_4.1.x86_64
RHBA-2024:9100 bugfix         tzdata-2024b-2.el9.noarch
`;

const YUM_SECURITY = `Loaded plugins: fastestmirror
RHSA-2024:1234 Important/Sec. openssl-libs-1:1.0.2k-26.el7_9.x86_64
RHSA-2024:1234 Important/Sec. openssl-1:1.0.2k-26.el7_9.x86_64
updateinfo list done
`;

const GARBAGE = "\u0000\u0001 ### not a package manager ###\nInst\n(((\n";

describe("apt-get -s dist-upgrade", () => {
  test("Debian: upgrades by suite, security from the -security origin, new packages not counted", () => {
    const p = parseAptSimulation(APT_DEBIAN)!;
    expect(p.security.sort()).toEqual(["libpam-modules-bin", "libssl3", "linux-image-amd64", "openssl"]);
    expect(p.other.sort()).toEqual(["base-files", "tzdata"]);
  });
  test("Ubuntu: a package in -updates and -security is a security update", () => {
    expect(parseAptSimulation(APT_UBUNTU)).toEqual({ security: ["libc6"], other: ["snapd", "vim-common"] });
  });
  test("nothing pending is zero, not unknown", () => expect(parseAptSimulation(APT_NONE)).toEqual({ security: [], other: [] }));
  test("malformed or truncated output is not apt output, or counts only well-formed lines", () => {
    expect(parseAptSimulation(GARBAGE)).toBeUndefined();
    expect(parseAptSimulation("")).toBeUndefined();
    const cut = APT_DEBIAN.slice(0, APT_DEBIAN.indexOf("Inst openssl") + 20); // cut mid-line
    expect(parseAptSimulation(cut)!.security.sort()).toEqual(["libssl3", "linux-image-amd64"]);
    expect(parseAptSimulation("Reading package lists...\nInst broken [1.0 (2.0 Debian:12/stable-security\nInst x [] ()\n")).toEqual({ security: [], other: [] });
  });
});

describe("dnf / yum", () => {
  test("check-update: names without arch, wrapped rows joined, obsoletes skipped", () => {
    expect([...parseDnfCheckUpdate(DNF_CHECK)!].sort()).toEqual(["a-very-long-package-name-that-wraps", "bind-libs", "curl", "kernel", "libcurl", "tzdata"]);
    expect(parseDnfCheckUpdate("")!.size).toBe(0); // exit 0, nothing pending
    expect(parseDnfCheckUpdate(GARBAGE)).toBeUndefined();
  });
  test("updateinfo: only /Sec. advisories, names from NEVRA (epoch and dashes in names)", () => {
    expect([...parseDnfUpdateinfo(DNF_SECURITY)!].sort()).toEqual(["bind-libs", "curl", "kernel", "kernel-core"]);
    expect([...parseDnfUpdateinfo(YUM_SECURITY)!].sort()).toEqual(["openssl", "openssl-libs"]);
    expect(parseDnfUpdateinfo("")!.size).toBe(0);
    expect(parseDnfUpdateinfo(GARBAGE)).toBeUndefined();
  });
});

describe("readPendingUpdates decisions (recorded outputs through the injected runner)", () => {
  const runner = (table: Record<string, RunResult>) => {
    const calls: string[][] = [];
    return { calls, run: async (argv: string[]) => (calls.push(argv), table[argv[0]! + " " + argv.slice(-1)[0]] ?? { code: null, stdout: "" }) };
  };
  test("apt: counts and the security package names", async () => {
    const r = runner({ "apt-get dist-upgrade": { code: 0, stdout: APT_DEBIAN } });
    const u = await readPendingUpdates({ run: r.run, has: (p) => p === "apt-get" });
    expect(u).toEqual({ status: "ok", source: "apt", security: 4, other: 2, total: 6, securityPackages: ["libpam-modules-bin", "libssl3", "linux-image-amd64", "openssl"] });
    expect(r.calls[0]).toContain("-s"); // a simulation, never a real upgrade
    expect(r.calls[0]).toContain("Debug::NoLocking=1");
  });
  test("dnf: exit 100 means updates; security is the intersection with the advisories", async () => {
    const r = runner({ "dnf check-update": { code: 100, stdout: DNF_CHECK }, "dnf --available": { code: 0, stdout: DNF_SECURITY } });
    const u = await readPendingUpdates({ run: r.run, has: (p) => p === "dnf" });
    // kernel-core has an advisory but no pending row in check-update: not counted
    expect(u).toEqual({ status: "ok", source: "dnf", security: 3, other: 3, total: 6, securityPackages: ["bind-libs", "curl", "kernel"] });
    expect(r.calls.every((c) => c.includes("-C"))).toBe(true); // cache only, no network
  });
  test("yum when dnf is missing", async () => {
    const r = runner({ "yum check-update": { code: 100, stdout: "openssl.x86_64   1:1.0.2k-26.el7_9   updates\nopenssl-libs.x86_64   1:1.0.2k-26.el7_9   updates\nbash.x86_64  4.2.46-35.el7_9  updates\n" }, "yum security": { code: 0, stdout: YUM_SECURITY } });
    expect(await readPendingUpdates({ run: r.run, has: (p) => p === "yum" })).toMatchObject({ status: "ok", source: "yum", security: 2, other: 1 });
  });
  test("unknown, with the reason: no package manager, timeout, failure, garbage", async () => {
    expect(await readPendingUpdates({ run: runner({}).run, has: () => false })).toEqual({ status: "unknown", reason: "no supported package manager (apt-get, dnf, yum)" });
    expect(await readPendingUpdates({ run: runner({}).run, has: (p) => p === "apt-get", timeoutMs: 5000 })).toEqual({ status: "unknown", reason: "apt-get did not finish within 5 s" });
    expect(await readPendingUpdates({ run: runner({ "apt-get dist-upgrade": { code: 100, stdout: "" } }).run, has: (p) => p === "apt-get" })).toMatchObject({ status: "unknown", reason: "apt-get exited with 100" });
    expect(await readPendingUpdates({ run: runner({ "apt-get dist-upgrade": { code: 0, stdout: GARBAGE } }).run, has: (p) => p === "apt-get" })).toMatchObject({ status: "unknown", reason: "apt-get output not understood" });
    expect(await readPendingUpdates({ run: runner({ "dnf check-update": { code: 1, stdout: "" } }).run, has: (p) => p === "dnf" })).toMatchObject({ status: "unknown" });
  });
  test("security names are capped, counts are not", async () => {
    const lines = Array.from({ length: 80 }, (_, i) => `Inst p${String(i).padStart(2, "0")} [1] (2 Debian-Security:12/stable-security [amd64])`).join("\n");
    const u = await readPendingUpdates({ run: async () => ({ code: 0, stdout: `Reading package lists...\n${lines}\n` }), has: (p) => p === "apt-get" });
    expect(u).toMatchObject({ status: "ok", security: 80, total: 80 });
    expect(u.status === "ok" && u.securityPackages.length).toBe(MAX_NAMES);
  });
});

describe("the real reader on this machine", () => {
  test("runAsync kills a command at its timeout", async () => {
    const t0 = performance.now();
    expect(await runAsync(["sleep", "10"], 300)).toEqual({ code: null, stdout: "" });
    expect(performance.now() - t0).toBeLessThan(3000);
  });
  test("killRunningChecks stops a check in progress (Collector's shutdown)", async () => {
    const t0 = performance.now();
    const r = runAsync(["sleep", "10"], 60_000);
    await Bun.sleep(200);
    killRunningChecks();
    expect(await r).toMatchObject({ code: 137 });
    expect(performance.now() - t0).toBeLessThan(3000);
  });
  test("apt-get here gives a well-formed result within the timeout", async () => {
    if (!requireComponent(hasProgram("apt-get"), "apt-get")) return;
    const t0 = performance.now();
    const u = await readPendingUpdates({ run: runAsync, has: hasProgram });
    const ms = performance.now() - t0;
    console.log(`real apt-get check: ${Math.round(ms)} ms, ${JSON.stringify({ ...u, securityPackages: u.status === "ok" ? u.securityPackages.length : undefined })}`);
    expect(ms).toBeLessThan(UPDATES_TIMEOUT_MS + 2000);
    expect(u.status).toBe("ok");
    if (u.status !== "ok") return;
    expect(u.source).toBe("apt");
    expect(Number.isInteger(u.security) && u.security >= 0 && Number.isInteger(u.other) && u.other >= 0).toBe(true);
    expect(u.total).toBe(u.security + u.other);
    // every upgrade line apt printed is counted (an "Inst x [old]" line is an upgrade)
    const sim = await runAsync(["apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"], UPDATES_TIMEOUT_MS);
    expect(u.total).toBe(new Set(sim.stdout.split("\n").filter((l) => /^Inst \S+ \[/.test(l)).map((l) => l.split(" ")[1])).size);
    expect(u.securityPackages.length).toBe(Math.min(u.security, MAX_NAMES));
  }, UPDATES_TIMEOUT_MS + 10_000);
});

test("the wire example in docs/protocol.md 4.3 is what the agent packs", () => {
  const doc = readFileSync(new URL("../../../../docs/protocol.md", import.meta.url), "utf8");
  const hex = /is the (\d+) bytes `([0-9a-f ]+)\s*\n?([0-9a-f \n]*)`/.exec(doc)!;
  const bytes = (hex[2]! + " " + hex[3]!).trim().split(/\s+/).map((b) => parseInt(b, 16));
  const packed = packMap({ status: "ok", source: "apt", security: 1, other: 0, total: 1, securityPackages: ["sudo"] } as never);
  expect(bytes.length).toBe(Number(hex[1]));
  expect([...packed]).toEqual(bytes);
});
