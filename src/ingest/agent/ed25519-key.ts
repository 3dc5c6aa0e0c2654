/**
 * Checks an agent's Ed25519 public key at enrollment (docs/protocol.md 2): the standard base64
 * of 32 bytes that decode to a point of the curve (RFC 8032 5.1.3) of more than small order.
 * Such a key would be stored and then fail every signature, or (small order) be a key whose
 * signatures prove nothing; refusing it at once tells the enrolling agent what is wrong.
 */
const P = 2n ** 255n - 19n;
const D = mod(-121665n * inverse(121666n));
/** sqrt(-1) mod p. */
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  b = mod(b);
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return r;
}

function inverse(a: bigint): bigint {
  return pow(a, P - 2n);
}

type Point = [x: bigint, y: bigint];

/** Affine addition on -x^2 + y^2 = 1 + d x^2 y^2 (complete for this curve). */
function add([x1, y1]: Point, [x2, y2]: Point): Point {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + y1 * x2) * inverse(1n + t)), mod((y1 * y2 + x1 * x2) * inverse(1n - t))];
}

/** The point a 32-byte encoding names, or why it names none (RFC 8032 5.1.3). */
function decodePoint(raw: Uint8Array): Point | string {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(raw[i]!);
  const sign = y >> 255n;
  y &= (1n << 255n) - 1n;
  if (y >= P) return "its y coordinate is not below 2^255 - 19 (not a canonical encoding)";
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  const vxx = mod(v * x * x);
  if (vxx !== u) {
    if (vxx !== mod(-u)) return "it is not a point of the Ed25519 curve";
    x = mod(x * SQRT_M1);
  }
  if (x === 0n && sign === 1n) return "it is not a canonical encoding (x = 0 with the sign bit set)";
  if ((x & 1n) !== sign) x = P - x;
  return [x, y];
}

/** Why `raw` is not a usable Ed25519 public key, or undefined when it is one. */
export function ed25519KeyProblem(raw: Uint8Array): string | undefined {
  if (raw.length !== 32) return `it is ${raw.length} bytes, not 32`;
  const p = decodePoint(raw);
  if (typeof p === "string") return p;
  let q = p;
  for (let i = 0; i < 3; i++) q = add(q, q); // 8P
  if (q[0] === 0n && q[1] === 1n) return "it is a point of small order (its signatures would prove nothing)";
  return undefined;
}

/** Standard base64 (RFC 4648 section 4, with padding) of exactly 32 bytes: 43 characters and "=". */
export const KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
