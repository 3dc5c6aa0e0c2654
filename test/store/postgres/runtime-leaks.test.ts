/**
 * The preload's guard against embedded clusters left in /var/lib/servermind (test/support/runtime-leaks.ts),
 * on a runtime base of its own: new stopped clusters are reported, ones that were there before,
 * ones with a live postmaster (a server's) and other names are not.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IN_CI } from "../../support/ci.ts";
import { clusterRunning, leakedClusters, reportLeakedClusters, runtimeClusters } from "../../support/runtime-leaks.ts";

const base = mkdtempSync(join(tmpdir(), "servermind-leaks-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** `<base>/<name>/pg`, with a postmaster.pid naming `pid` when given. */
function cluster(name: string, pid?: number): void {
  mkdirSync(join(base, name, "pg"), { recursive: true });
  if (pid !== undefined) writeFileSync(join(base, name, "pg", "postmaster.pid"), `${pid}\n${join(base, name, "pg")}\n1700000000\n5432\n`);
}

test("new stopped clusters are reported; earlier ones, running ones and other names are not", () => {
  cluster("0123456789ab");
  const before = runtimeClusters(base);
  expect([...before]).toEqual(["0123456789ab"]);
  expect(runtimeClusters(join(base, "missing")).size).toBe(0);

  cluster("aaaaaaaaaaaa"); // initialised, never started or stopped cleanly
  const dead = Bun.spawnSync(["true"]).pid; // exited: its pid names no process now
  cluster("bbbbbbbbbbbb", dead); // a stale postmaster.pid
  cluster("cccccccccccc", process.pid); // a live postmaster: a server's cluster, not a leak
  mkdirSync(join(base, "pg-native-16.4.0"));
  mkdirSync(join(base, "not-a-hash"));

  expect(clusterRunning("cccccccccccc", base)).toBe(true);
  expect(clusterRunning("bbbbbbbbbbbb", base)).toBe(false);
  expect(leakedClusters(before, base)).toEqual(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]);
  expect(leakedClusters(runtimeClusters(base), base)).toEqual([]);

  const warned: string[] = [];
  const warn = console.warn;
  console.warn = (...a: unknown[]) => void warned.push(a.join(" "));
  try {
    if (IN_CI) expect(() => reportLeakedClusters(before, base)).toThrow(/2 embedded PostgreSQL cluster\(s\) appeared/);
    else reportLeakedClusters(before, base);
    reportLeakedClusters(runtimeClusters(base), base); // nothing new: silent
  } finally {
    console.warn = warn;
  }
  if (!IN_CI) {
    expect(warned.length).toBe(1);
    expect(warned[0]).toContain(join(base, "aaaaaaaaaaaa"));
    expect(warned[0]).toContain(join(base, "bbbbbbbbbbbb"));
    expect(warned[0]).not.toContain("cccccccccccc");
  }
});
