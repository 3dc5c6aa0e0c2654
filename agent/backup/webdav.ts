/**
 * A repository on a WebDAV server (Apache mod_dav, nginx dav, Nextcloud, …) over HTTPS, with
 * Bun's fetch: PUT, GET, HEAD, DELETE, MKCOL, MOVE and PROPFIND (Depth 1, folder by folder —
 * many servers refuse Depth infinity).
 *
 * Atomicity: PUT to a temporary name, then MOVE onto the final name with `Overwrite: T`; a killed
 * upload leaves only the temporary name, which `list` never returns. Basic authentication, so
 * https only (plain http is refused unless `allowHttp`, for a server on the same host).
 */
import { DOMParser, type Element } from "@xmldom/xmldom";
import { checkName, type Destination, type ObjectSize } from "./destination.ts";
import { BackupError } from "./error.ts";
import { DEFAULT_TIMEOUT_MS, isObjectPart, Limiter, listedSize, parents, tempName } from "./remote.ts";

/** Further MOVEs onto a name when one answers 404 under a concurrent MOVE onto the same name (see put). */
const MOVE_RETRIES = 8;

export interface WebdavConfig {
  /** the repository's folder, e.g. `https://dav.example.com/backup/web-1/` */
  url: string;
  username?: string;
  password?: string;
  /** PEM CA certificate(s) to trust for this server (a self-signed server: its own certificate) */
  ca?: string;
  allowHttp?: boolean;
  /** deadline of each request in ms */
  timeoutMs?: number;
  /** requests in flight at once */
  concurrency?: number;
}

const DAV = "DAV:";

export class WebdavDestination implements Destination {
  private readonly base: URL;
  private readonly auth?: string;
  private readonly timeoutMs: number;
  private readonly limit: Limiter;
  private readonly dirs = new Map<string, Promise<void>>();

  constructor(private readonly cfg: WebdavConfig) {
    const u = new URL(cfg.url);
    if (u.username || u.password) throw new BackupError("usage", "WebDAV: give the credentials as username/password, not in the URL");
    if (u.protocol !== "https:" && !(u.protocol === "http:" && cfg.allowHttp)) throw new BackupError("usage", "WebDAV: the URL must be https:// (Basic authentication would go in clear)");
    if (!u.pathname.endsWith("/")) u.pathname += "/";
    this.base = u;
    if (cfg.username !== undefined) this.auth = `Basic ${Buffer.from(`${cfg.username}:${cfg.password ?? ""}`).toString("base64")}`;
    this.timeoutMs = cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.limit = new Limiter(cfg.concurrency ?? 16);
  }

  private url(name: string): string {
    return new URL(name, this.base).href;
  }

  /** One request under the deadline; the body is read inside it too. Never throws on an HTTP status. */
  private request(method: string, name: string, init: { headers?: Record<string, string>; body?: Uint8Array | string } = {}, read = false): Promise<{ status: number; body: Uint8Array }> {
    return this.limit.run(async () => {
      const headers: Record<string, string> = { ...init.headers };
      if (this.auth) headers.authorization = this.auth;
      try {
        const res = await fetch(this.url(name), {
          method,
          headers,
          body: init.body,
          signal: AbortSignal.timeout(this.timeoutMs),
          redirect: "manual",
          ...(this.cfg.ca ? { tls: { ca: this.cfg.ca } } : {}),
        } as RequestInit);
        const body = read && res.ok ? new Uint8Array(await res.arrayBuffer()) : (await res.arrayBuffer().catch(() => undefined), new Uint8Array(0));
        return { status: res.status, body };
      } catch (e) {
        const err = e as Error;
        const why = err.name === "TimeoutError" || err.name === "AbortError" ? `no answer within ${this.timeoutMs} ms` : err.message;
        throw new BackupError("destination", `WebDAV ${method} ${name || "/"} at ${this.base.host}: ${why}`);
      }
    });
  }

  private fail(method: string, name: string, status: number): BackupError {
    const why = status === 401 || status === 403 ? "refused (check the user name and password)" : `HTTP ${status}`;
    return new BackupError("destination", `WebDAV ${method} ${name} at ${this.base.host}: ${why}`);
  }

  private mkcol(dir: string): Promise<void> {
    let made = this.dirs.get(dir);
    if (!made) {
      made = (async () => {
        const { status } = await this.request("MKCOL", dir ? `${dir}/` : "");
        // 405: it exists already; 409: its parent does not (the repository folder's parent must exist)
        if (status !== 201 && status !== 405) throw this.fail("MKCOL", dir || this.base.pathname, status);
      })().catch((e) => {
        this.dirs.delete(dir);
        throw e;
      });
      this.dirs.set(dir, made);
    }
    return made;
  }

  async put(name: string, data: Uint8Array): Promise<void> {
    checkName(name);
    for (const d of ["", ...parents(name)]) await this.mkcol(d);
    const temp = tempName(name);
    try {
      const put = await this.request("PUT", temp, { body: data, headers: { "content-type": "application/octet-stream" } });
      if (put.status !== 201 && put.status !== 204 && put.status !== 200) throw this.fail("PUT", name, put.status);
      // Apache's mod_dav replaces a destination by deleting it and then moving: when two MOVEs
      // onto one name cross, one finds the name gone between its check and its delete and
      // answers 404 although its source is there. That MOVE is tried again (bounded).
      let move = await this.request("MOVE", temp, { headers: { destination: this.url(name), overwrite: "T" } });
      for (let i = 0; i < MOVE_RETRIES && move.status === 404; i++) {
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * (i + 1)));
        move = await this.request("MOVE", temp, { headers: { destination: this.url(name), overwrite: "T" } });
      }
      if (move.status !== 201 && move.status !== 204) throw this.fail("MOVE", name, move.status);
    } catch (e) {
      await this.request("DELETE", temp).catch(() => {});
      throw e;
    }
  }

  async get(name: string): Promise<Uint8Array> {
    checkName(name);
    const { status, body } = await this.request("GET", name, {}, true);
    if (status === 404) throw new BackupError("not_found", `object ${name} not found`);
    if (status !== 200) throw this.fail("GET", name, status);
    return body;
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.walk(prefix)).map((e) => e.name);
  }

  /** Sizes from each file's DAV:getcontentlength in the PROPFIND answer (a 200 propstat). */
  async listSizes(prefix: string): Promise<ObjectSize[]> {
    return (await this.walk(prefix)).map((e) => ({ name: e.name, size: listedSize(e.size, `WebDAV PROPFIND ${e.name} at ${this.base.host} (getcontentlength)`) }));
  }

  private async walk(prefix: string): Promise<{ name: string; size: string | undefined }[]> {
    const out: { name: string; size: string | undefined }[] = [];
    const walk = async (rel: string): Promise<void> => {
      const { status, body } = await this.request(
        "PROPFIND",
        rel ? `${rel}/` : "",
        { headers: { depth: "1", "content-type": "application/xml" }, body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/><getcontentlength/></prop></propfind>' },
        true,
      );
      if (status === 404) return;
      if (status !== 207) throw this.fail("PROPFIND", rel || "/", status);
      const here = new URL(rel ? `${rel}/` : "", this.base).pathname;
      const subdirs: string[] = [];
      let entries;
      try {
        entries = parseMultistatus(new TextDecoder().decode(body), this.base);
      } catch (e) {
        throw new BackupError("destination", `WebDAV PROPFIND ${rel || "/"} at ${this.base.host}: ${(e as Error).message}`);
      }
      for (const { path, folder, size } of entries) {
        if (path.replace(/\/$/, "") === here.replace(/\/$/, "")) continue; // the folder itself
        const leaf = decodeURIComponent(path.replace(/\/$/, "").split("/").pop()!);
        if (!isObjectPart(leaf)) continue;
        const n = rel ? `${rel}/${leaf}` : leaf;
        if (folder) subdirs.push(n);
        else out.push({ name: n, size });
      }
      await Promise.all(subdirs.map(walk));
    };
    await walk(prefix.replace(/\/?[^/]*$/, ""));
    return out.filter((e) => e.name.startsWith(prefix));
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    const { status } = await this.request("DELETE", name);
    if (status !== 200 && status !== 204 && status !== 404) throw this.fail("DELETE", name, status);
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    const { status } = await this.request("HEAD", name);
    if (status === 404) return false;
    if (status !== 200) throw this.fail("HEAD", name, status);
    return true;
  }
}

/**
 * The href (as a path), collection-ness and DAV:getcontentlength (from a propstat whose status is
 * 200; undefined when the server gives none) of each response in a 207 Multi-Status body. A body
 * that is not a multistatus, or a response without an href, is an error, not an empty folder.
 */
export function parseMultistatus(xml: string, base: URL): { path: string; folder: boolean; size: string | undefined }[] {
  const errors: string[] = [];
  const doc = new DOMParser({ onError: (level, msg) => void (level !== "warning" && errors.push(msg)) }).parseFromString(xml, "text/xml");
  const top = doc?.documentElement;
  if (errors.length || !top || top.localName !== "multistatus" || top.namespaceURI !== DAV) {
    throw new Error(`the answer is not a DAV:multistatus document${errors.length ? ` (${errors[0]!.slice(0, 200)})` : ""}`);
  }
  const out: { path: string; folder: boolean; size: string | undefined }[] = [];
  const responses = doc.getElementsByTagNameNS(DAV, "response");
  for (let i = 0; i < responses.length; i++) {
    const r = responses[i] as Element;
    const href = r.getElementsByTagNameNS(DAV, "href")[0]?.textContent?.trim();
    if (!href) throw new Error("a response without an href");
    let size: string | undefined;
    const propstats = r.getElementsByTagNameNS(DAV, "propstat");
    for (let j = 0; j < propstats.length; j++) {
      const ps = propstats[j] as Element;
      const st = ps.getElementsByTagNameNS(DAV, "status")[0]?.textContent ?? "";
      if (!/^HTTP\/\d(\.\d)? 200\b/.test(st.trim())) continue;
      const len = ps.getElementsByTagNameNS(DAV, "getcontentlength")[0];
      if (len) size = len.textContent?.trim() ?? "";
    }
    out.push({ path: new URL(href, base).pathname, folder: r.getElementsByTagNameNS(DAV, "collection").length > 0, size });
  }
  return out;
}
