#!/usr/bin/env node
// Fetches the data sets npm does not install, from Debian's archive without root (apt-get download,
// then dpkg-deb -x into .cache/): ONNX's golden operator tests (libonnx-testdata; src/onnx/testdata.ts
// reads them) and Fashion-MNIST (dataset-fashion-mnist; src/data/images.ts). Both are also read from
// /usr/share when the package is installed system-wide.
//
//   node scripts/fetch-test-data.mjs [onnx-testdata|fashion-mnist ...]   (default: both)
//
// `npm test` runs it first: data already present costs two stat calls and prints nothing. A fetch
// that fails (no network, no apt-get) prints one line and the tests that need the data skip with
// their hint, unless DMI_TEST_DATA=required (CI), which makes it an error.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const required = process.env.DMI_TEST_DATA === "required";

// `data` is the folder inside the package that the readers look for (under `cache`, or under / when installed).
const DATA = {
  "onnx-testdata": { name: "ONNX's golden test files", pkg: "libonnx-testdata", size: "6 MB", data: "usr/share/libonnx-testdata/data/node" },
  "fashion-mnist": { name: "Fashion-MNIST", pkg: "dataset-fashion-mnist", size: "31 MB", data: "usr/share/datasets/fashion-mnist" },
};

/** Runs a command in `cwd`; its error, as apt-get words it ("E: Failed to fetch …"), or null. */
function run(cwd, command, ...args) {
  const r = spawnSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "ignore", "pipe"] });
  if (r.status === 0) return null;
  const lines = (r.error?.message ?? r.stderr).trim().split("\n").filter(Boolean);
  return lines.find((l) => l.startsWith("E: ")) ?? lines.pop() ?? `${command} exited with code ${r.status}`;
}

/** Downloads the package's .deb into `cache` (unless there) and unpacks it; an error message, or null. */
function fetchPackage(pkg, cache) {
  mkdirSync(cache, { recursive: true });
  if (!readdirSync(cache).some((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"))) {
    let error = run(cache, "apt-get", "download", pkg);
    // A fresh machine may have no package lists yet; only root can refresh them.
    if (error && process.getuid?.() === 0) error = run(cache, "apt-get", "update") ?? run(cache, "apt-get", "download", pkg);
    if (error) return process.getuid?.() === 0 ? error : `${error}; as root, run 'apt-get update' and try again`;
  }
  const deb = readdirSync(cache).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  // Unpacked beside, then moved into place: an interrupted run never leaves half the data looking whole.
  const unpack = join(cache, ".unpack");
  rmSync(unpack, { recursive: true, force: true });
  const error = run(cache, "dpkg-deb", "-x", deb, ".unpack");
  if (error) return error;
  rmSync(join(cache, "usr"), { recursive: true, force: true });
  renameSync(join(unpack, "usr"), join(cache, "usr"));
  rmSync(unpack, { recursive: true, force: true });
  return null;
}

const wanted = process.argv.slice(2);
for (const key of wanted) {
  if (!(key in DATA)) {
    console.error(`fetch-test-data: unknown data set "${key}"; known: ${Object.keys(DATA).join(", ")}`);
    process.exit(2);
  }
}
let failed = false;
for (const key of wanted.length > 0 ? wanted : Object.keys(DATA)) {
  const d = DATA[key], cache = resolve(root, ".cache", key);
  if ([join(cache, d.data), join("/", d.data)].some((dir) => existsSync(dir))) continue;
  console.log(`test data: fetching ${d.name} (Debian ${d.pkg}, ${d.size}) into .cache/${key}`);
  const error = fetchPackage(d.pkg, cache);
  if (error === null) continue;
  console.log(`test data: ${d.name} could not be fetched (${error}); the tests that need it are skipped` +
    ` (node scripts/fetch-test-data.mjs ${key} fetches it, or apt-get install ${d.pkg})`);
  failed = true;
}
if (failed && required) {
  console.error("test data: DMI_TEST_DATA=required, so a missing data set is an error");
  process.exit(1);
}
