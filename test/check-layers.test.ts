// The layering rule of ARCHITECTURE.md holds for src/, and the checker that enforces it in `npm test`
// does catch an upward import and an import between families.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const script = join(root, "scripts/check-layers.mjs");

function check(dir: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [script, dir], { encoding: "utf8" });
  return { status: r.status, output: r.stdout + r.stderr };
}

test("src/ follows the layers of ARCHITECTURE.md", () => {
  const r = check(root);
  assert.equal(r.status, 0, r.output);
});

test("check:layers lists an upward import, an import between families and an unknown folder, and fails", () => {
  const dir = mkdtempSync(join(tmpdir(), "layers-"));
  try {
    copyFileSync(join(root, "ARCHITECTURE.md"), join(dir, "ARCHITECTURE.md"));
    const put = (path: string, text: string) => {
      mkdirSync(join(dir, "src", path, ".."), { recursive: true });
      writeFileSync(join(dir, "src", path), text);
    };
    put("util/a.ts", `import { main } from "../cli/b.js";\nexport const a = main;\n`);
    put("cli/b.ts", `import { a } from "../util/a.js";\nexport const main = a;\n`);
    put("conv/c.ts", `export const c = async () => (await import("../recurrent/d.js")).d;\n`);
    put("recurrent/d.ts", `import type { Rng } from "../util/random.js";\nexport const d = 1 as unknown as Rng;\n`);
    put("extra/e.ts", `export const e = 1;\n`);
    const r = check(dir);
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /3 violation\(s\)/);
    assert.match(r.output, /util\/a\.ts: imports \.\.\/cli\/b\.js: util imports cli, a higher layer/);
    assert.match(r.output, /conv\/c\.ts: imports \.\.\/recurrent\/d\.js: one family \(conv\) imports another \(recurrent\)/);
    assert.match(r.output, /extra\/e\.ts: folder src\/extra\/ is not in ARCHITECTURE\.md's layers/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
