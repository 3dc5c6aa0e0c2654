/** RFC 4515 escaping for values placed in LDAP search filters. */
export function escapeFilterValue(v: string): string {
  let out = "";
  for (const ch of Buffer.from(v, "utf8")) {
    // * ( ) \ NUL and non-ASCII bytes are written as \XX
    if (ch === 0x2a || ch === 0x28 || ch === 0x29 || ch === 0x5c || ch === 0x00 || ch > 0x7e || ch < 0x20) {
      out += `\\${ch.toString(16).padStart(2, "0")}`;
    } else {
      out += String.fromCharCode(ch);
    }
  }
  return out;
}

/** Replaces every `{name}` placeholder with the escaped value. */
export function fillFilter(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in values ? escapeFilterValue(values[k]!) : m));
}
