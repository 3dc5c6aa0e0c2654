import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { BackupError } from "../../../agent/backup/error.ts";
import { SmbDestination, type SmbConfig } from "../../../agent/backup/smb.ts";
import { requireComponent } from "../../support/ci.ts";
import { smbdAvailable, startSmbd, type TestSmbd } from "../../support/smbd.ts";
import { serverFolderSuite } from "./destination.case.ts";
import { rawFiles, serverDestinationCases } from "./server-destination.case.ts";

const available = requireComponent(smbdAvailable(), "samba's smbd + smbclient (run as root) for the SMB destination");
let smbd: TestSmbd;

const dest = (sub: string, over: Partial<SmbConfig> = {}) =>
  new SmbDestination({ host: "127.0.0.1", port: smbd.port, share: smbd.share, username: smbd.username, password: smbd.password, root: sub, timeoutMs: 10_000, ...over });

if (available) {
  beforeAll(async () => {
    smbd = await startSmbd();
  }, 40_000);
  afterAll(async () => {
    await smbd?.stop();
  });

  serverFolderSuite("SMB (samba smbd, SMB3 encrypted)", () => smbd.dataDir, (sub) => dest(sub));

  serverDestinationCases("SMB", () => ({
    dest: (sub) => dest(sub),
    raw: (sub) => rawFiles(join(smbd.dataDir, sub)),
    kill: () => smbd.kill(),
    restart: () => smbd.restart(),
    config: (sub) => ({ type: "smb", host: "127.0.0.1", port: smbd.port, share: smbd.share, username: smbd.username, password: smbd.password, root: sub, timeoutMs: 10_000 }),
  }), { treeMb: 8 }); // a process per smbclient run: the default 24 MB tree takes minutes here

  test("SMB: a wrong password is refused without the credentials in the error or on smbclient's command line", async () => {
    const d = dest("auth", { password: "not-the-password-123" });
    try {
      const err = await d.put("config", Buffer.from("x")).catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");
      expect((err as Error).message).toContain("refused");
      expect((err as Error).message).not.toContain("not-the-password-123");
      expect(await d.exists("config").catch((e) => (e as Error).message)).not.toContain("not-the-password-123");
    } finally {
      await d.close();
    }
    expect(() => dest("a b")).toThrow("plain folder path");
    expect(() => dest("x;rm")).toThrow("plain folder path");
  });

  test("SMB: a server that accepts TCP but never answers fails within the deadline", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const d = new SmbDestination({ host: "127.0.0.1", port: silent.port, share: "s", username: "u", password: "p", root: "r", timeoutMs: 2000 });
    try {
      const t = Date.now();
      const err = await d.get("config").catch((e) => e);
      expect(err).toBeInstanceOf(BackupError);
      expect((err as BackupError).code).toBe("destination");
      expect(Date.now() - t).toBeLessThan(6000);
    } finally {
      silent.stop(true);
      await d.close();
    }
  });
}
