// Shared test utilities: runtimes for every build and thread count, and error measures.
import assert from "node:assert/strict";
import { Runtime } from "../src/runtime/runtime.js";
import { enableRelaxedSimd } from "../src/runtime/wasm.js";
import { type Kernels, reference } from "../src/kernels/index.js";
import { type PatchGeometry, patchGeometry } from "../src/kernels/conv.js";

enableRelaxedSimd();

/** Runtimes under test: plain and relaxed SIMD, one and two threads. Created once, closed at exit. */
let runtimes: Promise<Runtime[]> | null = null;
export function testRuntimes(): Promise<Runtime[]> {
  runtimes ??= Promise.all([
    Runtime.create({ simd: "simd", threads: 1 }),
    Runtime.create({ simd: "simd", threads: 2 }),
    Runtime.create({ simd: "relaxed", threads: 2 }),
  ]);
  return runtimes;
}

/** The eight bytes every PNG file starts with. */
export const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function label(rt: Runtime): string { return `${rt.variant}, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}`; }

/** Each implementation under test with a way to allocate arrays it accepts. */
export interface Impl {
  name: string; k: Kernels;
  f32(n: number): Float32Array; i32(n: number): Int32Array; i8(n: number): Int8Array; u16(n: number): Uint16Array;
}
export async function impls(): Promise<Impl[]> {
  const plain: Impl = {
    name: "reference", k: reference,
    f32: (n) => new Float32Array(n), i32: (n) => new Int32Array(n), i8: (n) => new Int8Array(n), u16: (n) => new Uint16Array(n),
  };
  return [plain, ...(await testRuntimes()).map((rt): Impl => ({
    name: label(rt), k: rt.kernels,
    f32: (n) => rt.heap.f32(n), i32: (n) => rt.heap.i32(n), i8: (n) => rt.heap.i8(n), u16: (n) => rt.heap.u16(n),
  }))];
}

/**
 * Asserts |actual − expected| ≤ tol · scale elementwise, where scale[i] is the natural magnitude of
 * element i (for a dot product: Σ|w||x|, which bounds its rounding error).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, scale: ArrayLike<number> | number,
                            tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const s = typeof scale === "number" ? scale : scale[i];
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol * Math.max(s, 1e-30))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (error ${err.toExponential(2)} > ${tol} × ${s.toExponential(2)})`);
    }
  }
}

/** Convolution patch geometries for kernel tests: odd sizes, strides, padding, one asymmetric. */
export const GEOMETRIES: PatchGeometry[] = [
  patchGeometry(1, 1, 1, 1),
  patchGeometry(3, 7, 7, 3, 1, 1),
  patchGeometry(5, 9, 9, 3, 2, 1),
  patchGeometry(2, 11, 11, 7, 2, 3),
  patchGeometry(4, 6, 6, 1, 2, 0),
  patchGeometry(3, 9, 9, 4, 1, 2),
  { C: 3, H: 7, W: 5, R: 3, S: 2, strideH: 2, strideW: 3, padTop: 1, padLeft: 0, OH: 4, OW: 2 },
  patchGeometry(17, 23, 23, 3, 1, 1), // large enough to run on two threads
];
