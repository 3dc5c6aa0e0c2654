import { expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { HEADER, LicenseError, publicKeyFromRaw, rawPublicKey, signLicense, verifyLicense, type LicensePayload } from "../../src/license/format.ts";
import { vendorKey, VENDOR_PUBLIC_KEY } from "../../src/license/key.ts";
import { COMMUNITY_SEATS, evaluate, seatFree } from "../../src/license/state.ts";

const vendor = generateKeyPairSync("ed25519");
const payload: LicensePayload = { v: 1, id: "lic-1", licensee: "Example GmbH", seats: 50, issuedAt: "2026-01-01T00:00:00.000Z", expiresAt: "2027-01-01T00:00:00.000Z", features: ["sso", "clickhouse"] };

function refused(f: () => unknown): LicenseError {
  try {
    f();
  } catch (e) {
    if (e instanceof LicenseError) return e;
    throw e;
  }
  throw new Error("expected a LicenseError");
}

test("a signed license is three lines and verifies to its payload", () => {
  const text = signLicense(payload, vendor.privateKey);
  const lines = text.split("\n");
  expect(lines).toHaveLength(4); // header, payload, signature, final newline
  expect(lines[0]).toBe(HEADER);
  expect(JSON.parse(Buffer.from(lines[1]!, "base64url").toString("utf8"))).toEqual(payload);
  expect(Buffer.from(lines[2]!, "base64url")).toHaveLength(64);
  expect(verifyLicense(text, vendor.publicKey)).toEqual(payload);
  // CRLF line ends (a file edited on Windows) still verify: the signed bytes are the lines' text
  expect(verifyLicense(text.replace(/\n/g, "\r\n"), vendor.publicKey)).toEqual(payload);
});

test("a tampered payload, a foreign key or a malformed file are refused with a clear message", () => {
  const text = signLicense(payload, vendor.privateKey);
  const [h, line, sig] = text.trimEnd().split("\n") as [string, string, string];
  const more = Buffer.from(JSON.stringify({ ...payload, seats: 5000 })).toString("base64url");
  const e1 = refused(() => verifyLicense(`${h}\n${more}\n${sig}\n`, vendor.publicKey));
  expect(e1.code).toBe("bad_signature");
  expect(e1.message).toContain("does not verify against the vendor key");
  const other = generateKeyPairSync("ed25519");
  expect(refused(() => verifyLicense(text, other.publicKey)).code).toBe("bad_signature");
  expect(refused(() => verifyLicense(text.replace(HEADER, "servermind-license v2"), vendor.publicKey)).message).toContain("first line");
  expect(refused(() => verifyLicense(`${h}\n${line}\n`, vendor.publicKey)).message).toContain("3 lines");
  expect(refused(() => verifyLicense(`${h}\n${line}\n${sig.slice(0, 40)}\n`, vendor.publicKey)).message).toContain("64 bytes");
  // a valid signature over a payload that breaks the schema
  expect(() => signLicense({ ...payload, seats: 0 }, vendor.privateKey)).toThrow(/seats/);
});

test("the vendor key is compiled in; the override is reported as one", () => {
  expect(vendorKey({}).overridden).toBe(false);
  expect(rawPublicKey(vendorKey({}).key)).toBe(VENDOR_PUBLIC_KEY);
  const raw = rawPublicKey(vendor.publicKey);
  const o = vendorKey({ SERVERMIND_LICENSE_PUBLIC_KEY: raw });
  expect(o.overridden).toBe(true);
  expect(rawPublicKey(o.key)).toBe(raw);
  expect(rawPublicKey(publicKeyFromRaw(Buffer.from(raw, "base64url").toString("base64")))).toBe(raw);
  expect(() => vendorKey({ SERVERMIND_LICENSE_PUBLIC_KEY: "abc" })).toThrow(/32 bytes/);
});

test("states: community limit, expiry and seats only warn; the seat count limits enrollment", () => {
  const now = new Date("2026-06-01T00:00:00Z");
  const c = evaluate({ license: null, agents: COMMUNITY_SEATS - 1, now });
  expect([c.mode, c.state, c.seats, seatFree(c), c.warnings]).toEqual(["community", "community", 25, true, []]);
  const full = evaluate({ license: null, agents: COMMUNITY_SEATS, now });
  expect(seatFree(full)).toBe(false);
  expect(full.warnings.join(" ")).toContain("new enrollments are refused");
  const valid = evaluate({ license: payload, agents: 49, now });
  expect([valid.state, valid.seats, seatFree(valid), valid.warnings]).toEqual(["valid", 50, true, []]);
  const expired = evaluate({ license: payload, agents: 3, now: new Date("2027-02-01T00:00:00Z") });
  expect([expired.state, expired.expired, seatFree(expired)]).toEqual(["expired", true, true]);
  expect(expired.warnings[0]).toContain("expired on 2027-01-01");
  const over = evaluate({ license: payload, agents: 51, now });
  expect([over.state, seatFree(over)]).toEqual(["over_seats", false]);
});
