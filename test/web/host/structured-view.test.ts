import { test, expect } from "bun:test";
import { toSections } from "../../../src/web/host/structured-view.ts";

test("objects become key/value sections, arrays of objects become tables", () => {
  const s = toSections({
    hostname: "web-1",
    os: { name: "Debian", version: 13 },
    packages: [{ name: "bash", version: "5.2" }, { name: "curl", arch: "amd64" }],
    disks: { sda: { size: 100 }, sdb: { size: 200 } },
    tags: ["a", "b"],
  }, "System");
  expect(s[0]).toEqual({ title: "System", kv: [{ k: "hostname", v: "web-1" }] });
  expect(s.find((x) => x.title === "Os")!.kv).toEqual([{ k: "name", v: "Debian" }, { k: "version", v: "13" }]);
  expect(s.find((x) => x.title === "Packages (2)")!.table).toEqual({ columns: ["name", "version", "arch"], rows: [["bash", "5.2", ""], ["curl", "", "amd64"]], more: 0 });
  expect(s.find((x) => x.title === "Disks (2)")!.table!.rows).toEqual([["sda", "100"], ["sdb", "200"]]);
  expect(s.find((x) => x.title === "Tags")!.kv).toEqual([{ k: "1", v: "a" }, { k: "2", v: "b" }]);
});

test("large lists are capped and say how many are left out", () => {
  const s = toSections(Array.from({ length: 350 }, (_, i) => ({ pid: i })), "Processes");
  expect(s[0]!.table!.rows.length).toBe(300);
  expect(s[0]!.table!.more).toBe(50);
  expect(toSections(null)).toEqual([{ title: "General", kv: [{ k: "value", v: "" }] }]);
  expect(toSections(undefined)).toEqual([]);
});
