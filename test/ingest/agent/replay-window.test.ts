import { expect, test } from "bun:test";
import { ReplayWindow, WINDOW } from "../../../src/ingest/agent/replay-window.ts";

test("everything at or below the starting floor counts as seen", () => {
  const w = new ReplayWindow(100);
  expect(w.accept(100)).toBe(false);
  expect(w.accept(50)).toBe(false);
  expect(w.accept(101)).toBe(true);
});

test("out-of-order numbers inside the window are accepted once", () => {
  const w = new ReplayWindow(0);
  expect(w.accept(10)).toBe(true);
  expect(w.accept(5)).toBe(true);
  expect(w.accept(5)).toBe(false);
  expect(w.accept(10)).toBe(false);
  expect(w.accept(9)).toBe(true);
  expect(w.highest).toBe(10);
});

test("numbers older than the window are refused; big jumps clear it", () => {
  const w = new ReplayWindow(0);
  expect(w.accept(1)).toBe(true);
  expect(w.accept(1 + WINDOW * 3)).toBe(true);
  expect(w.accept(2)).toBe(false); // too old
  expect(w.accept(WINDOW * 3)).toBe(true); // inside the window, unseen
  for (let s = WINDOW * 3 + 2; s < WINDOW * 4; s++) expect(w.accept(s)).toBe(true);
  expect(w.accept(WINDOW * 3 + 2)).toBe(false);
});
