#!/usr/bin/env node
// Run by `npm test` before the tests: fetches the test data that npm does not install, when it is
// missing, so that a fresh clone runs every test. ONNX's golden operator tests (libonnx-testdata) and
// Fashion-MNIST (dataset-fashion-mnist) come from Debian's archive through scripts/fetch-*.sh (no
// root: apt-get download + dpkg-deb -x into .cache/). Data already present (there, or installed
// system-wide) costs two stat calls and prints nothing. A fetch that fails (no network, no apt-get)
// prints one line and the tests that need the data skip with their hint, unless
// DMI_TEST_DATA=required (CI), which makes it an error.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const required = process.env.DMI_TEST_DATA === "required";

// The folders src/onnx/testdata.ts and src/data/images.ts read, and the script that fills the first.
const DATA = [
  { name: "ONNX's golden test files", pkg: "libonnx-testdata", script: "fetch-onnx-testdata.sh", size: "6 MB",
    dirs: [".cache/onnx-testdata/usr/share/libonnx-testdata/data/node", "/usr/share/libonnx-testdata/data/node"] },
  { name: "Fashion-MNIST", pkg: "dataset-fashion-mnist", script: "fetch-fashion-mnist.sh", size: "31 MB",
    dirs: [".cache/fashion-mnist/usr/share/datasets/fashion-mnist", "/usr/share/datasets/fashion-mnist"] },
];

let failed = false;
for (const d of DATA) {
  if (d.dirs.some((dir) => existsSync(resolve(root, dir)))) continue;
  console.log(`test data: fetching ${d.name} (Debian ${d.pkg}, ${d.size}) into .cache/`);
  const run = spawnSync("sh", [join(root, "scripts", d.script)], { cwd: root, encoding: "utf8", stdio: ["ignore", "ignore", "pipe"] });
  if (run.status === 0) continue;
  // apt-get's own error ("E: Failed to fetch …") says why best; else the script's last line.
  const lines = (run.error?.message ?? run.stderr).trim().split("\n").filter(Boolean);
  const why = lines.find((l) => l.startsWith("E: ")) ?? lines.pop() ?? `exit code ${run.status}`;
  console.log(`test data: ${d.name} could not be fetched (${why}); the tests that need it are skipped` +
    ` (sh scripts/${d.script} fetches it, or apt-get install ${d.pkg})`);
  failed = true;
}
if (failed && required) {
  console.error("test data: DMI_TEST_DATA=required, so a missing data set is an error");
  process.exit(1);
}
