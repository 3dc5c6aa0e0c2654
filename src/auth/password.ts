/** Password hashing (argon2id through Bun.password) and the admin-set password policy. */
import type { PasswordPolicy } from "../settings/console-settings.ts";

export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, { algorithm: "argon2id", memoryCost: 19456, timeCost: 2 });
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return Bun.password.verify(password, hash).catch(() => false);
}

/** A fixed hash to verify against when the user does not exist, so timing does not reveal it. */
let dummy: Promise<string> | undefined;
export function dummyVerify(password: string): Promise<boolean> {
  dummy ??= hashPassword("not-a-real-password-used-for-timing");
  return dummy.then((h) => verifyPassword(password, h)).then(() => false);
}

/** Every rule the password breaks, as sentences for the form; empty when it is acceptable. */
export function checkPasswordPolicy(password: string, p: PasswordPolicy, username = ""): string[] {
  const problems: string[] = [];
  if (password.length < p.minLength) problems.push(`Use at least ${p.minLength} characters (this one has ${password.length}).`);
  if (password.length > 256) problems.push("Use at most 256 characters.");
  if (p.requireLower && !/[a-z]/.test(password)) problems.push("Include a lower-case letter.");
  if (p.requireUpper && !/[A-Z]/.test(password)) problems.push("Include an upper-case letter.");
  if (p.requireDigit && !/[0-9]/.test(password)) problems.push("Include a digit.");
  if (p.requireSymbol && !/[^A-Za-z0-9]/.test(password)) problems.push("Include a symbol such as ! or #.");
  if (username && password.toLowerCase().includes(username.toLowerCase())) problems.push("Do not include your username.");
  return problems;
}
