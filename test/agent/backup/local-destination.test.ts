import { expect, test } from "bun:test";
import { mkdtemp, readdir, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { destinationSuite } from "./destination.case.ts";

destinationSuite("local directory", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sm-dest-"));
  return { dest: new LocalDestination(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

test("a half-written temporary file (a killed put) is not listed and the put leaves none", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sm-dest-"));
  try {
    const d = new LocalDestination(dir);
    await d.put("data/aa/aa01", Buffer.from("whole"));
    expect(await readdir(join(dir, "data/aa"))).toEqual(["aa01"]);
    await mkdir(join(dir, "data/bb"), { recursive: true });
    await writeFile(join(dir, "data/bb/bb02.tmp-0123456789ab"), "half");
    expect(await d.list("data/")).toEqual(["data/aa/aa01"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
