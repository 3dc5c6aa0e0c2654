import { expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_WATCH_FILES as WATCHED_FILES } from "../../../agent/config.ts";
import { checkFiles, type FileFacts } from "../../../agent/monitor/process.ts";

test("file integrity: the first pass is the baseline; change, mode, removal and creation are events", () => {
  const root = mkdtempSync(join(tmpdir(), "sm-monitor-"));
  mkdirSync(join(root, "etc"));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\n");
  const baseline: Record<string, FileFacts> = {};
  expect(checkFiles(root, WATCHED_FILES, baseline, 1)).toEqual([]);
  expect(checkFiles(root, WATCHED_FILES, baseline, 2)).toEqual([]);
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n");
  chmodSync(join(root, "etc/group"), 0o666);
  rmSync(join(root, "etc/passwd"));
  writeFileSync(join(root, "etc/sudoers"), "evil ALL=(ALL) NOPASSWD: ALL\n");
  const ev = checkFiles(root, WATCHED_FILES, baseline, 3);
  expect(ev.map((e) => [e.type, e.path])).toEqual([
    ["file.removed", "/etc/passwd"],
    ["file.changed", "/etc/group"],
    ["file.created", "/etc/sudoers"],
  ]);
  expect(ev[2]!.severity).toBe(7);
  expect(checkFiles(root, WATCHED_FILES, baseline, 4)).toEqual([]);
});
