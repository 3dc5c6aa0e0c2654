/**
 * A destination from its configuration (what a backup job stores, and the agent receives inside
 * a signed command), and the same configuration with its secrets masked for display and logs.
 * Configuration and atomicity of each: docs/backup-format.md#destinations.
 */
import { AzureBlobDestination, type AzureConfig } from "./azure.ts";
import type { Destination } from "./destination.ts";
import { BackupError } from "./error.ts";
import { FtpDestination, type FtpConfig } from "./ftp.ts";
import { LocalDestination } from "./local.ts";
import { S3Destination, type S3Config } from "./s3.ts";
import { SftpDestination, type SftpConfig } from "./sftp.ts";
import { SmbDestination, type SmbConfig } from "./smb.ts";
import { WebdavDestination, type WebdavConfig } from "./webdav.ts";

export type DestinationConfig =
  | { type: "local"; path: string; fsync?: boolean }
  | ({ type: "sftp" } & SftpConfig)
  | ({ type: "webdav" } & WebdavConfig)
  | ({ type: "ftp" } & FtpConfig)
  | ({ type: "smb" } & SmbConfig)
  | ({ type: "s3" } & S3Config)
  | ({ type: "azure" } & AzureConfig);

export type ClosableDestination = Destination & { close?(): Promise<void> };

export function openDestination(cfg: DestinationConfig): ClosableDestination {
  switch (cfg.type) {
    case "local":
      return new LocalDestination(cfg.path, cfg.fsync ?? true);
    case "sftp":
      return new SftpDestination(cfg);
    case "webdav":
      return new WebdavDestination(cfg);
    case "ftp":
      return new FtpDestination(cfg);
    case "smb":
      return new SmbDestination(cfg);
    case "s3":
      return new S3Destination(cfg);
    case "azure":
      return new AzureBlobDestination(cfg);
    default:
      throw new BackupError("usage", `unknown destination type ${JSON.stringify((cfg as { type?: unknown }).type)}`);
  }
}

/** Fields that hold a secret, in any destination's configuration. */
export const SECRET_FIELDS = ["password", "privateKey", "passphrase", "secretAccessKey", "sessionToken", "accountKey", "sasToken"] as const;

/** The configuration with every secret replaced by "********" (for display, logs and errors). */
export function redact(cfg: DestinationConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cfg };
  for (const f of SECRET_FIELDS) if (out[f] !== undefined && out[f] !== "") out[f] = "********";
  return out;
}
