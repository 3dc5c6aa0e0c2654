/**
 * A real systemd service manager for tests on machines where systemd is not PID 1 (CI
 * containers, VMs booted by another init): a `systemd --user` instance for root, started in a
 * private mount namespace whose /run is a fresh tmpfs holding /run/systemd/system (the marker
 * systemd checks before it agrees to run as a user instance; the rest of the machine does not
 * see it). Its runtime dir (control socket) and config dir (unit files, enable symlinks) are
 * temporary directories outside the namespace, so `systemctl --user` with XDG_RUNTIME_DIR and
 * XDG_CONFIG_HOME pointing there reaches it from any process, the agent's Control included.
 *
 * With `journal: true`, a systemd-journald runs in the same namespace, writing to `journalDir`
 * (bind-mounted over the namespace's /run/log/journal), and the manager is first moved into a
 * cgroup of its own named like a real host's `.../user@0.service`, so that journald tags its
 * units' lines with _SYSTEMD_USER_UNIT as on a real host and `journalctl --directory=<journalDir>
 * --user-unit=<unit>` finds them.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export interface SystemdUser {
  dir: string;
  /** XDG_RUNTIME_DIR and XDG_CONFIG_HOME for systemctl/journalctl (and the agent) */
  env: Record<string, string>;
  /** with `journal: true`: the directory journald writes the instance's journal to */
  journalDir?: string;
  /** Writes a unit file into the instance's config dir and reloads the manager. */
  addUnit(name: string, text: string): Promise<void>;
  /** `systemctl --user ARGS` with the instance's environment; stdout, stderr and exit code. */
  ctl(...args: string[]): Promise<{ code: number; out: string }>;
  stop(): Promise<void>;
}

const SYSTEMD = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"].find((p) => existsSync(p));

/** Why a user instance (with `journal`: and its journald) cannot run here, or null when it can be tried. */
export function systemdUserUnavailable(o: { journal?: boolean } = {}): string | null {
  if (!SYSTEMD) return "systemd (the systemd package) is not installed";
  if (o.journal && !JOURNALD) return "systemd-journald (the systemd package) is not installed";
  if (o.journal && !CGROUP_ROOTS.length) return "no writable cgroup hierarchy (to give the manager a user@0.service cgroup)";
  if (!Bun.which("systemctl")) return "systemctl is not installed";
  if (!Bun.which("unshare")) return "unshare (util-linux) is not installed";
  if (process.getuid?.() !== 0) return "starting systemd in a private mount namespace needs root";
  return null;
}

const JOURNALD = ["/usr/lib/systemd/systemd-journald", "/lib/systemd/systemd-journald"].find((p) => existsSync(p));
/** The cgroup hierarchies a process can be moved in here (hybrid: name=systemd and unified; or pure v2). */
const CGROUP_ROOTS = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"].filter((d) => existsSync(join(d, "cgroup.procs")));

/** Removes a cgroup directory tree, deepest first (cgroup dirs are removed with rmdir only). */
function removeCgroup(path: string) {
  if (!existsSync(path)) return;
  for (const e of readdirSync(path)) {
    const p = join(path, e);
    try {
      if (statSync(p).isDirectory()) removeCgroup(p);
    } catch {
      /* gone */
    }
  }
  try {
    rmdirSync(path);
  } catch {
    /* still has a process: left for the system */
  }
}

export async function startSystemdUser(o: { journal?: boolean } = {}): Promise<SystemdUser> {
  const dir = mkdtempSync(join(tmpdir(), "sm-systemd-user-"));
  const rt = join(dir, "runtime");
  const cfg = join(dir, "config");
  mkdirSync(rt, { mode: 0o700 });
  chmodSync(rt, 0o700);
  mkdirSync(join(cfg, "systemd", "user"), { recursive: true });
  const env = { XDG_RUNTIME_DIR: rt, XDG_CONFIG_HOME: cfg };
  const journalDir = o.journal ? join(dir, "journal") : undefined;
  // a slice of its own per instance, so parallel instances never share a cgroup
  const cgroup = `sm-e2e-${process.pid}x${Date.now().toString(36)}.slice/user@0.service`;
  let script = `mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/systemd/system && exec ${SYSTEMD} --user`;
  if (journalDir) {
    if (!JOURNALD) throw new Error("systemd-journald is not installed");
    if (!CGROUP_ROOTS.length) throw new Error("no writable cgroup hierarchy to give the user manager a user@0.service cgroup");
    mkdirSync(journalDir);
    script = [
      "mount -t tmpfs -o mode=755 tmpfs /run",
      "mkdir -p /run/systemd/system /run/log/journal",
      `mount --bind ${journalDir} /run/log/journal`,
      `{ ${JOURNALD} & echo $! > ${dir}/journald.pid; }`,
      "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [ -S /run/systemd/journal/stdout ] && break; sleep 0.1; done",
      ...CGROUP_ROOTS.map((r) => `mkdir -p ${r}/${cgroup} && echo $$ > ${r}/${cgroup}/cgroup.procs`),
      `exec ${SYSTEMD} --user`,
    ].join(" && ");
  }
  const proc: Subprocess = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], {
    env: { ...process.env, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe",
  });
  let log = "";
  void (async () => {
    const d = new TextDecoder();
    for await (const c of proc.stderr as ReadableStream<Uint8Array>) log = (log + d.decode(c)).slice(-8000);
  })();
  const ctl = async (...args: string[]) => {
    const p = Bun.spawn(["systemctl", "--user", "--no-pager", ...args], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
    const [o, e] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    clearTimeout(timer);
    return { code, out: o + e };
  };
  const stop = async () => {
    proc.kill("SIGTERM");
    const ok = await Promise.race([proc.exited.then(() => true), Bun.sleep(5000).then(() => false)]);
    if (!ok) proc.kill("SIGKILL");
    await proc.exited;
    if (journalDir) {
      // journald outlives the manager (it is orphaned, not killed): stopped by the pid it wrote
      const pid = Number(existsSync(join(dir, "journald.pid")) ? readFileSync(join(dir, "journald.pid"), "utf8").trim() : NaN);
      if (Number.isSafeInteger(pid) && pid > 1) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          /* already gone */
        }
      }
      for (const r of CGROUP_ROOTS) removeCgroup(join(r, cgroup.split("/")[0]!));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // ready when the manager answers on its private socket (bounded: 15 s)
  const end = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`systemd --user exited (${proc.exitCode}): ${log.trim() || "no output"}`);
    }
    // (is-system-running would answer "offline": outside the namespace systemd is not booted)
    if (existsSync(join(rt, "systemd", "private")) && /SystemState=(running|degraded)/.test((await ctl("show", "--property=SystemState")).out)) break;
    if (Date.now() > end) {
      await stop();
      throw new Error(`systemd --user did not come up in 15 s: ${log.trim()}`);
    }
    await Bun.sleep(100);
  }
  return {
    dir,
    env,
    journalDir,
    ctl,
    async addUnit(name, text) {
      writeFileSync(join(cfg, "systemd", "user", name), text);
      const r = await ctl("daemon-reload");
      if (r.code !== 0) throw new Error(`daemon-reload failed: ${r.out}`);
    },
    stop,
  };
}
