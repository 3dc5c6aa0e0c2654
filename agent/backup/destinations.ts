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
  | ({ type: "gcs" } & S3PresetConfig)
  | ({ type: "b2" } & S3PresetConfig & { region: string })
  | ({ type: "r2" } & S3PresetConfig & { accountId: string })
  | ({ type: "wasabi" } & S3PresetConfig & { region: string })
  | ({ type: "azure" } & AzureConfig);

/**
 * A hosted S3-compatible service by name: the endpoint (and region) follow from the preset, so a
 * user gives only the bucket and keys. `endpoint` overrides the preset's (a private endpoint, or
 * a test's local S3 server).
 */
export type S3PresetConfig = Omit<S3Config, "endpoint"> & { endpoint?: string };

/** The S3 configuration a preset stands for (docs/backup-format.md, the S3 table). */
export function s3Preset(cfg: Extract<DestinationConfig, { type: "gcs" | "b2" | "r2" | "wasabi" }>): S3Config {
  const { type, ...rest } = cfg;
  const base = { ...rest } as S3Config & { accountId?: string };
  delete base.accountId;
  const need = (v: string | undefined, what: string) => {
    if (!v || !/^[a-z0-9-]{1,64}$/i.test(v)) throw new BackupError("usage", `${type}: ${what} is required (letters, digits and dashes)`);
    return v;
  };
  switch (type) {
    case "gcs": // the XML interoperability API, HMAC keys; GCS ignores the region but SigV4 needs one
      return { ...base, endpoint: cfg.endpoint ?? "https://storage.googleapis.com", region: cfg.region ?? "auto" };
    case "b2":
      return { ...base, endpoint: cfg.endpoint ?? `https://s3.${need(cfg.region, "region (e.g. us-west-004)")}.backblazeb2.com` };
    case "r2":
      return { ...base, endpoint: cfg.endpoint ?? `https://${need(cfg.accountId, "accountId")}.r2.cloudflarestorage.com`, region: "auto" };
    case "wasabi":
      return { ...base, endpoint: cfg.endpoint ?? `https://s3.${need(cfg.region, "region (e.g. eu-central-1)")}.wasabisys.com` };
  }
}

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
    case "gcs":
    case "b2":
    case "r2":
    case "wasabi":
      return new S3Destination(s3Preset(cfg));
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
