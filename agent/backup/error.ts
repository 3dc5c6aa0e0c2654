/** The one error type of the backup engine; `code` names the failure for callers and tests. */
export type BackupErrorCode =
  | "not_found"
  | "exists"
  | "bad_password"
  | "corrupt"
  | "missing"
  | "locked"
  | "bad_format"
  | "usage"
  /** the destination could not be reached, refused the credentials, or did not answer in time */
  | "destination";

export class BackupError extends Error {
  constructor(
    readonly code: BackupErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "BackupError";
  }
}
