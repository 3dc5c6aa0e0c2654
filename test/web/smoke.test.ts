import { test, expect, afterAll } from "bun:test";
import { consoleHarness } from "../support/console-app.ts";

const h = await consoleHarness();
afterAll(() => h.close());

test("smoke", async () => {
  const admin = await h.userWithRole("admin");
  for (const p of ["/hosts", "/enrollment", "/users", "/roles", "/sessions", "/audit", "/settings", "/account", "/account/mfa", "/login", "/setup", "/assets/console.css", "/assets/htmx.min.js"]) {
    const r = await h.send(p, { session: admin });
    const t = await r.text();
    console.log(p, r.status, r.headers.get("location") ?? "", t.length, r.status >= 400 ? t.slice(0, 500) : "");
  }
});
