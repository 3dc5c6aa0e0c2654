/**
 * The pure parts of backup jobs: schedules and their next due time, destination settings
 * (secrets refused in the plain settings), each host's repository location, the dedup ratio shown.
 */
import { expect, test } from "bun:test";
import { BackupRequestError, checkDestinationConfig, checkSchedule, nextRun } from "../../src/backups/store.ts";
import { repositoryConfig } from "../../src/backups/runner.ts";
import { bytes, dedupRatio } from "../../src/web/backups/routes.ts";

test("schedules: manual, every N minutes (5 to 44640), daily at HH:MM UTC; the next due time", () => {
  expect(checkSchedule("", null, null)).toEqual({ kind: "manual" });
  expect(checkSchedule("interval", "60", null)).toEqual({ kind: "interval", minutes: 60 });
  for (const bad of ["4", "44641", "1.5", "x", ""]) expect(() => checkSchedule("interval", bad, null)).toThrow(BackupRequestError);
  expect(checkSchedule("daily", null, "02:30")).toEqual({ kind: "daily", at: "02:30" });
  for (const bad of ["24:00", "2:30", "02:60", "", "0230"]) expect(() => checkSchedule("daily", null, bad)).toThrow(BackupRequestError);
  expect(() => checkSchedule("cron", null, null)).toThrow(/manual, interval or daily/);

  const from = new Date("2026-12-06T01:00:00Z");
  expect(nextRun({ kind: "manual" }, from)).toBeNull();
  expect(nextRun({ kind: "interval", minutes: 90 }, from)!.toISOString()).toBe("2026-12-06T02:30:00.000Z");
  expect(nextRun({ kind: "daily", at: "02:30" }, from)!.toISOString()).toBe("2026-12-06T02:30:00.000Z");
  expect(nextRun({ kind: "daily", at: "00:15" }, from)!.toISOString()).toBe("2026-12-07T00:15:00.000Z");
  expect(nextRun({ kind: "daily", at: "01:00" }, from)!.toISOString()).toBe("2026-12-07T01:00:00.000Z"); // due now: next is tomorrow
});

test("destination settings: required fields per type, secrets only in their own fields", () => {
  expect(checkDestinationConfig("local", { path: "/srv/b", fsync: true })).toEqual({ path: "/srv/b", fsync: true });
  expect(() => checkDestinationConfig("local", { path: "srv" })).toThrow(/absolute/);
  expect(() => checkDestinationConfig("sftp", { host: "h", username: "u" })).toThrow(/needs root/);
  expect(() => checkDestinationConfig("webdav", { url: "https://x/", password: "p" })).toThrow(/secret/);
  expect(() => checkDestinationConfig("s3", { endpoint: "e", bucket: "b", accessKeyId: "a", secretAccessKey: "s" })).toThrow(/secret/);
  expect(() => checkDestinationConfig("nfs", {})).toThrow(/type must be/);
  // the hosted S3 services by preset: endpoint from the preset, region or account where it needs one
  expect(checkDestinationConfig("gcs", { bucket: "b", accessKeyId: "GOOG1", root: "sm" })).toEqual({ bucket: "b", accessKeyId: "GOOG1", root: "sm" });
  expect(() => checkDestinationConfig("b2", { bucket: "b", accessKeyId: "k" })).toThrow(/needs region/);
  expect(() => checkDestinationConfig("r2", { bucket: "b", accessKeyId: "k" })).toThrow(/needs accountId/);
  expect(repositoryConfig({ type: "wasabi", region: "eu-central-1", root: "sm" }, 3, 7)).toEqual({ type: "wasabi", region: "eu-central-1", root: "sm/job-3/host-7" });
  expect(() => checkDestinationConfig("local", { path: "/x", nested: { a: 1 } })).toThrow(/string, number or boolean/);
  expect(() => checkDestinationConfig("local", [])).toThrow(/JSON object/);
});

test("each host of a job has its own repository under the destination's location", () => {
  expect(repositoryConfig({ type: "local", path: "/srv/backups/" }, 3, 7)).toEqual({ type: "local", path: "/srv/backups/job-3/host-7" });
  expect(repositoryConfig({ type: "webdav", url: "https://dav/b/" }, 3, 7)).toEqual({ type: "webdav", url: "https://dav/b/job-3/host-7/" });
  expect(repositoryConfig({ type: "s3", root: "" }, 3, 7)).toEqual({ type: "s3", root: "job-3/host-7" });
  expect(repositoryConfig({ type: "sftp", root: "/backup" }, 3, 7)).toEqual({ type: "sftp", root: "/backup/job-3/host-7" });
});

test("the history's numbers: sizes and the dedup ratio (bytes read per new byte)", () => {
  expect(bytes(null)).toBe("—");
  expect(bytes(18)).toBe("18 B");
  expect(bytes(3_000_018)).toBe("2.86 MiB");
  expect(dedupRatio(3_000_018, 18)).toBe("166667.7×");
  expect(dedupRatio(100, 0)).toBe("all deduplicated");
  expect(dedupRatio(null, 5)).toBe("—");
});
