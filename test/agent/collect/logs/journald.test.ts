import { expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createJournalTail, parseJournalRecord } from "../../../../agent/collect/logs/journald.ts";

test("parses journal JSON records, including byte-array messages; rejects garbage", () => {
  const r = parseJournalRecord(JSON.stringify({ __CURSOR: "s=1", __REALTIME_TIMESTAMP: "1700000000123456", PRIORITY: "3", _SYSTEMD_UNIT: "ssh.service", MESSAGE: "boom" }))!;
  expect(r).toEqual({ ts: 1700000000123, severity: 3, source: "journal:ssh.service", message: "boom", cursor: "s=1" });
  expect(parseJournalRecord(JSON.stringify({ __CURSOR: "s=2", MESSAGE: [104, 105] }))!.message).toBe("hi");
  expect(parseJournalRecord("{not json")).toBeUndefined();
  expect(parseJournalRecord(JSON.stringify({ MESSAGE: "no cursor" }))).toBeUndefined();
});

test("follows a journalctl process and resumes after the committed cursor", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sm-journal-"));
  // a stand-in journalctl: prints the cursor argument it got and two records
  const fake = join(dir, "journalctl");
  writeFileSync(fake, `#!/bin/sh\nfor a in "$@"; do case "$a" in --after-cursor=*) echo "{\\"__CURSOR\\":\\"arg\\",\\"MESSAGE\\":\\"$a\\"}";; esac; done\n` +
    `echo '{"__CURSOR":"c1","MESSAGE":"first","PRIORITY":"6"}'\necho '{"__CURSOR":"c2","MESSAGE":"second","PRIORITY":"4"}'\nsleep 30\n`);
  chmodSync(fake, 0o755);
  const cursorPath = join(dir, "cursor");
  const t = createJournalTail({ cursorPath, journalctl: fake });
  let lines: ReturnType<typeof t.poll> = [];
  for (let i = 0; i < 50 && lines.length < 2; i++) {
    await Bun.sleep(50);
    lines = lines.concat(t.poll());
  }
  expect(lines.map((l) => l.message)).toEqual(["first", "second"]);
  t.commit();
  t.close();
  expect(readFileSync(cursorPath, "utf8")).toBe("c2");
  const t2 = createJournalTail({ cursorPath, journalctl: fake });
  let again: ReturnType<typeof t.poll> = [];
  for (let i = 0; i < 50 && again.length < 1; i++) {
    await Bun.sleep(50);
    again = again.concat(t2.poll());
  }
  expect(again[0]!.message).toBe("--after-cursor=c2");
  t2.close();
});
