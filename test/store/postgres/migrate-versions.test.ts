/**
 * The runner records a migration by its three-digit version alone, so two files sharing one
 * version would leave the second unapplied on every database that already has the first.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listMigrations } from "../../../src/store/postgres/migrate.ts";

test("the shipped migrations have one file per version", () => {
  const list = listMigrations();
  expect(list.length).toBeGreaterThan(5);
  expect(new Set(list.map((m) => m.version)).size).toBe(list.length);
});

test("two files with one version are refused with both names", () => {
  const dir = mkdtempSync(join(tmpdir(), "sm-migrations-"));
  try {
    writeFileSync(join(dir, "410_a.sql"), "select 1;");
    writeFileSync(join(dir, "410_b.sql"), "select 2;");
    expect(() => listMigrations(dir)).toThrow("migrations 410_a.sql and 410_b.sql share the version 410");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
