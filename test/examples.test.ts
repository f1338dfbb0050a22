// The README's example runs as written, through the package's own name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

test("examples/quickstart.mjs runs and reaches the requested ratio", () => {
  const script = fileURLToPath(new URL("../../examples/quickstart.mjs", import.meta.url));
  const out = execFileSync(process.execPath, [script], { encoding: "utf8" });
  const ratio = Number(/insensitive ratio ([\d.]+)/.exec(out)?.[1]);
  assert.ok(Math.abs(ratio - 0.5) <= 0.02, out);
  const fewer = Number(/\(([\d.]+)x fewer\)/.exec(out)?.[1]);
  assert.ok(fewer > 1, out);
});
