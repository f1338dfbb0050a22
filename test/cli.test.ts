// The entry point a newcomer types first: the built bin is executable and `npx dmi` prints only dmi's output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { statSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

test("the build leaves every bin of package.json executable", () => {
  const { bin } = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { bin: Record<string, string> };
  for (const file of Object.values(bin)) {
    const mode = statSync(`${root}${file}`).mode;
    assert.equal(mode & 0o111, 0o111, `${file} has mode ${(mode & 0o777).toString(8)}, not executable`);
  }
});

test("npx dmi --help prints the usage and no npm warning", () => {
  const out = execFileSync("sh", ["-c", "npx --no-install dmi --help 2>&1"], { cwd: root, encoding: "utf8" });
  assert.match(out, /^usage:/m);
  assert.doesNotMatch(out, /npm warn/i, out);
});
