/**
 * Skipping a test because an external component is missing is allowed on a laptop, loudly,
 * and is a failure under CI=true.
 */
export const IN_CI = process.env.CI === "true" || process.env.CI === "1";

export function requireComponent(available: boolean, what: string): boolean {
  if (available) return true;
  if (IN_CI) throw new Error(`${what} is required under CI=true but is missing: .ci/run must install it`);
  console.warn(`\n*** SKIPPING: ${what} is not available on this machine ***\n`);
  return false;
}
