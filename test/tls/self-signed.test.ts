import { expect, test } from "bun:test";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { certFingerprint, createSelfSigned } from "../../src/tls/self-signed.ts";

test("the generated certificate parses, matches its key and names every host", () => {
  const c = createSelfSigned(["localhost", "127.0.0.1", "::1", "srv.example"]);
  const x = new X509Certificate(c.certPem);
  expect(x.checkPrivateKey(createPrivateKey(c.keyPem))).toBe(true);
  expect(x.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:srv.example");
  expect(x.ca).toBe(false);
  expect(x.verify(x.publicKey)).toBe(true);
  expect(new Date(x.validTo).getTime()).toBeGreaterThan(Date.now() + 9 * 365 * 86400_000);
  expect(c.fingerprint).toBe(x.fingerprint256.replace(/:/g, "").toLowerCase());
  expect(certFingerprint(c.certPem)).toBe(c.fingerprint);
});
