/** The console's license page and banner, for users with system.license.view only. */
import { afterAll, beforeAll, setDefaultTimeout, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { rawPublicKey, signLicense } from "../../src/license/format.ts";
import { consoleHarness, type ConsoleHarness } from "../support/console-app.ts";

setDefaultTimeout(120_000);

const vendor = generateKeyPairSync("ed25519");
let h: ConsoleHarness;
beforeAll(async () => (h = await consoleHarness(undefined, { licenseEnv: { SERVERMIND_LICENSE_PUBLIC_KEY: rawPublicKey(vendor.publicKey) } })));
afterAll(() => h.close());

const install = (expiresAt: string, seats = 10) =>
  writeFileSync(join(h.dataDir, "license.txt"), signLicense({ v: 1, id: "lic-c", licensee: "Console & Co", seats, issuedAt: "2026-01-01T00:00:00Z", expiresAt, features: ["sso"] }, vendor.privateKey));

test("a valid license is shown on /settings/license; without the permission the page is refused", async () => {
  install("2099-01-01T00:00:00.000Z");
  const viewer = await h.userWith(["system.license.view", "hosts.view"]);
  const r = await h.send("/settings/license", { session: viewer });
  expect(r.status).toBe(200);
  const page = await r.text();
  expect(page).toContain('id="license-licensee">Console &amp; Co<');
  expect(page).toContain("0 of 10 in use");
  expect(page).toContain('id="license-state">valid<');
  const other = await h.userWith(["hosts.view"]);
  expect((await h.send("/settings/license", { session: other })).status).toBe(403);
});

test("an expired license puts a banner on every page for license viewers, not for others", async () => {
  install("2020-01-01T00:00:00.000Z");
  const viewer = await h.userWith(["system.license.view", "hosts.view"]);
  const page = await (await h.send("/settings/license", { session: viewer })).text(); // refreshes the status
  expect(page).toContain('id="license-state">expired<');
  const fleet = await (await h.send("/hosts", { session: viewer })).text();
  expect(fleet).toContain('id="license-banner"');
  expect(fleet).toContain("expired on 2020-01-01");
  const other = await h.userWith(["hosts.view"]);
  const theirs = await (await h.send("/hosts", { session: other })).text();
  expect(theirs).toContain("<main");
  expect(theirs).not.toContain("license-banner");
});

test("a tampered license file shows community mode and says why", async () => {
  writeFileSync(join(h.dataDir, "license.txt"), "servermind-license v1\nAAAA\nBBBB\n");
  const viewer = await h.userWith(["system.license.view"]);
  const page = await (await h.send("/settings/license", { session: viewer })).text();
  expect(page).toContain('id="license-community"');
  expect(page).toContain("The installed license file is not usable (the signature is 64 bytes, this one is 3)");
});
