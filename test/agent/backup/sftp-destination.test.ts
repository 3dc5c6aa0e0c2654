import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BackupError } from "../../../agent/backup/error.ts";
import { fingerprint, pinnedFingerprint, SftpDestination } from "../../../agent/backup/sftp.ts";
import { requireComponent } from "../../support/ci.ts";
import { sshdAvailable, startSshd, type TestSshd } from "../../support/sshd.ts";
import { serverFolderSuite } from "./destination.case.ts";
import { rawFiles, serverDestinationCases } from "./server-destination.case.ts";
import { describeTree, mixedTree, PASSWORD } from "./support.ts";

const available = requireComponent(sshdAvailable(), "openssh-server (/usr/sbin/sshd) for the SFTP destination");
let sshd: TestSshd;

const dest = (sub: string, over: Partial<ConstructorParameters<typeof SftpDestination>[0]> = {}) =>
  new SftpDestination({
    host: "127.0.0.1",
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.privateKey,
    hostKey: sshd.hostKey,
    root: join(sshd.dataDir, sub),
    timeoutMs: 10_000,
    ...over,
  });

if (available) {
  beforeAll(async () => {
    sshd = await startSshd();
  }, 30_000);
  afterAll(async () => {
    await sshd?.stop();
  });

  serverFolderSuite("SFTP (OpenSSH sshd)", () => sshd.dataDir, (sub) => dest(sub));

  serverDestinationCases("SFTP", () => ({
    dest: (sub) => dest(sub),
    raw: (sub) => rawFiles(join(sshd.dataDir, sub)),
    kill: () => sshd.kill(),
    restart: () => sshd.restart(),
    config: (sub) => ({ type: "sftp", host: "127.0.0.1", port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostKey: sshd.hostKey, root: join(sshd.dataDir, sub), timeoutMs: 10_000 }),
  }));

  test("SFTP: a server with another host key is refused before any login (no trust on first use)", async () => {
    const d = dest("pin", { hostKey: sshd.otherHostKey });
    const err = await d.exists("config").catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("does not match the pinned key");
    // the fingerprint form pins as well
    const byPrint = dest("pin", { hostKey: pinnedFingerprint(sshd.hostKey) });
    expect(await byPrint.exists("config")).toBe(false);
    await byPrint.close();
    expect(fingerprint(Buffer.from(sshd.hostKey.split(" ")[1]!, "base64"))).toBe(pinnedFingerprint(sshd.hostKey));
  });

  test("SFTP: a refused login is a destination error that does not carry the credentials", async () => {
    const d = dest("auth", { privateKey: undefined, password: "not-the-password-123" });
    const err = await d.exists("config").catch((e) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).not.toContain("not-the-password-123");
  });

  test("SFTP: a server that accepts TCP but never answers fails within the deadline", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const d = new SftpDestination({ host: "127.0.0.1", port: silent.port, username: "x", password: "y", hostKey: sshd.hostKey, root: "/r", timeoutMs: 1500 });
      const t = Date.now();
      const err = await d.get("config").catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");
      expect(Date.now() - t).toBeLessThan(5000);
    } finally {
      silent.stop(true);
    }
  });
}

if (available) {
  test("SFTP through the CLI with --dest-config: init, backup, verify, restore; the private key appears in no output", async () => {
    const work = await mkdtemp(join(tmpdir(), "sm-cli-sftp-"));
    try {
      const src = join(work, "src");
      await mixedTree(src);
      const cfgFile = join(work, "dest.json");
      await writeFile(cfgFile, JSON.stringify({ type: "sftp", host: "127.0.0.1", port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostKey: sshd.hostKey, root: join(sshd.dataDir, "cli"), timeoutMs: 10_000 }), { mode: 0o600 });
      const cli = resolve(import.meta.dir, "../../../agent/backup/cli.ts");
      const keyLine = sshd.privateKey.split("\n")[1]!;
      const run = async (...args: string[]) => {
        const p = Bun.spawn([process.execPath, cli, "--dest-config", cfgFile, ...args], { env: { ...process.env, SERVERMIND_BACKUP_PASSWORD: PASSWORD }, stdout: "pipe", stderr: "pipe" });
        const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
        expect(stdout + stderr).not.toContain(keyLine);
        expect(code).toBe(0);
        return JSON.parse(stdout.trim().split("\n").at(-1)!);
      };
      expect((await run("init", "--chunk-min", "16384", "--chunk-avg", "65536", "--chunk-max", "262144")).recovery_key).toBeTruthy();
      expect((await run("backup", src)).newChunks).toBeGreaterThan(0);
      expect((await run("verify")).ok).toBe(true);
      await run("restore", "latest", join(work, "out"));
      expect(await describeTree(join(work, "out", src))).toEqual(await describeTree(src));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 120_000);
}
