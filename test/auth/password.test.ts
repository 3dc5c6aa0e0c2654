/** Password policy and strength (src/auth/password.ts). */
import { expect, test } from "bun:test";
import { checkPasswordPolicy, DUMMY_HASH, dummyVerify, hashPassword, passwordStrength, verifyPassword } from "../../src/auth/password.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";

const policy = DEFAULT_SETTINGS.password;

test("common passwords that meet the character rules are refused by the strength estimate", () => {
  for (const pw of ["Password1234", "Welcome2024!", "Qwerty123456", "Admin1234567"]) {
    const problems = checkPasswordPolicy(pw, policy, "someone");
    expect(problems.some((p) => p.startsWith("This password is too easy to guess"))).toBe(true);
  }
  expect(checkPasswordPolicy("Password1234", policy)[0]).toContain("strength 1 of 4, at least 3 needed");
  expect(checkPasswordPolicy("Quiet-Lantern-Orbit-41", policy)).toEqual([]);
});

test("the minimum score is a setting; 0 turns the estimate off", () => {
  expect(policy.minStrength).toBe(3);
  expect(checkPasswordPolicy("Password1234", { ...policy, minStrength: 0 })).toEqual([]);
  expect(checkPasswordPolicy("Summer2023abc", { ...policy, minStrength: 4 }).length).toBe(1);
});

test("the username counts as a known word", () => {
  expect(passwordStrength("Hortensia-2024", "").score).toBeGreaterThan(passwordStrength("Hortensia-2024", "hortensia").score);
});

test("the dummy verification has the cost parameters of a real hash", async () => {
  const real = await hashPassword("Quiet-Lantern-Orbit-41");
  expect(DUMMY_HASH.split("$").slice(1, 4)).toEqual(real.split("$").slice(1, 4));
  expect(await dummyVerify("anything")).toBe(false);
  expect(await verifyPassword("Quiet-Lantern-Orbit-41", real)).toBe(true);
});
