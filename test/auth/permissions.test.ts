import { test, expect } from "bun:test";
import { PERMISSIONS, BUILTIN_ROLES, isPermission } from "../../src/auth/permissions.ts";

test("the catalog holds unique resource.action permissions of the features that exist, none of those that do not", () => {
  // every one of them gates a route or a check: test/auth/permission-coverage.test.ts
  expect(PERMISSIONS.length).toBeGreaterThanOrEqual(50);
  expect(new Set(PERMISSIONS.map((p) => p.id)).size).toBe(PERMISSIONS.length);
  for (const p of PERMISSIONS) expect(p.id).toMatch(/^[a-z]+(\.[a-z_]+)+$/);
  for (const prefix of ["compliance.", "fim.", "services.", "files.", "sso.", "hosts.view", "agents.enroll", "audit.export", "settings.security.edit", "alerts.", "notifications.", "backups.", "inventory.view", "logs.view"]) {
    expect(PERMISSIONS.some((p) => p.id.startsWith(prefix))).toBe(true);
  }
  // features the product does not have (issue #14: the Roles page offered them; alerts and
  // notifications came back with their feature, issue #18; backups with the backup console, issue #15)
  for (const prefix of ["vulnerabilities.", "containers.", "network.", "patches.", "reports.", "commands."]) {
    expect({ prefix, offered: PERMISSIONS.some((p) => p.id.startsWith(prefix)) }).toEqual({ prefix, offered: false });
  }
});

test("built-in roles use only catalog permissions; admin holds all, viewer no administration", () => {
  const byName = new Map(BUILTIN_ROLES.map((r) => [r.name, r]));
  expect([...byName.keys()].sort()).toEqual(["admin", "auditor", "operator", "viewer"]);
  for (const r of BUILTIN_ROLES) for (const p of r.permissions) expect(isPermission(p)).toBe(true);
  expect(byName.get("admin")!.permissions.length).toBe(PERMISSIONS.length);
  const viewer = byName.get("viewer")!.permissions;
  expect(viewer).toContain("hosts.view");
  expect(viewer.some((p) => p.startsWith("users.") || p.startsWith("audit.") || !p.endsWith("view"))).toBe(false);
  expect(byName.get("auditor")!.permissions).toContain("audit.export");
  expect(byName.get("auditor")!.permissions.some((p) => p.endsWith(".edit") || p.endsWith(".delete"))).toBe(false);
  expect(byName.get("operator")!.permissions).not.toContain("users.create");
});

test("the viewer's description names every area its permissions let it see (the Roles page shows it to whoever assigns it)", () => {
  const viewer = BUILTIN_ROLES.find((r) => r.name === "viewer")!;
  // an area by its permission's first segment; the few whose word differs from the segment named here
  const words: Record<string, string> = { fim: "file integrity", files: "file listings", security: "security events", system: "license" };
  const missing = [...new Set(viewer.permissions.map((p) => p.split(".")[0]!))].filter((area) => !viewer.description.includes(words[area] ?? area));
  expect(missing).toEqual([]);
  expect(viewer.permissions.every((p) => p.endsWith(".view"))).toBe(true);
});
