/** The quick invariants of the comparison benches: AIDE's findings ⊆ ours; OpenSCAP agrees. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireComponent } from "../support/ci.ts";
import { run as aideRun } from "../../bench/fim-aide.bench.ts";
import { compare, MAPPING, oscap, perRuleLines, prepare, tailoring, TREES } from "../../bench/cis-openscap.bench.ts";
import { scanRoot } from "../../agent/monitor/cis/scan.ts";

const has = (cmd: string) => Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).exitCode === 0;

describe("comparison with reference tools", () => {
  test("every change AIDE reports, FIM reports too (real-time and rescan-only)", async () => {
    if (!requireComponent(has("aide"), "aide (Debian package aide)")) return;
    for (const mode of ["realtime", "rescan"] as const) {
      const r = await aideRun(mode, 300);
      expect(r.aideChanges).toBeGreaterThanOrEqual(15);
      expect({ mode, missed: r.missed }).toEqual({ mode, missed: [] });
    }
  }, 60_000);

  test("our CIS verdicts agree with OpenSCAP rule by rule (files, accounts, modules, SSH, login.defs); every disagreement is explained", () => {
    const ok = has("oscap") && Bun.file("/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml").size > 0;
    if (!requireComponent(ok, "oscap + SSG content (Debian packages openscap-scanner, ssg-debian)")) return;
    const work = mkdtempSync(join(tmpdir(), "servermind-oscap-test-"));
    writeFileSync(join(work, "tailoring.xml"), tailoring());
    const mapped = Object.keys(MAPPING);
    expect(mapped.filter((id) => id.startsWith("smx.ssh.")).length).toBeGreaterThanOrEqual(12);
    expect(mapped.filter((id) => id.startsWith("smx.login.")).length).toBeGreaterThanOrEqual(4);
    try {
      for (const kind of TREES) {
        const root = prepare(kind);
        try {
          const ours = Object.fromEntries(scanRoot(root, { runtime: false, allPlatforms: true }).results.map((r) => [r.id, r.status]));
          const c = compare(ours, oscap(root, work), root); // oscap throws when a probe (dpkginfo) fails
          console.log(perRuleLines(kind, c).join("\n"));
          // every mapped rule is judged by both sides: none is left notapplicable by a package gate
          expect({ kind, notCompared: c.notCompared }).toEqual({ kind, notCompared: [] });
          expect({ kind, unexplained: c.unexplained }).toEqual({ kind, unexplained: [] });
          // with every SSH setting written out in sshd_config itself, both read the file the same way
          if (kind === "explicit-good") expect(c.disagreements.map((r) => r.control)).toEqual([]);
          if (kind === "explicit-bad") expect(c.disagreements.map((r) => r.control)).toEqual(["smx.ssh.max-startups"]); // SSG's hard-coded full <= 100
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);
});
