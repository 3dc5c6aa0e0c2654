import { describe, expect, test } from "bun:test";
import { sharePath } from "../../src/share.ts";

describe("SERVERMIND_SHARE (a compiled server's views, assets and migrations)", () => {
  test("unset: the checkout's path; set: the file under it", () => {
    expect(sharePath("views", "/src/views", {})).toBe("/src/views");
    expect(sharePath("views", "/src/views", { SERVERMIND_SHARE: "" })).toBe("/src/views");
    expect(sharePath("migrations", "/src/m", { SERVERMIND_SHARE: "/usr/share/servermind" })).toBe("/usr/share/servermind/migrations");
  });
});
