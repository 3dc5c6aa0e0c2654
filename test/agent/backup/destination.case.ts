/**
 * One suite for every backup Destination (agent/backup/destination.ts): local, SFTP, FTP/FTPS,
 * WebDAV, SMB, S3, Azure. A destination test file calls `destinationSuite` with a factory.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Destination } from "../../../agent/backup/destination.ts";
import { BackupError } from "../../../agent/backup/error.ts";

export interface DestinationFixture {
  dest: Destination;
  cleanup(): Promise<void>;
}

let folders = 0;

/**
 * `destinationSuite` on a test server: each fixture is `make(sub)` for a fresh folder `sub` under
 * the server's `dataDir()` (read when the fixture is made: the server starts in a beforeAll),
 * closed (when it holds a connection) and removed after the suite.
 */
export function serverFolderSuite(name: string, dataDir: () => string, make: (sub: string) => Destination & { close?(): Promise<void> }): void {
  destinationSuite(name, async () => {
    const sub = `suite-${++folders}`;
    const dest = make(sub);
    return {
      dest,
      cleanup: async () => {
        await dest.close?.();
        await rm(join(dataDir(), sub), { recursive: true, force: true });
      },
    };
  });
}

export interface DestinationSuiteOptions {
  /**
   * false when replacing an object whole is the storage protocol's promise (S3: a PUT is visible
   * whole or not at all) and the test server does not keep it: s3rver writes an object in place
   * while its body arrives, so concurrent PUTs of one name can leave a mix of their bodies. The
   * concurrent-puts case then checks what is ours (every put succeeds, one name is listed, it
   * reads back) and not the server's atomicity; "put replaces an object" covers a replacement.
   */
  serverAtomicReplace?: boolean;
}

export function destinationSuite(name: string, make: () => Promise<DestinationFixture>, o: DestinationSuiteOptions = {}): void {
  describe(`Destination: ${name}`, () => {
    const fixtures: DestinationFixture[] = [];
    const fresh = async () => {
      const f = await make();
      fixtures.push(f);
      return f.dest;
    };
    afterAll(async () => {
      for (const f of fixtures) await f.cleanup();
    });

    test("put then get returns the same bytes, including empty and large objects", async () => {
      const d = await fresh();
      const big = randomBytes(3 * 1024 * 1024);
      await d.put("data/ab/abc", big);
      await d.put("empty", new Uint8Array(0));
      expect(Buffer.from(await d.get("data/ab/abc")).equals(big)).toBe(true);
      expect((await d.get("empty")).length).toBe(0);
    });

    test("put replaces an object", async () => {
      const d = await fresh();
      await d.put("config", Buffer.from("one"));
      await d.put("config", Buffer.from("two, longer"));
      expect(Buffer.from(await d.get("config")).toString()).toBe("two, longer");
    });

    test("get of a missing object is BackupError not_found", async () => {
      const d = await fresh();
      const err = await d.get("snapshots/none").catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("not_found");
    });

    test("list gives every object under a prefix, across sub-folders, and nothing else", async () => {
      const d = await fresh();
      const names = ["data/00/0011", "data/00/0022", "data/ff/ff33", "snapshots/s1", "keys/password", "config"];
      for (const n of names) await d.put(n, Buffer.from(n));
      expect((await d.list("data/")).sort()).toEqual(["data/00/0011", "data/00/0022", "data/ff/ff33"]);
      expect(await d.list("snapshots/")).toEqual(["snapshots/s1"]);
      expect(await d.list("locks/")).toEqual([]);
    });

    test("listSizes gives every listed object with the size of the bytes read back", async () => {
      const d = await fresh();
      const objects: Record<string, number> = { "data/00/0011": 0, "data/00/0022": 1, "data/ff/ff33": 70_001, "snapshots/s1": 4096, config: 1_048_577 };
      for (const [n, size] of Object.entries(objects)) await d.put(n, randomBytes(size));
      const all = await d.listSizes("");
      expect(all.map((e) => e.name).sort()).toEqual((await d.list("")).sort());
      expect(Object.fromEntries(all.map((e) => [e.name, e.size]))).toEqual(objects);
      for (const e of all) expect((await d.get(e.name)).length).toBe(e.size);
      expect((await d.listSizes("data/")).map((e) => e.name).sort()).toEqual(["data/00/0011", "data/00/0022", "data/ff/ff33"]);
      expect(await d.listSizes("locks/")).toEqual([]);
    });

    test("delete removes; deleting a missing object is fine; exists follows", async () => {
      const d = await fresh();
      await d.put("locks/a", Buffer.from("x"));
      expect(await d.exists("locks/a")).toBe(true);
      await d.delete("locks/a");
      await d.delete("locks/a");
      expect(await d.exists("locks/a")).toBe(false);
      expect(await d.list("locks/")).toEqual([]);
    });

    const atomic = o.serverAtomicReplace !== false;
    test(atomic ? "concurrent puts of one name leave one whole object" : "concurrent puts of one name all succeed and leave one name (the server's atomicity is not tested here)", async () => {
      const d = await fresh();
      const bodies = Array.from({ length: 6 }, (_, i) => Buffer.alloc(512 * 1024, i + 1));
      await Promise.all(bodies.map((b) => d.put("data/cc/same", b)));
      const got = Buffer.from(await d.get("data/cc/same"));
      if (atomic) expect(bodies.some((b) => b.equals(got))).toBe(true);
      else expect(got.length).toBeGreaterThan(0);
      expect(await d.list("data/")).toEqual(["data/cc/same"]);
    });

    test("names that could escape the repository are refused", async () => {
      const d = await fresh();
      for (const bad of ["../x", "data/../../x", "/abs", "a//b", ""]) {
        await expect(d.put(bad, Buffer.from("x"))).rejects.toThrow();
      }
    });
  });
}
