// npm run check:layers: every import in src/ goes to a module of the importer's own layer or a lower
// one, and no model family imports another (except where ARCHITECTURE.md allows it). The layers are
// read from the `layers` block of ARCHITECTURE.md, the one place they are written. Prints every
// violation and exits 1; exits 0 when there is none. Usage: node scripts/check-layers.mjs [ROOT]
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, posix, relative, resolve } from "node:path";

const root = resolve(process.argv[2] ?? ".");

function fail(message) {
  console.error(`check:layers: ${message}`);
  process.exit(1);
}

// One line per layer, low to high: its folders under src/. "family:" marks a layer whose folders
// may not import each other; "allow: A -> B" lets family A import family B.
const block = /```layers\n([\s\S]*?)```/.exec(readFileSync(join(root, "ARCHITECTURE.md"), "utf8"));
if (!block) fail("ARCHITECTURE.md has no ```layers block");
const rank = new Map(), families = new Set(), allowed = new Set();
block[1].trim().split("\n").forEach((line, i) => {
  const allow = /^allow:\s*(\S+)\s*->\s*(\S+)\s*$/.exec(line);
  if (allow) return void allowed.add(`${allow[1]} -> ${allow[2]}`);
  const family = /^family:/.test(line);
  for (const folder of line.replace(/^family:/, "").trim().split(/\s+/)) {
    rank.set(folder, i);
    if (family) families.add(folder);
  }
});

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : path.endsWith(".ts") ? [path] : [];
  });
}

// The folder of a path relative to src/; files directly in src/ (index.ts, the public API) sit on top.
const folderOf = (path) => (path.includes("/") ? path.split("/")[0] : null);
const violations = [];
for (const file of walk(join(root, "src"))) {
  const from = relative(join(root, "src"), file).split("\\").join("/");
  const source = folderOf(from);
  if (source !== null && !rank.has(source)) violations.push(`${from}: folder src/${source}/ is not in ARCHITECTURE.md's layers`);
  if (source === null || !rank.has(source)) continue;
  const text = readFileSync(file, "utf8");
  for (const [, spec] of text.matchAll(/(?:from\s+|import\s*\(\s*)["'](\.\.?\/[^"']+)["']/g)) {
    const target = folderOf(posix.normalize(posix.join(posix.dirname(from), spec)));
    if (target === null || target === source) continue;
    const why = !rank.has(target) ? `src/${target}/ is not in ARCHITECTURE.md's layers`
      : families.has(source) && families.has(target) && !allowed.has(`${source} -> ${target}`) ? `one family (${source}) imports another (${target})`
      : rank.get(target) > rank.get(source) ? `${source} imports ${target}, a higher layer`
      : null;
    if (why) violations.push(`${from}: imports ${spec}: ${why}`);
  }
}
if (violations.length) fail(`${violations.length} violation(s) of the layers of ARCHITECTURE.md:\n  ${violations.join("\n  ")}`);
console.log(`check:layers: ${walk(join(root, "src")).length} files, imports follow ARCHITECTURE.md's layers`);
