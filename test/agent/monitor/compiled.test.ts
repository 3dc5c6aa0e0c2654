/** The agent is cross-compiled: FIM (bun:sqlite, fs.watch) and the embedded control catalog must work in a compiled binary. */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const work = mkdtempSync(join(tmpdir(), "servermind-compiled-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("security monitor runs inside a compiled binary", () => {
  const bin = join(work, "secmon");
  const b = Bun.spawnSync([process.execPath, "build", "--compile", join(import.meta.dir, "fixtures/compiled-entry.ts"), "--outfile", bin], { stdout: "pipe", stderr: "pipe" });
  expect(b.exitCode, b.stderr.toString()).toBe(0);
  mkdirSync(join(work, "root/etc"), { recursive: true });
  writeFileSync(join(work, "root/etc/os-release"), "ID=debian\nVERSION_ID=12\n");
  const r = Bun.spawnSync([bin, join(work, "root"), join(work, "state")], { stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode, r.stderr.toString()).toBe(0);
  expect(JSON.parse(r.stdout.toString())).toEqual({ controls: 87, types: ["fim.status", "cis.scan", "fim.create"] });
}, 60_000);
