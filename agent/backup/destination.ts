/**
 * Where a repository lives. A destination stores named objects (names are `/`-separated,
 * e.g. `data/ab/ab12…`) and knows nothing of their content: everything but `keys/*` is
 * already encrypted when it gets here. Every destination (local, SFTP, S3, …) implements this
 * and passes the same suite (test/agent/backup/destination.case.ts).
 */
export interface Destination {
  /** Stores `data` under `name`, replacing any object of that name. Atomic: a reader sees the old object, the whole new one, or none — never a part. */
  put(name: string, data: Uint8Array): Promise<void>;
  /** The whole object; BackupError("not_found") if there is none. */
  get(name: string): Promise<Uint8Array>;
  /** Names of all objects whose name starts with `prefix` (a folder, e.g. `data/`), in no particular order. Half-written objects are never listed. */
  list(prefix: string): Promise<string[]>;
  /**
   * `list` with each object's size in bytes as the destination itself reports it in its listing
   * (a directory walk's stat, SFTP readdir attributes, FTP MLSD/LIST, WebDAV getcontentlength,
   * smbclient's listing, the S3 and Azure listings): the repository size is their sum. An entry
   * whose size the server does not give, or a listing line that cannot be read, is a
   * BackupError("destination"), never a guessed size.
   */
  listSizes(prefix: string): Promise<ObjectSize[]>;
  /** Removes the object; removing a missing object is not an error. */
  delete(name: string): Promise<void>;
  exists(name: string): Promise<boolean>;
}

/** An object of a listing and its size in bytes. */
export interface ObjectSize {
  name: string;
  size: number;
}

/** Object names are plain: letters, digits, `-`, `_`, `.` in `/`-separated parts, no `..`. */
export function checkName(name: string): void {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/.test(name)) {
    throw new Error(`bad object name: ${JSON.stringify(name)}`);
  }
}
