/**
 * Password hashing (argon2id through Bun.password) and the admin-set password policy, including
 * a strength estimate by zxcvbn-ts with its common-password and English dictionaries.
 */
import { ZxcvbnFactory } from "@zxcvbn-ts/core";
import * as common from "@zxcvbn-ts/language-common";
import * as en from "@zxcvbn-ts/language-en";
import type { PasswordPolicy } from "../settings/console-settings.ts";

export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, { algorithm: "argon2id", memoryCost: 19456, timeCost: 2 });
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return Bun.password.verify(password, hash).catch(() => false);
}

/**
 * A fixed hash with hashPassword()'s parameters, of 32 random bytes nobody kept, to verify
 * against when the user does not exist or has no local password, so timing does not reveal it.
 * Stored rather than computed at first use, so even the first such request costs the same.
 */
export const DUMMY_HASH = "$argon2id$v=19$m=19456,t=2,p=1$QMB21sfBqYMIEfiXqAP7s3FAx7TBftFrNe8+Bj0jEIQ$GDfSuzwjYfMOuAFT4Nh01WeNz8+GPvqqm59WTRyeyP8";
export function dummyVerify(password: string): Promise<boolean> {
  return verifyPassword(password, DUMMY_HASH).then(() => false);
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
  const min = p.minStrength ?? 3;
  if (min > 0 && password.length <= 256) {
    const r = passwordStrength(password, username);
    if (r.score < min) {
      const why = [r.warning, ...r.suggestions].filter(Boolean).join(" ");
      problems.push(`This password is too easy to guess (strength ${r.score} of 4, at least ${min} needed).${why ? ` ${why}` : ""}`);
    }
  }
  return problems;
}

let estimator: ZxcvbnFactory | undefined;

/** zxcvbn's score (0-4: guessable within 10^3, 10^6, 10^8, 10^10 guesses, or beyond) and its advice. */
export function passwordStrength(password: string, username = ""): { score: number; warning: string; suggestions: string[] } {
  estimator ??= new ZxcvbnFactory({
    dictionary: { ...common.dictionary, ...en.dictionary },
    graphs: common.adjacencyGraphs,
    translations: en.translations,
  });
  const r = estimator.check(password, username ? [username, "servermind"] : ["servermind"]);
  return { score: r.score, warning: r.feedback.warning ?? "", suggestions: r.feedback.suggestions ?? [] };
}
