/**
 * What the license (or its absence) means now: the seat limit for new enrollments and the
 * warnings to show. Pure. Nothing here ever stops ingest: an expired or over-seat license only
 * warns and refuses enrollments beyond the seats (docs/licensing.md, "What is enforced").
 */
import type { LicensePayload } from "./format.ts";

/** Without a license: this many agents, every feature. */
export const COMMUNITY_SEATS = 25;

export type LicenseState = "community" | "valid" | "expired" | "over_seats" | "community_over_seats";

export interface LicenseStatus {
  mode: "community" | "licensed";
  state: LicenseState;
  license: LicensePayload | null;
  /** Enrolled, not revoked agents. */
  agents: number;
  /** The enrollment limit: the license's seats (expired or not), or COMMUNITY_SEATS. */
  seats: number;
  expired: boolean;
  /** A problem with the installed file (unreadable, bad signature): the server runs in community mode and says so. */
  fileProblem?: string;
  keyOverridden: boolean;
  /** Human-readable warnings, for the banner, `license status` and the log. */
  warnings: string[];
}

export function evaluate(o: { license: LicensePayload | null; agents: number; now: Date; fileProblem?: string; keyOverridden?: boolean }): LicenseStatus {
  const warnings: string[] = [];
  const l = o.license;
  const seats = l ? l.seats : COMMUNITY_SEATS;
  const expired = !!l && Date.parse(l.expiresAt) <= o.now.getTime();
  if (o.fileProblem) warnings.push(`The installed license file is not usable (${o.fileProblem}); running in community mode.`);
  if (expired) warnings.push(`The license ${l!.id} for ${l!.licensee} expired on ${l!.expiresAt.slice(0, 10)}. Ingest continues; renew it to stay covered.`);
  const over = o.agents > seats;
  const full = o.agents >= seats;
  if (over) warnings.push(`${o.agents} agents are enrolled, more than the ${seats} ${l ? "licensed seats" : "agents of community mode"}. They keep reporting; new enrollments are refused.`);
  else if (full) warnings.push(`All ${seats} ${l ? "licensed seats" : "community-mode agent slots"} are in use: new enrollments are refused.`);
  if (o.keyOverridden) warnings.push("Licenses are verified against a development key (SERVERMIND_LICENSE_PUBLIC_KEY), not the vendor key.");
  const state: LicenseState = !l ? (over ? "community_over_seats" : "community") : expired ? "expired" : over ? "over_seats" : "valid";
  return { mode: l ? "licensed" : "community", state, license: l, agents: o.agents, seats, expired, fileProblem: o.fileProblem, keyOverridden: !!o.keyOverridden, warnings };
}

/** Whether one more agent may enroll. */
export function seatFree(s: LicenseStatus): boolean {
  return s.agents < s.seats;
}
