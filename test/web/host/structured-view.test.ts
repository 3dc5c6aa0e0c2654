import { test, expect } from "bun:test";
import { label, toSections } from "../../../src/web/host/structured-view.ts";

test("objects become key/value sections, arrays of objects become tables", () => {
  const s = toSections({
    hostname: "web-1",
    os: { name: "Debian", version: 13 },
    packages: [{ name: "bash", version: "5.2" }, { name: "curl", arch: "amd64" }],
    disks: { sda: { size: 100 }, sdb: { size: 200 } },
    tags: ["a", "b"],
  }, "System");
  expect(s[0]).toEqual({ title: "System", kv: [{ k: "Hostname", v: "web-1" }] });
  expect(s.find((x) => x.title === "Operating system")!.kv).toEqual([{ k: "Name", v: "Debian" }, { k: "Version", v: "13" }]);
  expect(s.find((x) => x.title === "Packages (2)")!.table).toEqual({ columns: ["Name", "Version", "Arch"], rows: [["bash", "5.2", ""], ["curl", "", "amd64"]], more: 0 });
  expect(s.find((x) => x.title === "Disks (2)")!.table!.rows).toEqual([["sda", "100"], ["sdb", "200"]]);
  expect(s.find((x) => x.title === "Tags")!.kv).toEqual([{ k: "1", v: "a" }, { k: "2", v: "b" }]);
});

test("keys read as words: camelCase and snake_case split, acronyms upper case, known keys named", () => {
  expect(["os", "prettyName", "versionId", "mem_total", "listenAddress", "pid", "ipv4"].map(label)).toEqual(
    ["Operating system", "Full name", "Version ID", "Mem total", "Listen address", "PID", "IPV4"]);
});

test("tables are shown whole up to 5000 rows, with a filter box when long; larger ones say how many are left out", () => {
  expect(toSections([{ name: "a" }, { name: "b" }], "Packages")[0]!.table!.filter).toBeUndefined();
  const s = toSections(Array.from({ length: 5100 }, (_, i) => ({ pid: i })), "Processes");
  expect(s[0]!.table!.rows.length).toBe(5000);
  expect(s[0]!.table!.more).toBe(100);
  expect(s[0]!.table!.filter).toBe(true);
  expect(toSections(null)).toEqual([{ title: "General", kv: [{ k: "value", v: "" }] }]);
  expect(toSections(undefined)).toEqual([]);
});

test("a list of plain values in a field reads as a list, shortened with how many more (was JSON cut off mid-word)", () => {
  const names = Array.from({ length: 86 }, (_, i) => `libexample-${i}`);
  const s = toSections({ updates: { source: "apt", security: 86, securityPackages: names, ports: [22, 443] } }, "Inventory");
  const kv = s.find((x) => x.title === "Updates")!.kv!;
  const pkgs = kv.find((x) => x.k === "Security packages")!.v;
  expect(pkgs.startsWith("libexample-0, libexample-1, libexample-2")).toBe(true);
  expect(pkgs).not.toContain("[");
  expect(pkgs).not.toContain('"');
  const more = Number(/ and (\d+) more$/.exec(pkgs)![1]);
  expect(pkgs.split(", ").length + more).toBe(86);
  expect(pkgs.length).toBeLessThan(260);
  expect(kv.find((x) => x.k === "Ports")!.v).toBe("22, 443");
});

test("a table's naming columns come first, whatever order its keys come in (jsonb sorts them by length: gid, uid, home, name, shell)", () => {
  const [users] = toSections({ users: [{ gid: 0, uid: 0, home: "/root", name: "root", shell: "/bin/bash" }] }, "System");
  expect(users!.table!.columns).toEqual(["Name", "GID", "UID", "Home", "Shell"]);
  expect(users!.table!.rows).toEqual([["root", "0", "0", "/root", "/bin/bash"]]);
  const [ports] = toSections({ ports: [{ pid: 812, port: 22, proto: "tcp", address: "0.0.0.0", process: "sshd" }] }, "System");
  expect(ports!.table!.columns).toEqual(["Port", "Proto", "Address", "PID", "Process"]);
});
