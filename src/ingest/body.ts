/** Reads a request body up to a limit, refusing larger ones before they are buffered whole. */
export class BodyTooLarge extends Error {}

export async function readBody(req: Request, max: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (declared > max) throw new BodyTooLarge(`request body of ${declared} bytes exceeds ingest.maxRequestBytes = ${max} (SERVERMIND_MAX_REQUEST_BYTES)`);
  if (!req.body) return new Uint8Array(0);
  if (declared >= 0) {
    // Known length within the limit (Bun's maxRequestBodySize holds the connection to it).
    return new Uint8Array(await req.arrayBuffer());
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw new BodyTooLarge(`request body exceeds ingest.maxRequestBytes = ${max} (SERVERMIND_MAX_REQUEST_BYTES)`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}
