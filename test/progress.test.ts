import { test } from "node:test";
import assert from "node:assert/strict";
import { formatTime } from "../src/util/progress.js";

test("progress: ETAs round once, so seconds never read 60", () => {
  assert.equal(formatTime(4.4), "4 s");
  assert.equal(formatTime(59.6), "1 min 0 s");
  assert.equal(formatTime(1019.7), "17 min 0 s");
  assert.equal(formatTime(3599.5), "60 min 0 s");
  assert.equal(formatTime(125), "2 min 5 s");
  assert.equal(formatTime(Infinity), "?");
});
