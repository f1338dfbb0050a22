// ONNX's operator tests (Debian package libonnx-testdata) as golden data: each case is a folder
// holding model.onnx and test_data_set_0/{input,output}_N.pb. We read only the .pb tensors; the
// operator's attributes are known to the test that uses a case. Fetch the data with
// `node scripts/fetch-test-data.mjs onnx-testdata` (no root needed), or install the package.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeTensor, type DecodedTensor } from "./proto.js";

export const FETCH_HINT = "ONNX test data not found: run node scripts/fetch-test-data.mjs onnx-testdata (or apt-get install libonnx-testdata)";

/** Where the package puts its data: under the project's .cache (the fetch script) or the system. */
const PACKAGE_DATA = "usr/share/libonnx-testdata/data";
const ROOTS = [
  join(fileURLToPath(new URL("../../../.cache/onnx-testdata", import.meta.url)), PACKAGE_DATA),
  join("/", PACKAGE_DATA),
];
const SUITES = ["node", "pytorch-operator", "pytorch-converted", "simple"];

export interface OnnxTestCase {
  name: string;
  dir: string;
  /** input_0.pb, input_1.pb, … in order (an omitted optional input has no file). */
  inputs: DecodedTensor[];
  outputs: DecodedTensor[];
}

/** The folder of test case `name` (e.g. "test_lstm_defaults"), or null if no data set holds it. */
export function findOnnxTestCase(name: string): string | null {
  for (const root of ROOTS) {
    for (const suite of SUITES) {
      const dir = join(root, suite, name);
      if (existsSync(join(dir, "test_data_set_0"))) return dir;
    }
  }
  return null;
}

/** Test case `name` with data set 0 read, or null if the data is not present (see FETCH_HINT). */
export function loadOnnxTestCase(name: string): OnnxTestCase | null {
  const dir = findOnnxTestCase(name);
  if (dir === null) return null;
  const set = join(dir, "test_data_set_0");
  const read = (prefix: string): DecodedTensor[] =>
    readdirSync(set)
      .filter((f) => f.startsWith(prefix) && f.endsWith(".pb"))
      .map((f) => ({ f, n: Number(f.slice(prefix.length, -3)) }))
      .sort((a, b) => a.n - b.n)
      .map(({ f }) => decodeTensor(readFileSync(join(set, f)), join(set, f)));
  return { name, dir, inputs: read("input_"), outputs: read("output_") };
}
