/**
 * The peer address of each request, recorded by the server's fetch wrapper (src/server.ts)
 * from the socket, so handlers that run through app.handle() can still read it. Never taken
 * from a header a client could forge.
 */
const addresses = new WeakMap<Request, string>();

export function setClientIp(req: Request, ip: string | undefined): void {
  if (ip) addresses.set(req, ip);
}

export function clientIp(req: Request): string {
  return addresses.get(req) ?? "unknown";
}
