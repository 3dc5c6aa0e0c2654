/**
 * The sizes of the network destinations' listings, read defensively: the FTP listing parser
 * (MLSD, Unix and MS-DOS LIST), smbclient's `ls` output, a WebDAV multistatus, each with the
 * server's real shape, and what each does with a line it cannot read: an error naming it, never a
 * skipped object or a guessed size. The real servers' answers are in each destination's own test
 * (listSizes in the shared suite, the repository size through Control).
 */
import { afterAll, expect, test } from "bun:test";
import { BackupError } from "../../../agent/backup/error.ts";
import { parseFtpListing } from "../../../agent/backup/ftp.ts";
import { listedSize } from "../../../agent/backup/remote.ts";
import { parseSmbListing } from "../../../agent/backup/smb.ts";
import { parseMultistatus, WebdavDestination } from "../../../agent/backup/webdav.ts";
import { repositoryBytes } from "../../../agent/control/backups/repo-size.ts";
import type { DestinationConfig } from "../../../agent/backup/destinations.ts";

const files = (l: ReturnType<typeof parseFtpListing>) => l.map((f) => ({ name: f.name, type: f.isDirectory ? "dir" : f.isFile ? "file" : "other", size: f.size }));

test("listedSize: digits or a safe integer; anything else is a destination error naming the entry", () => {
  expect(listedSize("524288", "x")).toBe(524288);
  expect(listedSize(0, "x")).toBe(0);
  for (const bad of [undefined, "", "12a", "-1", -1, 1.5, Number.NaN, "9".repeat(20), 2 ** 60, null]) {
    const err = (() => {
      try {
        listedSize(bad, "SFTP list data/ab/x");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe("destination");
    expect((err as Error).message).toContain("SFTP list data/ab/x");
  }
});

test("FTP: vsftpd's LIST (numeric owners, recent and older dates), MLSD and MS-DOS listings give names, kinds and sizes", () => {
  const vsftpd = [
    "drwx------    2 998      998          4096 Dec 06 09:01 ab",
    "-rw-------    1 998      998       1048577 Dec 06 09:01 config",
    "-rw-------    1 998      998             0 Jan 02  2025 empty",
    "lrwxrwxrwx    1 0        0               4 Dec 06 09:01 link -> config",
    "",
  ].join("\r\n");
  expect(files(parseFtpListing(vsftpd))).toEqual([
    { name: "ab", type: "dir", size: 4096 },
    { name: "config", type: "file", size: 1048577 },
    { name: "empty", type: "file", size: 0 },
    { name: "link", type: "other", size: 4 },
  ]);
  // ls -l with named owners (ProFTPD, some with spaces in a group), a "total" line, . and ..
  expect(files(parseFtpListing("total 8\r\ndrwxr-xr-x   3 backup   Domain Users     4096 Mar  1 12:00 .\r\ndrwxr-xr-x   3 root root 4096 2026-03-01 12:00 ..\r\n-rw-r--r--+  1 backup   Domain Users       12 Mar  1 12:00 a b\r\n")))
    .toEqual([{ name: "a b", type: "file", size: 12 }]);
  const mlsd = "type=cdir;sizd=4096;modify=20261206090100;UNIX.mode=0700; .\r\ntype=pdir;sizd=4096; ..\r\ntype=dir;sizd=4096;modify=20261206090100; data\r\ntype=file;size=7;modify=20261206090100;UNIX.mode=0600; config\r\ntype=OS.unix=symlink;size=6; l\r\n";
  expect(files(parseFtpListing(mlsd))).toEqual([
    { name: "data", type: "dir", size: 0 },
    { name: "config", type: "file", size: 7 },
    { name: "l", type: "other", size: 0 },
  ]);
  expect(files(parseFtpListing("12-06-26  09:01AM       <DIR>          data\r\n12-06-26  09:01AM                 1234 config\r\n"))).toEqual([
    { name: "data", type: "dir", size: 0 },
    { name: "config", type: "file", size: 1234 },
  ]);
  expect(parseFtpListing("")).toEqual([]);
});

test("FTP: a line that is none of the forms, or a size that is not a number, is an error naming the line; a file without an MLSD size has no size (listSizes refuses it)", () => {
  const good = "-rw-------    1 998      998            10 Dec 06 09:01 config\r\n";
  for (const bad of [
    "-rw-------    1 998      998            10 Dec 06 09:01\r\n", // no name
    "-rw-------    1 998      998          1O24 Dec 06 09:01 config\r\n", // letter O in the size
    "some banner text the server mixed in\r\n",
    "550 Permission denied.\r\n",
    "type=file;size=12x; config\r\n",
    `-rw-------    1 998      998            10 Dec 06 09:01 ${"x".repeat(9000)}\r\n`,
  ]) {
    expect(() => parseFtpListing(good + bad)).toThrow(/unreadable FTP listing line|no readable size|over 8192/);
  }
  const [f] = parseFtpListing("type=file;modify=20261206090100; config\r\n");
  expect(f!.isFile).toBe(true);
  expect(() => listedSize(f!.size, "FTP list config")).toThrow("FTP list config: the server's listing gives no readable size (none)");
});

const smbOut =
  "  .                                   D        0  Sun Dec  6 09:02:56 2026\n  ..                                  D        0  Sun Dec  6 09:02:56 2026\n" +
  "  config                              A        7  Sun Dec  6 09:02:56 2026\n  data                                D        0  Sun Dec  6 09:02:56 2026\n\n" +
  "\\job-1\\host\\data\n  .                                   D        0  Sun Dec  6 09:02:56 2026\n  ab                                  D        0  Sun Dec  6 09:02:56 2026\n\n" +
  "\\job-1\\host\\data\\ab\n  abc                                 A    12345  Sun Dec  6 09:02:56 2026\n  New Folder (2)                      DH       0  Mon Jan 12 10:00:00 2026\n  a name longer than thirty columns, with spaces       AN  3000000000  Mon Jan 12 10:00:00 2026\n\n" +
  "\t\t264212084 blocks of size 1024. 60833428 blocks available\n";

test("SMB: smbclient's recursive ls (as samba's smbclient prints it) gives folders, names and sizes", () => {
  expect(parseSmbListing(smbOut)).toEqual([
    { dir: "", name: "config", folder: false, size: 7 },
    { dir: "", name: "data", folder: true, size: 0 },
    { dir: "\\job-1\\host\\data", name: "ab", folder: true, size: 0 },
    { dir: "\\job-1\\host\\data\\ab", name: "abc", folder: false, size: 12345 },
    { dir: "\\job-1\\host\\data\\ab", name: "New Folder (2)", folder: true, size: 0 },
    { dir: "\\job-1\\host\\data\\ab", name: "a name longer than thirty columns, with spaces", folder: false, size: 3_000_000_000 },
  ]);
});

test("SMB: a line smbclient's ls does not print (a failed folder's NT_STATUS, a cut line) is an error naming it", () => {
  for (const bad of [
    "NT_STATUS_ACCESS_DENIED listing \\job-1\\host\\data\\*\n",
    "  abc                                 A    12345\n",
    "  abc                                 A    12x45  Sun Dec  6 09:02:56 2026\n",
    "Domain=[WORKGROUP] OS=[] Server=[]\n",
  ]) {
    expect(() => parseSmbListing(smbOut + bad)).toThrow("unreadable smbclient listing line");
  }
});

const DAV_BASE = new URL("https://dav.example/backup/job-1/");
const multistatus = (responses: string) => `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">${responses}</D:multistatus>`;
const response = (href: string, props: string, missing = "") =>
  `<D:response><D:href>${href}</D:href><D:propstat><D:prop>${props}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>` +
  (missing ? `<D:propstat><D:prop>${missing}</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>` : "") +
  "</D:response>";

test("WebDAV: a multistatus (as mod_dav answers: a collection's length in a 404 propstat) gives paths, collections and getcontentlength", () => {
  const xml = multistatus(
    response("/backup/job-1/", "<D:resourcetype><D:collection/></D:resourcetype>", "<D:getcontentlength/>") +
      response("/backup/job-1/config", "<D:resourcetype/><D:getcontentlength>1048577</D:getcontentlength>") +
      response("/backup/job-1/odd", "<D:resourcetype/>", "<D:getcontentlength/>"),
  );
  expect(parseMultistatus(xml, DAV_BASE)).toEqual([
    { path: "/backup/job-1/", folder: true, size: undefined },
    { path: "/backup/job-1/config", folder: false, size: "1048577" },
    { path: "/backup/job-1/odd", folder: false, size: undefined },
  ]);
  expect(() => parseMultistatus("<html><body>Login</body></html>", DAV_BASE)).toThrow("not a DAV:multistatus");
  expect(() => parseMultistatus('<D:multistatus xmlns:D="DAV:"><D:response><D:href>', DAV_BASE)).toThrow();
  expect(() => parseMultistatus(multistatus("<D:response><D:propstat/></D:response>"), DAV_BASE)).toThrow("without an href");
});

// a WebDAV server (Bun.serve on 127.0.0.1, plain http: allowHttp) whose PROPFIND gives one file no
// getcontentlength and another a garbled one
const bodies: Record<string, string> = {
  "/r/": multistatus(
    response("/r/", "<D:resourcetype><D:collection/></D:resourcetype>") +
      response("/r/config", "<D:resourcetype/><D:getcontentlength>12</D:getcontentlength>") +
      response("/r/keys/", "<D:resourcetype><D:collection/></D:resourcetype>"),
  ),
  "/r/keys/": multistatus(response("/r/keys/", "<D:resourcetype><D:collection/></D:resourcetype>") + response("/r/keys/password", "<D:resourcetype/>", "<D:getcontentlength/>")),
};
const fake = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (req.method === "PROPFIND" && bodies[new URL(req.url).pathname] ? new Response(bodies[new URL(req.url).pathname], { status: 207 }) : new Response("no", { status: 404 })) });
afterAll(() => fake.stop(true));

test("WebDAV: an entry without getcontentlength is listed by name, but listSizes and the repository size refuse it with the reason (null: unknown)", async () => {
  const cfg = { url: `http://127.0.0.1:${fake.port}/r/`, allowHttp: true, timeoutMs: 5000 };
  const d = new WebdavDestination(cfg);
  expect((await d.list("")).sort()).toEqual(["config", "keys/password"]);
  const err = await d.listSizes("").catch((e) => e);
  expect(err).toBeInstanceOf(BackupError);
  expect((err as Error).message).toContain("WebDAV PROPFIND keys/password");
  expect((err as Error).message).toContain("no readable size");
  const why: string[] = [];
  expect(await repositoryBytes({ type: "webdav", ...cfg } as DestinationConfig, { onError: (w) => why.push(w) })).toBeNull();
  expect(why.join()).toContain("keys/password");
  bodies["/r/keys/"] = bodies["/r/keys/"]!.replace("<D:resourcetype/>", "<D:resourcetype/><D:getcontentlength>3</D:getcontentlength>").replace(/<D:propstat><D:prop><D:getcontentlength\/>.*?<\/D:propstat>/, "");
  expect(await repositoryBytes({ type: "webdav", ...cfg } as DestinationConfig)).toBe(15);
});
