/**
 * The live host services (createHostServices) against a real OpenSSH server, where the other
 * remediation tests use stand-ins: `sshd -t` accepts a good configuration and refuses a broken
 * one, and the reload makes the running sshd serve the new configuration.
 *
 * It writes a drop-in under /etc/ssh/sshd_config.d and signals the sshd named by /run/sshd.pid,
 * so it runs only as root and only under CI=true or SERVERMIND_TEST_HOST_SSHD=1. The sshd it
 * starts listens on 127.0.0.1 only and is stopped here; the drop-in is removed.
 */
import { expect, test } from "bun:test";
import { existsSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { createHostServices } from "../../../../agent/control/remediate/effects.ts";
import { IN_CI, requireComponent } from "../../../support/ci.ts";
import { freePort } from "../../../../src/store/postgres/embedded.ts";

const SSHD = "/usr/sbin/sshd";
const DROP_IN = "/etc/ssh/sshd_config.d/zz-servermind-test.conf";
const PID_FILE = "/run/sshd.pid";

/** The identification string sshd sends first on a new connection. */
async function banner(port: number): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no SSH banner on 127.0.0.1:${port} within 3 s`)), 3000);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(s, d) {
          clearTimeout(timer);
          s.end();
          resolve(Buffer.from(d).toString().trim());
        },
        error(_s, e) {
          clearTimeout(timer);
          reject(e);
        },
      },
    }).catch(reject);
  });
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

test("sshd -t accepts a good drop-in and refuses a broken one; the reload makes sshd serve the new configuration", async () => {
  if (!IN_CI && process.env.SERVERMIND_TEST_HOST_SSHD !== "1") {
    console.warn("\n*** SKIPPING: this test changes /etc/ssh on this machine; run it as root with SERVERMIND_TEST_HOST_SSHD=1 ***\n");
    return;
  }
  if (!requireComponent(existsSync(SSHD) && process.getuid?.() === 0, "openssh-server (/usr/sbin/sshd), run as root")) return;
  if (existsSync("/run/systemd/system")) throw new Error("systemd runs here: the reload would go to ssh.service, not to the sshd this test starts");
  if (existsSync(PID_FILE)) throw new Error(`${PID_FILE} exists: an sshd already runs on this machine`);
  const services = createHostServices();
  const port = await freePort();
  let sshd: ReturnType<typeof Bun.spawn> | undefined;
  try {
    // the Debian configuration as installed validates (the privilege separation directory is
    // made when missing, as ssh.service would)
    const first = services.validateSshd();
    expect(first.status).toBe("done");
    expect(existsSync("/run/sshd")).toBe(true);

    sshd = Bun.spawn([SSHD, "-D", "-e", "-p", String(port), "-o", "ListenAddress=127.0.0.1", "-o", `PidFile=${PID_FILE}`], { stdout: "ignore", stderr: "pipe" });
    await until("sshd's pid file", async () => (existsSync(PID_FILE) && Number(readFileSync(PID_FILE, "utf8")) === sshd!.pid ? true : undefined));
    const before = await until("the SSH banner", () => banner(port));
    expect(before).toStartWith("SSH-2.0-OpenSSH_");

    const tag = `servermind-${randomUUID().slice(0, 8)}`;
    writeFileSync(DROP_IN, `VersionAddendum ${tag}\n`);
    expect(services.validateSshd()).toMatchObject({ status: "done" });
    const reload = services.reloadSshd();
    expect(reload).toMatchObject({ status: "done" });
    expect(reload.output).toContain(`pid ${sshd.pid}`);
    const after = await until("the reloaded configuration", async () => {
      const b = await banner(port);
      return b.endsWith(tag) ? b : undefined;
    });
    expect(after).toBe(`${before} ${tag}`);
    expect(sshd.exitCode).toBeNull(); // the same process serves on: a reload, not a restart

    writeFileSync(DROP_IN, "VersionAddendum x\nNoSuchOption yes\n");
    const bad = services.validateSshd();
    expect(bad.status).toBe("failed");
    expect(bad.output).toMatch(/Bad configuration option: NoSuchOption/i);
  } finally {
    rmSync(DROP_IN, { force: true });
    if (sshd) {
      sshd.kill();
      await sshd.exited;
    }
    rmSync(PID_FILE, { force: true });
  }
}, 30_000);
