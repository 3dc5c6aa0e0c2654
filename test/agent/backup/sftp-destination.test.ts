import { afterAll, beforeAll, expect, test } from "bun:test";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { BackupError } from "../../../agent/backup/error.ts";
import { fingerprint, pinnedFingerprint, SftpDestination } from "../../../agent/backup/sftp.ts";
import { requireComponent } from "../../support/ci.ts";
import { sshdAvailable, startSshd, type TestSshd } from "../../support/sshd.ts";
import { destinationSuite } from "./destination.case.ts";
import { rawFiles, serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(sshdAvailable(), "openssh-server (/usr/sbin/sshd) for the SFTP destination");
let sshd: TestSshd;
let n = 0;

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

  destinationSuite("SFTP (OpenSSH sshd)", async () => {
    const sub = `suite-${++n}`;
    const d = dest(sub);
    return { dest: d, cleanup: async () => { await d.close(); await rm(join(sshd.dataDir, sub), { recursive: true, force: true }); } };
  });

  serverDestinationCases("SFTP", () => ({
    dest: (sub) => dest(sub),
    raw: (sub) => rawFiles(join(sshd.dataDir, sub)),
    kill: () => sshd.kill(),
    restart: () => sshd.restart(),
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
