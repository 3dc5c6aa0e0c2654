import { test, expect } from "bun:test";
import { base32Decode, base32Encode, hotp, otpauthUri, totp, verifyTotp, newTotpSecret } from "../../src/auth/totp.ts";

// RFC 6238 appendix B (SHA-1): secret "12345678901234567890", 8 digits.
const SECRET = Buffer.from("12345678901234567890");
const VECTORS: Array<[number, string]> = [
  [59, "94287082"], [1111111109, "07081804"], [1111111111, "14050471"],
  [1234567890, "89005924"], [2000000000, "69279037"], [20000000000, "65353130"],
];

test("HOTP matches the RFC 6238 SHA-1 test vectors", () => {
  for (const [t, code] of VECTORS) expect(hotp(SECRET, Math.floor(t / 30), 8)).toBe(code);
});

test("RFC 4226 HOTP vectors (6 digits)", () => {
  const expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
  expected.forEach((c, i) => expect(hotp(SECRET, i)).toBe(c));
});

test("base32 round-trips and the 6-digit TOTP verifies once per step", () => {
  const b32 = base32Encode(SECRET);
  expect(b32).toBe("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  expect(base32Decode(b32).equals(SECRET)).toBe(true);
  const now = 1_700_000_000_000;
  const code = totp(b32, now);
  const step = verifyTotp(b32, code, now);
  expect(step).toBe(Math.floor(now / 30000));
  expect(verifyTotp(b32, code, now, step!)).toBeNull(); // replay of the same step refused
  expect(verifyTotp(b32, totp(b32, now - 30_000), now)).toBe(step! - 1); // one step of drift
  expect(verifyTotp(b32, totp(b32, now - 120_000), now)).toBeNull();
  expect(verifyTotp(b32, "12345", now)).toBeNull();
});

test("new secrets are 160-bit and the otpauth URI carries them", () => {
  const s = newTotpSecret();
  expect(base32Decode(s).length).toBe(20);
  expect(otpauthUri(s, "alice")).toBe(`otpauth://totp/ServerMind%3Aalice?secret=${s}&issuer=ServerMind&algorithm=SHA1&digits=6&period=30`);
});
