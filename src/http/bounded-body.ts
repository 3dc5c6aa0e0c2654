/**
 * A request body read only up to a limit, for forms the app parses itself (the console's guard,
 * the SSO sign-in forms): a declared length over the limit is refused before a byte is read, a
 * body without one (chunked) is read until it passes the limit and no further.
 */
export class BodyOverLimit extends Error {
  override name = "BodyOverLimit";
  /** `declared`: the Content-Length that was over the limit (nothing was read); undefined when the bytes passed it (the rest is unread). */
  constructor(readonly max: number, readonly declared?: number) {
    super(declared === undefined ? `body over ${max} bytes` : `body of ${declared} bytes over ${max}`);
  }
}

export async function readBounded(request: Request, max: number): Promise<Buffer<ArrayBuffer>> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > max) throw new BodyOverLimit(max, declared);
  const reader = request.body?.getReader();
  if (!reader) return Buffer.alloc(0);
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    size += r.value.byteLength;
    if (size > max) {
      void reader.cancel().catch(() => {});
      throw new BodyOverLimit(max);
    }
    parts.push(r.value);
  }
  return Buffer.concat(parts) as Buffer<ArrayBuffer>;
}

/** The bytes of a form as FormData, parsed by its content type (urlencoded or multipart). */
export function formOf(bytes: Buffer<ArrayBuffer>, contentType: string): Promise<FormData> {
  return new Response(bytes, { headers: { "content-type": contentType } }).formData();
}
