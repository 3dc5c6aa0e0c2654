import { expect, test } from "bun:test";
import { AzureBlobDestination } from "../../../agent/backup/azure.ts";
import { openDestination, redact, SECRET_FIELDS, type DestinationConfig } from "../../../agent/backup/destinations.ts";
import { BackupError } from "../../../agent/backup/error.ts";
import { FtpDestination } from "../../../agent/backup/ftp.ts";
import { LocalDestination } from "../../../agent/backup/local.ts";
import { S3Destination } from "../../../agent/backup/s3.ts";
import { SftpDestination } from "../../../agent/backup/sftp.ts";
import { SmbDestination } from "../../../agent/backup/smb.ts";
import { WebdavDestination } from "../../../agent/backup/webdav.ts";

const configs: [DestinationConfig, unknown][] = [
  [{ type: "local", path: "/tmp/x" }, LocalDestination],
  [{ type: "sftp", host: "h", username: "u", privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----x", passphrase: "pp", hostKey: "SHA256:abc", root: "/r" }, SftpDestination],
  [{ type: "webdav", url: "https://h/r/", username: "u", password: "pw-1" }, WebdavDestination],
  [{ type: "ftp", host: "h", username: "u", password: "pw-2", root: "/r" }, FtpDestination],
  [{ type: "smb", host: "h", share: "s", username: "u", password: "pw-3", root: "r" }, SmbDestination],
  [{ type: "s3", endpoint: "https://s3.example", bucket: "b", accessKeyId: "AK", secretAccessKey: "sk-4", sessionToken: "st-5", root: "r" }, S3Destination],
  [{ type: "azure", endpoint: "https://a.blob.core.windows.net", container: "c", accountName: "a", accountKey: "a2V5", root: "r" }, AzureBlobDestination],
];

test("openDestination builds each destination type from its configuration; an unknown type is a usage error", () => {
  for (const [cfg, cls] of configs) expect(openDestination(cfg)).toBeInstanceOf(cls as new (...a: never[]) => unknown);
  const err = (() => {
    try {
      openDestination({ type: "tape" } as unknown as DestinationConfig);
    } catch (e) {
      return e;
    }
  })();
  expect(err).toBeInstanceOf(BackupError);
  expect((err as BackupError).code).toBe("usage");
});

test("redact masks every secret of every destination type and keeps the rest", () => {
  for (const [cfg] of configs) {
    const shown = JSON.stringify(redact(cfg));
    for (const f of SECRET_FIELDS) {
      const v = (cfg as Record<string, unknown>)[f];
      if (typeof v === "string") expect(shown).not.toContain(v);
    }
    expect(redact(cfg).type).toBe(cfg.type);
  }
  expect(redact(configs[1]![0]).host).toBe("h");
  expect(redact(configs[5]![0]).accessKeyId).toBe("AK");
});
