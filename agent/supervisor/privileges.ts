/**
 * Drops root for good at the start of a process: supplementary groups first, then the group,
 * then the user (the order matters: after setuid nothing else may be changed). Verifies that
 * root cannot be regained.
 */
import { existsSync, readFileSync } from "node:fs";
import { lookupUser, readGroupsOf } from "./layout.ts";

export function dropPrivileges(role: string, user: string): { uid: number; gid: number } {
  const acct = lookupUser(user);
  if (!acct) throw new Error(`service user ${user} does not exist: run the installer or "servermind-agent run" as root once`);
  const groups = [acct.gid, ...readGroupsOf(role).map((g) => g)];
  process.setgroups!(groups);
  process.setgid!(acct.gid);
  process.setuid!(acct.uid);
  if (process.getuid!() !== acct.uid || process.geteuid!() !== acct.uid) throw new Error(`setuid(${acct.uid}) did not take effect`);
  assertRootGone();
  return acct;
}

/** Refuses to go on when setuid(0) succeeds: root must be gone for good. */
function assertRootGone(): void {
  let regained = false;
  try {
    process.setuid!(0);
    regained = true;
  } catch {
    /* expected: root is gone */
  }
  if (regained) throw new Error("root could be regained after dropping privileges; refusing to run");
}

/** CAP_DAC_READ_SEARCH: read any file and search any directory, and nothing else. */
export const CAP_DAC_READ_SEARCH = 2n;

const TOOLS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];
const tool = (name: string) => TOOLS.map((d) => `${d}/${name}`).find((p) => existsSync(p));

/**
 * Runs as root in Monitor's own mount namespace, before it becomes Monitor: covers each hidden
 * directory with an empty read-only tmpfs, replaces /dev with one that holds only the harmless
 * character devices (read access to every file must not mean reading raw disks), and execs
 * the rest of the command line. $1 is the number of directories to hide, then the directories.
 */
const MONITOR_NAMESPACE = `set -eu
n=$1; shift
while [ "$n" -gt 0 ]; do mount -t tmpfs -o ro,mode=000,size=4k servermind-hidden "$1"; shift; n=$((n - 1)); done
mount -t tmpfs -o mode=755,size=64k,nosuid,noexec servermind-dev /dev
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
mknod -m 444 /dev/random c 1 8; mknod -m 444 /dev/urandom c 1 9
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
mount -o remount,ro /dev
exec "$@"`;

/**
 * How the supervisor starts Monitor: read access to every file and nothing else. util-linux's
 * unshare gives it a private mount namespace in which Platform's and Collector's directories
 * (identity, machine secret, spools), Control's snapshots and every block device are gone;
 * setpriv then starts it as its user with CAP_DAC_READ_SEARCH as its only capability (ambient,
 * so every thread of the new process has it; the bounding set and no_new_privs keep it from
 * ever getting more). So Monitor hashes /etc/shadow and watches /root/.ssh, cannot write
 * outside its state directory, cannot connect to the others' sockets (that needs write
 * permission on the socket), and cannot read what would let it pose as the agent.
 * The whole chain is tried once with `true` in Monitor's place, because tools that exist may
 * still be refused (a container without CAP_SYS_ADMIN cannot make a mount namespace): `error`
 * then says why, and Monitor drops to its user like the others and reports the root-only files
 * it cannot read.
 */
export function readOnlyLaunch(user: string, groups: string[], hide: string[], argv: string[]): { argv: string[] } | { error: string } {
  const [unshare, setpriv, sh, yes] = [tool("unshare"), tool("setpriv"), tool("sh"), tool("true")];
  const missing = Object.entries({ unshare, setpriv, sh, true: yes, mknod: tool("mknod") }).filter(([, p]) => !p).map(([n]) => n);
  if (missing.length) return { error: `${missing.join(", ")} not found (util-linux, coreutils)` };
  const acct = lookupUser(user);
  if (!acct) throw new Error(`service user ${user} does not exist`);
  const chain = (command: string[]): string[] => [
    unshare!, "--mount", "--propagation", "private", "--",
    sh!, "-c", MONITOR_NAMESPACE, "servermind-monitor-namespace", String(hide.length), ...hide,
    setpriv!, `--reuid=${acct.uid}`, `--regid=${acct.gid}`, groups.length ? `--groups=${groups.join(",")}` : "--clear-groups",
    "--inh-caps=-all,+dac_read_search", "--ambient-caps=-all,+dac_read_search", "--bounding-set=-all,+dac_read_search", "--no-new-privs",
    "--", ...command,
  ];
  const probe = Bun.spawnSync(chain([yes!]), { stdin: "ignore", stdout: "ignore", stderr: "pipe", timeout: 10_000 });
  if (probe.exitCode !== 0) return { error: `a trial start failed (${probe.stderr.toString().trim().split("\n").pop() || `exit ${probe.exitCode}`})` };
  return { argv: chain(argv) };
}

/** The capability sets of this process, from /proc/self/status. */
export function ownCapabilities(status = readFileSync("/proc/self/status", "utf8")): { effective: bigint; permitted: bigint; bounding: bigint; ambient: bigint } {
  const cap = (k: string) => BigInt(`0x${status.match(new RegExp(`^${k}:\\s*([0-9a-f]+)$`, "m"))?.[1] ?? "0"}`);
  return { effective: cap("CapEff"), permitted: cap("CapPrm"), bounding: cap("CapBnd"), ambient: cap("CapAmb") };
}

/**
 * For a process its parent started already dropped (setpriv): checks that it runs as `user`,
 * holds no capability outside `allowedMask`, and cannot become root again.
 */
export function verifyDropped(user: string, allowedMask: bigint): void {
  const acct = lookupUser(user);
  if (!acct) throw new Error(`service user ${user} does not exist`);
  if (process.getuid!() !== acct.uid || process.geteuid!() !== acct.uid) throw new Error(`expected to run as ${user} (uid ${acct.uid}), runs as uid ${process.geteuid!()}`);
  const caps = ownCapabilities();
  for (const [set, v] of Object.entries(caps)) {
    if ((v & ~allowedMask) !== 0n) throw new Error(`capability set ${set} holds 0x${v.toString(16)}, more than 0x${allowedMask.toString(16)}; refusing to run`);
  }
  assertRootGone();
}
