import { expect, test } from "bun:test";
import { loadSsoConfig } from "../../../src/auth/sso/config.ts";

test("SSO config from the environment", () => {
  expect(loadSsoConfig({}, "https://127.0.0.1:8443")).toEqual({ publicUrl: "https://127.0.0.1:8443", requestTtlSeconds: 600, ldap: { size: 4, acquireTimeoutMs: 5000 } });
  expect(loadSsoConfig({ SERVERMIND_PUBLIC_URL: "https://console.example.com/", SERVERMIND_LDAP_POOL_SIZE: "8" }, "x").publicUrl).toBe("https://console.example.com");
  expect(() => loadSsoConfig({ SERVERMIND_PUBLIC_URL: "https://console.example.com/sm" }, "x")).toThrow(/without a path/);
  expect(() => loadSsoConfig({ SERVERMIND_PUBLIC_URL: "console" }, "x")).toThrow(/absolute URL/);
  expect(() => loadSsoConfig({ SERVERMIND_LDAP_POOL_SIZE: "0" }, "https://a")).toThrow(/SERVERMIND_LDAP_POOL_SIZE/);
});
