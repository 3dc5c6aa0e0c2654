/** The quick invariants of the comparison benches: AIDE's findings ⊆ ours; OpenSCAP agrees. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireComponent } from "../support/ci.ts";
import { run as aideRun } from "../../bench/fim-aide.bench.ts";
import { compare, oscap, prepare, tailoring } from "../../bench/cis-openscap.bench.ts";
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

  test("our CIS verdicts agree with OpenSCAP on every comparable rule", () => {
    const ok = has("oscap") && Bun.file("/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml").size > 0;
    if (!requireComponent(ok, "oscap + SSG content (Debian packages openscap-scanner, ssg-debian)")) return;
    const work = mkdtempSync(join(tmpdir(), "servermind-oscap-test-"));
    writeFileSync(join(work, "tailoring.xml"), tailoring());
    try {
      for (const kind of ["good", "bad"] as const) {
        const root = prepare(kind);
        try {
          const ours = Object.fromEntries(scanRoot(root, { runtime: false, allPlatforms: true }).results.map((r) => [r.id, r.status]));
          const c = compare(ours, oscap(root, work));
          expect(c.compared).toBeGreaterThanOrEqual(10);
          expect({ kind, disagreements: c.disagreements }).toEqual({ kind, disagreements: [] });
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);
});
