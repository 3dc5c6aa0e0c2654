import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createHostFs } from "../../../../agent/collect/collector.ts";
import { collectInventory, parseListening } from "../../../../agent/collect/inventory/index.ts";
import { fixtureRoot } from "../../../support/collect.ts";

const root = fixtureRoot("inventory", "debian12");
const recorded = (argv: string[]) =>
  argv[0] === "systemctl" ? readFileSync(join(root, "commands/systemctl-list-units.txt"), "utf8") : undefined;

test("OS, kernel, packages, services, ports and users from a recorded Debian root", () => {
  const inv = collectInventory({ fs: createHostFs(root), run: recorded });
  expect(inv.os.id).toBe("debian");
  expect(inv.os.version).toBe("12");
  expect(inv.kernel.release).toBe(readFileSync(join(root, "proc/sys/kernel/osrelease"), "utf8").trim());
  expect(inv.hostname).toBe("fixture-host");
  expect(inv.packages.length).toBe(40);
  expect(inv.packages.every((p) => p.name && p.version)).toBe(true);
  expect(inv.services.map((s) => s.name)).toEqual(["cron.service", "dbus.service", "nginx.service", "ssh.service", "systemd-journald.service"]);
  expect(inv.services.find((s) => s.name === "nginx.service")!.active).toBe("failed");
  expect(inv.ports).toContainEqual({ proto: "tcp6", address: "::1", port: 8443, uid: 999 });
  expect(inv.ports.filter((p) => p.proto === "tcp").length).toBeGreaterThan(0);
  const rootUser = inv.users.find((u) => u.name === "root")!;
  expect(rootUser.uid).toBe(0);
  expect(JSON.stringify(inv)).not.toContain("$6$"); // no password hashes
});

test("IPv4 listener addresses decode from little-endian hex; established sockets are not listeners", () => {
  const text = "  sl  local rem st\n   0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 1000 0 1\n   1: 0100007F:1F91 0100007F:D431 01 0:0 0:0 0 1000 0 2\n";
  expect(parseListening(text, "tcp")).toEqual([{ proto: "tcp", address: "127.0.0.1", port: 8080, uid: 1000 }]);
});

test("an empty root gives an empty inventory, not an exception", () => {
  const inv = collectInventory({ fs: createHostFs("/nonexistent-root"), run: () => undefined });
  expect(inv.packages).toEqual([]);
  expect(inv.users).toEqual([]);
});
