/**
 * Drops root for good at the start of a process: supplementary groups first, then the group,
 * then the user (the order matters: after setuid nothing else may be changed). Verifies that
 * root cannot be regained.
 */
import { lookupUser, readGroupsOf } from "./layout.ts";

export function dropPrivileges(role: string, user: string): { uid: number; gid: number } {
  const acct = lookupUser(user);
  if (!acct) throw new Error(`service user ${user} does not exist: run the installer or "servermind-agent run" as root once`);
  const groups = [acct.gid, ...readGroupsOf(role).map((g) => g)];
  process.setgroups!(groups);
  process.setgid!(acct.gid);
  process.setuid!(acct.uid);
  if (process.getuid!() !== acct.uid || process.geteuid!() !== acct.uid) throw new Error(`setuid(${acct.uid}) did not take effect`);
  let regained = false;
  try {
    process.setuid!(0);
    regained = true;
  } catch {
    /* expected: root is gone */
  }
  if (regained) throw new Error("root could be regained after dropping privileges; refusing to run");
  return acct;
}
