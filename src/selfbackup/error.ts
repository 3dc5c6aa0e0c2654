/** The one error type of the server's self-backup; `code` names the failure for the CLI and tests. */
export type SelfBackupErrorCode = "usage" | "bad_format" | "version" | "not_empty" | "not_found" | "database";

export class SelfBackupError extends Error {
  constructor(
    readonly code: SelfBackupErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "SelfBackupError";
  }
}
