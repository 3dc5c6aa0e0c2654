/** A minimal DER writer: just the ASN.1 types an X.509 certificate needs. */

function len(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>>= 8;
  }
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts);
  return Buffer.concat([Uint8Array.of(tag), len(body.length), body]);
}

export const seq = (...parts: Uint8Array[]) => tlv(0x30, ...parts);
export const set = (...parts: Uint8Array[]) => tlv(0x31, ...parts);
export const octets = (b: Uint8Array) => tlv(0x04, b);
export const bitString = (b: Uint8Array) => tlv(0x03, Uint8Array.of(0), b);
export const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, "utf8"));
export const bool = (v: boolean) => tlv(0x01, Uint8Array.of(v ? 0xff : 0));
export const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner);
export const implicitPrim = (n: number, b: Uint8Array) => tlv(0x80 | n, b);

/** A non-negative INTEGER from big-endian bytes (a leading zero is added when the top bit is set). */
export function uint(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  let v = b.subarray(i);
  if (v[0]! & 0x80) v = Buffer.concat([Uint8Array.of(0), v]);
  return tlv(0x02, v);
}

export function oid(dotted: string): Uint8Array {
  const p = dotted.split(".").map(Number);
  const out: number[] = [p[0]! * 40 + p[1]!];
  for (const n of p.slice(2)) {
    const stack: number[] = [n & 0x7f];
    let v = Math.floor(n / 128);
    while (v > 0) {
      stack.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(...stack);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** GeneralizedTime, valid for every year (UTCTime stops at 2049). */
export function time(d: Date): Uint8Array {
  const iso = d.toISOString(); // 2026-01-02T03:04:05.000Z
  const s = iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + "Z";
  return tlv(0x18, Buffer.from(s, "ascii"));
}
