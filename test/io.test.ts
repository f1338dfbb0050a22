import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../src/util/random.js";
import { decodeSafetensors, encodeSafetensors, requireTensor, type TensorData } from "../src/io/safetensors.js";
import { fromF16, toF16 } from "../src/io/fp16.js";
import { readFileChecked, writeFileAtomic } from "../src/io/files.js";

// ---------------------------------------------------------------------------------------------------
// fp16

const bitsOf = (f: Float32Array): Uint32Array => new Uint32Array(f.buffer, f.byteOffset, f.length);
const f32Bits = (bits: number[]): Float32Array => new Float32Array(Uint32Array.from(bits).buffer);

/** The value of a half bit pattern, computed from the definition in float64. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
}

test("fp16: all 65536 halves convert to the exact float32 and back to the same bits", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = fromF16(all);
  for (let h = 0; h < 65536; h++) {
    const want = halfValue(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(f[h]), `half 0x${h.toString(16)} must be NaN`);
    else assert.ok(Object.is(f[h], want), `half 0x${h.toString(16)}: got ${f[h]}, expected ${want}`);
  }
  const back = toF16(f);
  for (let h = 0; h < 65536; h++) assert.equal(back[h], h, `half 0x${h.toString(16)} round trip`);
});

test("fp16: float32 values halfway between two halves round to the even one", () => {
  const mids: number[] = [], want: number[] = [];
  for (let h = 0; h < 0x7bff; h++) {
    // Midpoints need 12 significant bits, so they are exact in float32 (subnormal ones included).
    for (const sign of [0, 0x8000]) {
      mids.push((halfValue(sign | h) + halfValue(sign | (h + 1))) / 2);
      want.push(sign | ((h & 1) === 0 ? h : h + 1));
    }
  }
  const x = Float32Array.from(mids);
  assert.ok(x.every((v, i) => v === mids[i]), "midpoints are exact in float32");
  const got = toF16(x);
  for (let i = 0; i < mids.length; i++) assert.equal(got[i], want[i], `midpoint ${mids[i]}`);
});

test("fp16: random float32 values round to the nearest half (float64 reference by search)", () => {
  const finite: number[] = [];
  for (let h = 0; h < 0x7c00; h++) finite.push(halfValue(h)); // increasing, 0 … 65504
  const nearest = (x: number): number => {
    const a = Math.abs(x), sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    if (a >= 65520) return sign | 0x7c00;
    let lo = 0, hi = finite.length - 1; // largest half ≤ a
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (finite[mid] <= a) lo = mid; else hi = mid - 1; }
    if (lo === finite.length - 1) return sign | lo;
    const down = a - finite[lo], up = finite[lo + 1] - a;
    return sign | (down < up || (down === up && (lo & 1) === 0) ? lo : lo + 1);
  };
  const rng = new Rng(7);
  // Uniform bit patterns with the exponent concentrated in and around the half range.
  const bits = Array.from({ length: 200_000 }, () => {
    const exponent = 98 + rng.int(45); // 2^-29 … 2^15: below subnormals to overflow
    return ((rng.u32() & 0x807fffff) | (exponent << 23)) >>> 0;
  });
  const x = f32Bits(bits), got = toF16(x);
  for (let i = 0; i < x.length; i++) assert.equal(got[i], nearest(x[i]), `0x${bits[i].toString(16)} = ${x[i]}`);
});

test("fp16: overflow, infinities, NaN, signed zero and the subnormal boundary", () => {
  const cases: [number, number][] = [
    [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [1e10, 0x7c00], [-1e10, 0xfc00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [0, 0x0000], [-0, 0x8000],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [-(2 ** -25), 0x8000], [Math.fround(2 ** -25 * (1 + 2 ** -23)), 0x0001],
    [2 ** -14, 0x0400], [2 ** -14 - 2 ** -25, 0x0400], [1 / 3, 0x3555],
  ];
  const got = toF16(Float32Array.from(cases, ([v]) => v));
  cases.forEach(([v, h], i) => assert.equal(got[i], h, `${v} → 0x${h.toString(16)}, got 0x${got[i].toString(16)}`));
  // Any float32 NaN, even one whose payload lies in the low bits only, stays NaN; so does its sign.
  const nan = toF16(f32Bits([0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff]));
  assert.deepEqual([...nan].map((h) => ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 ? h & 0x8000 : -1)), [0, 0, 0x8000, 0]);
});

test("fp16: converts subarray views, not the whole buffer", () => {
  const base = Float32Array.of(1, 2, 3, 4);
  assert.deepEqual([...fromF16(toF16(base.subarray(1, 3)))], [2, 3]);
  assert.deepEqual([...bitsOf(fromF16(Uint16Array.of(0x3c00, 0xc000).subarray(1)))], [0xc0000000]);
});

// ---------------------------------------------------------------------------------------------------
// safetensors: round trips

function randomTensor(rng: Rng, dtype: TensorData["dtype"], shape: number[]): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  const bytes = Uint8Array.from({ length: n * { F32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, I32: 4 }[dtype] }, () => rng.int(256));
  const buffer = bytes.buffer;
  switch (dtype) {
    case "F32": return { dtype, shape, data: new Float32Array(buffer) };
    case "F16": case "BF16": return { dtype, shape, data: new Uint16Array(buffer) };
    case "I8": return { dtype, shape, data: new Int8Array(buffer) };
    case "U8": return { dtype, shape, data: new Uint8Array(buffer) };
    case "I32": return { dtype, shape, data: new Int32Array(buffer) };
  }
}

const rawBytes = (t: TensorData): number[] => [...new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)];

test("safetensors: every dtype round-trips bit-exactly, with scalars, empty tensors and metadata", () => {
  const rng = new Rng(3);
  const tensors: Record<string, TensorData> = {};
  const shapes = [[], [0], [3, 0, 2], [1], [7], [3, 5], [2, 3, 5]];
  for (const dtype of ["F32", "F16", "I8", "U8", "I32"] as const) {
    shapes.forEach((shape, i) => { tensors[`${dtype.toLowerCase()}.${i}`] = randomTensor(rng, dtype, shape); });
  }
  tensors["gru.weight_ih_l0 ünï"] = randomTensor(rng, "F32", [3]); // non-ASCII name: header bytes ≠ characters
  tensors["__proto__"] = randomTensor(rng, "U8", [2]);
  const metadata = { config: JSON.stringify({ hidden: 64, kind: "gru" }), empty: "", "ключ": "значение ✓" };

  const bytes = encodeSafetensors(tensors, metadata);
  const headerBytes = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerBytes % 8, 0, "header padded to 8 bytes");
  const file = decodeSafetensors(bytes, "roundtrip.safetensors");
  assert.deepEqual(file.metadata, metadata);
  assert.equal(file.tensors.size, Object.keys(tensors).length);
  for (const [name, t] of Object.entries(tensors)) {
    const d = file.tensors.get(name);
    assert.ok(d, `${name} present`);
    assert.equal(d.dtype, t.dtype, name);
    assert.deepEqual(d.shape, t.shape, name);
    assert.equal(d.data.constructor, t.data.constructor, name);
    assert.equal(d.data.byteOffset, 0, `${name}: own aligned buffer`);
    assert.deepEqual(rawBytes(d), rawBytes(t), name);
  }
  // Decoded data are copies: changing the file afterwards changes nothing.
  const before = rawBytes(file.tensors.get("f32.6")!);
  bytes.fill(0, 8 + headerBytes);
  assert.deepEqual(rawBytes(file.tensors.get("f32.6")!), before);

  // Each tensor is aligned to its element size within the file, so readers can map it directly.
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerBytes)));
  for (const [name, t] of Object.entries(tensors)) {
    const size = t.data.BYTES_PER_ELEMENT;
    assert.equal((8 + headerBytes + header[name].data_offsets[0]) % size, 0, `${name} aligned to ${size}`);
  }
});

test("safetensors: output does not depend on key order, and no metadata means none", () => {
  const rng = new Rng(4);
  const a = randomTensor(rng, "I8", [3]), b = randomTensor(rng, "F32", [2]), c = randomTensor(rng, "F16", [5]);
  const one = encodeSafetensors({ a, b, c }), two = encodeSafetensors({ c, a, b });
  assert.deepEqual(one, two);
  const file = decodeSafetensors(one, "x");
  assert.deepEqual(file.metadata, {});
  assert.ok(!new TextDecoder().decode(one).includes("__metadata__"));
  assert.equal(decodeSafetensors(encodeSafetensors({}), "empty").tensors.size, 0);
});

test("safetensors: a file written by hand from the specification decodes", () => {
  // Header keys in another order than the data, metadata last, no padding: all allowed by the format.
  const header = '{"b":{"dtype":"I32","shape":[2],"data_offsets":[2,10]},"a":{"dtype":"U8","shape":[1,2],"data_offsets":[0,2]},"__metadata__":{"format":"pt"}}';
  const data = [7, 9, 1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff];
  const file = decodeSafetensors(makeFile(header, data), "hand.safetensors");
  assert.deepEqual([...file.tensors.keys()], ["b", "a"]);
  assert.deepEqual(requireTensor(file, "a", "U8", [1, 2]).data, Uint8Array.of(7, 9));
  assert.deepEqual(requireTensor(file, "b", "I32", [2]).data, Int32Array.of(1, -2));
  assert.deepEqual(file.metadata, { format: "pt" });
});

test("safetensors: encoding rejects inconsistent tensors", () => {
  const enc = (t: unknown, md?: unknown) => () => encodeSafetensors(t as Record<string, TensorData>, md as Record<string, string>);
  assert.throws(enc({ w: { dtype: "F32", shape: [2, 3], data: new Float32Array(5) } }), /tensor "w" has 5 elements, but shape \[2, 3\] needs 6/);
  assert.throws(enc({ w: { dtype: "F16", shape: [2], data: new Float32Array(2) } }), /tensor "w" of dtype F16 needs its data in a Uint16Array, got Float32Array/);
  assert.throws(enc({ w: { dtype: "F64", shape: [2], data: new Float64Array(2) } } as never), /tensor "w" has dtype "F64", which is unsupported; use one of F32, F16, BF16, I8, U8, I32/);
  assert.throws(enc({ w: { dtype: "U8", shape: [-1], data: new Uint8Array(0) } }), /shape \[-1\] must be a list of non-negative integers/);
  assert.throws(enc({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } }), /"__metadata__" is reserved/);
  assert.throws(enc({}, { n: 3 }), /metadata "n" must be a string, got number/);
});

// ---------------------------------------------------------------------------------------------------
// safetensors: malformed files

/** A file from a header string and data bytes; headerLength overrides the declared length. */
function makeFile(header: string, data: number[] = [], headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}
const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const fileOf = (header: unknown, data: number[] = []) => makeFile(JSON.stringify(header), data);

test("safetensors: each malformed file fails with its own message naming the file", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["short file", Uint8Array.of(1, 2, 3), /file is 3 bytes, too short for the 8-byte header length/],
    ["header beyond file", makeFile("{}", [], 40n), /header length 40 goes beyond the end of the 10-byte file/],
    ["absurd header", makeFile("{}", [], 1n << 40n), /header length 1099511627776 exceeds the 100000000-byte limit/],
    ["absurd header, fits u32", makeFile("{}", [], 200_000_000n), /header length 200000000 exceeds/],
    ["not JSON", makeFile("{not json"), /header is not valid UTF-8 JSON/],
    ["not UTF-8", makeFile("{}").map((b, i) => (i === 8 ? 0xff : b)), /header is not valid UTF-8 JSON/],
    ["array header", fileOf([]), /header must be a JSON object, got an array/],
    ["null header", fileOf(null), /header must be a JSON object, got null/],
    ["metadata not object", fileOf({ __metadata__: ["a"] }), /"__metadata__" must be an object of strings, got \["a"\]/],
    ["metadata value not string", fileOf({ __metadata__: { layers: 2 } }), /metadata "layers" must be a string, got 2; store structured values as JSON text/],
    ["entry not object", fileOf({ w: 5 }), /tensor "w" must be an object with dtype, shape, data_offsets, got 5/],
    ["missing field", fileOf({ w: { dtype: "U8", shape: [0] } }), /tensor "w" has no "data_offsets" field/],
    ["unexpected field", fileOf({ w: { ...entry("U8", [0], [0, 0]), stride: [1] } }), /tensor "w" has an unexpected field "stride"/],
    ["dtype not string", fileOf({ w: entry(4, [1], [0, 4]) }, [0, 0, 0, 0]), /tensor "w" dtype must be a string, got 4/],
    ["unknown dtype", fileOf({ w: entry("Q7", [1], [0, 1]) }, [0]), /tensor "w" has unknown dtype "Q7"; supported are F32, F16, BF16, I8, U8, I32/],
    ["unsupported dtype", fileOf({ w: entry("F64", [1], [0, 8]) }, [0, 0, 0, 0, 0, 0, 0, 0]), /tensor "w" has unsupported dtype "F64"/],
    ["shape not list", fileOf({ w: entry("U8", 3, [0, 3]) }, [0, 0, 0]), /tensor "w" shape 3 must be a list of non-negative integers/],
    ["negative dim", fileOf({ w: entry("U8", [-1], [0, 0]) }), /tensor "w" shape \[-1\] must be/],
    ["fractional dim", fileOf({ w: entry("U8", [1.5], [0, 0]) }), /tensor "w" shape \[1.5\] must be/],
    ["string dim", fileOf({ w: entry("U8", ["2"], [0, 2]) }, [0, 0]), /tensor "w" shape \["2"\] must be/],
    ["offsets not pair", fileOf({ w: entry("U8", [1], [0]) }, [0]), /tensor "w" data_offsets \[0\] must be \[begin, end\]/],
    ["offsets not integers", fileOf({ w: entry("U8", [1], [0, 0.5]) }, [0]), /tensor "w" data_offsets \[0,0.5\] must be/],
    ["negative offset", fileOf({ w: entry("U8", [1], [-1, 0]) }, [0]), /tensor "w" data_offsets \[-1,0\] must be/],
    ["offsets reversed", fileOf({ w: entry("U8", [0], [1, 0]) }, [0]), /tensor "w" data_offsets \[1, 0\] end before they begin/],
    ["offsets beyond data", fileOf({ w: entry("F32", [2], [0, 8]) }, [0, 0, 0, 0]), /tensor "w" data_offsets \[0, 8\] go beyond the 4-byte data section/],
    ["huge offsets", fileOf({ w: entry("U8", [1], [2 ** 52, 2 ** 52 + 1]) }, [0]), /go beyond the 1-byte data section/],
    ["length ≠ shape", fileOf({ w: entry("F32", [2, 2], [0, 12]) }, new Array(12).fill(0)), /tensor "w" has 12 data bytes, but shape \[2, 2\] of F32 needs 4 × 4 = 16/],
    ["overflowing shape", fileOf({ w: entry("U8", [2 ** 40, 2 ** 40, 2 ** 40], [0, 1]) }, [0]), /tensor "w" has 1 data bytes, but shape/],
    ["overlap", fileOf({ a: entry("U8", [3], [0, 3]), b: entry("U8", [2], [2, 4]) }, [0, 0, 0, 0]), /tensor "b" \[2, 4\] overlaps tensor "a" \[0, 3\]/],
    ["gap", fileOf({ a: entry("U8", [1], [0, 1]), b: entry("U8", [1], [2, 3]) }, [0, 0, 0]), /gap of 1 unused bytes before tensor "b" at 2/],
    ["leading gap", fileOf({ a: entry("U8", [1], [1, 2]) }, [0, 0]), /gap of 1 unused bytes before tensor "a"/],
    ["trailing garbage", fileOf({ a: entry("U8", [1], [0, 1]) }, [0, 9, 9]), /2 bytes of trailing data after the last tensor; the file was corrupted or appended to/],
    ["data but no tensors", fileOf({}, [1]), /1 bytes of trailing data/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => decodeSafetensors(bytes, "bad.safetensors"), (e: Error) => {
      assert.match(e.message, /^checkpoint bad\.safetensors: /, what);
      assert.match(e.message, message, what);
      return true;
    }, what);
  }
});

test("safetensors: truncating a valid file anywhere is detected", () => {
  const bytes = encodeSafetensors({ w: randomTensor(new Rng(5), "F32", [3, 4]) }, { k: "v" });
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeSafetensors(bytes.subarray(0, n), "cut"), /^Error: checkpoint cut: /, `cut at ${n}`);
  }
});

test("requireTensor: returns the tensor, or names the checkpoint, the tensor and the mismatch", () => {
  const file = decodeSafetensors(encodeSafetensors({
    "w": { dtype: "F32", shape: [2, 3], data: new Float32Array(6).fill(1.5) },
    "s": { dtype: "I32", shape: [], data: Int32Array.of(42) },
  }), "model.safetensors");
  assert.equal(requireTensor(file, "w", "F32", [2, 3]).data[5], 1.5);
  assert.equal(requireTensor(file, "s", "I32", []).data[0], 42);
  assert.throws(() => requireTensor(file, "w", "F32", [3, 2]), /^Error: checkpoint model\.safetensors: tensor "w" has shape \[2, 3\], expected \[3, 2\]/);
  assert.throws(() => requireTensor(file, "w", "F32", [2, 3, 1]), /has shape \[2, 3\], expected \[2, 3, 1\]/);
  assert.throws(() => requireTensor(file, "w", "F16", [2, 3]), /tensor "w" has dtype F32, expected F16/);
  assert.throws(() => requireTensor(file, "b", "F32", [3]), /checkpoint model\.safetensors: tensor "b" is missing \(it has 2 tensors: "s", "w"\)/);
});

// ---------------------------------------------------------------------------------------------------
// files

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "dualmodule-io-"));
  try { await body(dir); } finally { await rm(dir, { recursive: true, force: true }); }
}

test("writeFileAtomic writes and replaces a file, leaving no temporary file", () => withTempDir(async (dir) => {
  const path = join(dir, "model.safetensors");
  await writeFileAtomic(path, Uint8Array.of(1, 2, 3));
  assert.deepEqual(await readdir(dir), ["model.safetensors"]);
  await writeFileAtomic(path, Uint8Array.of(4, 5));
  assert.deepEqual([...await readFile(path)], [4, 5]);
  assert.deepEqual(await readdir(dir), ["model.safetensors"]);
}));

test("writeFileAtomic failures are clear and leave no stray file", () => withTempDir(async (dir) => {
  const missing = join(dir, "no-such-dir", "model.safetensors");
  await assert.rejects(writeFileAtomic(missing, Uint8Array.of(1)),
    { message: `cannot write ${missing}: directory ${join(dir, "no-such-dir")} does not exist` });
  assert.deepEqual(await readdir(dir), []);

  // The rename fails after the temporary file was written: it must be removed, the target untouched.
  const target = join(dir, "taken");
  await mkdir(target);
  await writeFile(join(target, "inside"), "keep");
  await assert.rejects(writeFileAtomic(target, Uint8Array.of(1)), { message: `cannot write ${target}: it is a directory` });
  assert.deepEqual(await readdir(dir), ["taken"]);
  assert.deepEqual(await readdir(target), ["inside"]);
}));

test("readFileChecked reads a file or says which file and what it was for", () => withTempDir(async (dir) => {
  const path = join(dir, "a.safetensors");
  await writeFile(path, Uint8Array.of(9, 8));
  assert.deepEqual([...await readFileChecked(path, "checkpoint")], [9, 8]);
  const missing = join(dir, "b.safetensors");
  await assert.rejects(readFileChecked(missing, "checkpoint"), { message: `cannot read checkpoint ${missing}: it does not exist` });
  await assert.rejects(readFileChecked(dir, "config"), { message: `cannot read config ${dir}: it is a directory` });
}));
