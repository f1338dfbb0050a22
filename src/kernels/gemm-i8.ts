// INT8 matrix-matrix product for the little module of a convolution, and the quantization of its
// input (per row, or a whole image at once and then its patches as bytes). The estimates of every
// output channel at every position are one product of small int8 matrices,
// Y (M, N) = W (M, K) · X (N, K)ᵀ, with one scale per weight row (channel) and one per input row
// (position) or one for the whole input. Integer sums are exact; only the final scaling rounds, in
// a fixed order, so the fast kernel matches the reference bit for bit.
// Each kernel has a plain TypeScript twin (the reference) and a WebAssembly SIMD version.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";
import { type PatchGeometry, convReference } from "./conv.js";
import { MAX_I8_COLS, quantReference } from "./quant.js";

export interface GemmI8Kernels {
  /**
   * Y (M, N) = wScales[m] · xScales[n] · (Wq (M, K) · Xq (N, K)ᵀ)[m, n] + bias[m] (bias null: none).
   * xScales has N elements when perColumn, else 1 (one scale for all of X). The integer sum is
   * exact, then rounded to f32 as fround(fround(sum) · fround(wScales[m] · xScale)) + bias[m].
   * Scales finite and > 0; K ≤ MAX_I8_COLS. Y must not overlap the inputs.
   */
  gemmI8(Y: Float32Array, Wq: Int8Array, wScales: Float32Array, Xq: Int8Array, xScales: Float32Array,
         perColumn: boolean, bias: Float32Array | null, M: number, N: number, K: number): void;
  /**
   * Each row of X (rows, cols) quantized as `quantize` does (symmetric, max|x|/127, halves to even):
   * levels to Q (rows, cols), the row's scale to scales (rows; 1 for a zero row). X must be finite:
   * a row with NaN or ±∞ throws, found after the fact from its scale (the whole input changes with
   * every image, and a pass over it in JavaScript would cost more than the quantization).
   */
  quantizeRowsI8(Q: Int8Array, scales: Float32Array, X: Float32Array, rows: number, cols: number): void;
  /**
   * patches (OH·OW, rowBytes) int8 from x (C, H, W) int8: im2row on bytes, 0 outside the image, so
   * that an image quantized once with one scale gives the quantized patches of all its positions.
   * rowBytes ≥ C·R·S; the bytes of a row past C·R·S are not written (padding, e.g. to a multiple of 16).
   */
  im2rowI8(patches: Int8Array, x: Int8Array, g: PatchGeometry, rowBytes: number): void;
  /**
   * im2row's patches (OH·OW, C·R·S) f32 of x (C, H, W), only for the positions p that some output
   * in idx[0 .. count) has (strictly ascending flat indices k·P + p into a (K, P) output, as
   * convSensitive takes them): the patches the big module reads. Other rows are not written.
   */
  im2rowSensitive(patches: Float32Array, x: Float32Array, g: PatchGeometry, idx: Int32Array, count: number, K: number): void;
}

// ---- argument checks, shared by both versions ----

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

function checkGemmI8(k: string, Y: unknown, Wq: unknown, wScales: unknown, Xq: unknown, xScales: unknown,
                     perColumn: unknown, bias: unknown, M: number, N: number, K: number): void {
  check.size(k, "M", M);
  check.size(k, "N", N);
  check.size(k, "K", K);
  if (K > MAX_I8_COLS) throw new RangeError(`${k}: K must be ≤ ${MAX_I8_COLS} (exact i32 sums), got ${K}`);
  if (typeof perColumn !== "boolean") throw new TypeError(`${k}: perColumn must be a boolean, got ${typeof perColumn}`);
  check.f32(k, "Y", Y, M * N);
  check.i8(k, "Wq", Wq, M * K);
  check.f32(k, "wScales", wScales, M);
  check.constant(wScales as Float32Array, "wScales finite > 0", () => check.finite(k, "wScales", wScales as Float32Array, true));
  check.i8(k, "Xq", Xq, N * K);
  // Input scales change with every image: checked on every call (N values against M·N·K of work).
  check.f32(k, "xScales", xScales, perColumn ? N : 1);
  check.finite(k, "xScales", xScales as Float32Array, true);
  if (bias !== null) check.f32(k, "bias", bias, M);
  const y = Y as Float32Array, yBuffer = y.buffer; // .buffer of a view on shared memory is slow to read: once
  const clash = (a: ArrayBufferView | null) => a !== null && a.buffer === yBuffer
    && y.byteOffset < a.byteOffset + a.byteLength && a.byteOffset < y.byteOffset + y.byteLength;
  if (clash(Wq as Int8Array) || clash(wScales as Float32Array) || clash(Xq as Int8Array) || clash(xScales as Float32Array) || clash(bias as Float32Array | null)) {
    throw new RangeError(`${k}: Y must not overlap Wq, wScales, Xq, xScales or bias`);
  }
}

function checkQuantizeRows(k: string, Q: unknown, scales: unknown, X: unknown, rows: number, cols: number): void {
  check.size(k, "rows", rows);
  check.size(k, "cols", cols);
  check.i8(k, "Q", Q, rows * cols);
  check.f32(k, "scales", scales, rows);
  check.f32(k, "X", X, rows * cols);
  if (overlaps(scales as Float32Array, X as Float32Array)) throw new RangeError(`${k}: scales must not overlap X`);
}

/** The geometry rules of the f32 im2row (src/kernels/conv.ts): every window overlaps the image. */
function checkGeometry(k: string, g: PatchGeometry): void {
  if (typeof g !== "object" || g === null) throw new TypeError(`${k}: the geometry must be a PatchGeometry object`);
  for (const n of ["C", "H", "W", "OH", "OW", "padTop", "padLeft"] as const) check.size(k, n, g[n]);
  for (const n of ["R", "S", "strideH", "strideW"] as const) check.size(k, n, g[n], 1);
  if (g.padTop >= g.R || g.padLeft >= g.S) throw new RangeError(`${k}: padding (${g.padTop}, ${g.padLeft}) must be smaller than the window ${g.R}×${g.S}`);
  if ((g.OH > 0 && (g.OH - 1) * g.strideH - g.padTop >= g.H) || (g.OW > 0 && (g.OW - 1) * g.strideW - g.padLeft >= g.W)) {
    throw new RangeError(`${k}: OH × OW = ${g.OH} × ${g.OW} puts the last window outside the ${g.H} × ${g.W} image`);
  }
}

function checkIm2rowI8(k: string, patches: unknown, x: unknown, g: PatchGeometry, rowBytes: number): void {
  checkGeometry(k, g);
  check.size(k, "rowBytes", rowBytes, g.C * g.R * g.S);
  check.i8(k, "patches", patches, g.OH * g.OW * rowBytes);
  check.i8(k, "x", x, g.C * g.H * g.W);
  if (overlaps(patches as Int8Array, x as Int8Array)) throw new RangeError(`${k}: patches must not overlap x`);
}

/** The list changes with every image: checked on every call, O(count) against O(positions · C·R·S) of copying. */
function checkIm2rowSensitive(k: string, patches: unknown, x: unknown, g: PatchGeometry, idx: unknown, count: number, K: number): void {
  checkGeometry(k, g);
  check.size(k, "K", K);
  check.size(k, "count", count);
  check.f32(k, "patches", patches, g.OH * g.OW * g.C * g.R * g.S);
  check.f32(k, "x", x, g.C * g.H * g.W);
  if (overlaps(patches as Float32Array, x as Float32Array)) throw new RangeError(`${k}: patches must not overlap x`);
  if (!(idx instanceof Int32Array)) check.i32(k, "idx", idx, count); // throws the shared type error
  if (idx.length < count) throw new RangeError(`${k}: idx must have at least count = ${count} elements, got ${idx.length}`);
  const total = K * g.OH * g.OW;
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const v = idx[i];
    if (v <= prev || v >= total) throw new RangeError(`${k}: idx[${i}] = ${v} must be greater than idx[${i - 1}] = ${prev} (strictly ascending) and below K·P = ${total}`);
    prev = v;
  }
}

function nonFinite(k: string, row: number): RangeError {
  return new RangeError(`${k}: X row ${row} has a NaN or infinite value; the input must be finite`);
}

// ---- reference: plain TypeScript, one element at a time ----

export const gemmI8Reference: GemmI8Kernels = {
  gemmI8(Y, Wq, wScales, Xq, xScales, perColumn, bias, M, N, K) {
    checkGemmI8("gemmI8", Y, Wq, wScales, Xq, xScales, perColumn, bias, M, N, K);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += Wq[m * K + k] * Xq[n * K + k];
        const v = Math.fround(Math.fround(acc) * Math.fround(wScales[m] * Math.fround(xScales[perColumn ? n : 0])));
        Y[m * N + n] = bias ? Math.fround(v + bias[m]) : v;
      }
    }
  },
  quantizeRowsI8(Q, scales, X, rows, cols) {
    const k = "quantizeRowsI8";
    checkQuantizeRows(k, Q, scales, X, rows, cols);
    for (let r = 0; r < rows; r++) {
      const x = X.subarray(r * cols, (r + 1) * cols);
      if (!x.every(Number.isFinite)) throw nonFinite(k, r);
      scales[r] = quantReference.quantize(Q.subarray(r * cols, (r + 1) * cols), x, cols);
    }
  },
  im2rowI8(patches, x, g, rowBytes) {
    checkIm2rowI8("im2rowI8", patches, x, g, rowBytes);
    const { C, H, W, R, S, OH, OW } = g;
    for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
      let d = (oh * OW + ow) * rowBytes;
      for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
        const ih = oh * g.strideH - g.padTop + r, iw = ow * g.strideW - g.padLeft + s;
        patches[d++] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[(c * H + ih) * W + iw] : 0;
      }
    }
  },
  im2rowSensitive(patches, x, g, idx, count, K) {
    checkIm2rowSensitive("im2rowSensitive", patches, x, g, idx, count, K);
    const P = g.OH * g.OW, CRS = g.C * g.R * g.S, needed = new Set<number>();
    for (let i = 0; i < count; i++) needed.add(idx[i] % P);
    const all = new Float32Array(P * CRS);
    convReference.im2row(all, x, g);
    for (const p of needed) patches.set(all.subarray(p * CRS, (p + 1) * CRS), p * CRS);
  },
};

// ---- WebAssembly ----

export function gemmI8Wasm(ctx: WasmContext): GemmI8Kernels {
  // im2rowSensitive's per-thread position marks, for up to limits.convPositions positions.
  const marks = ctx.heap.u8(ctx.limits.convPositions * ctx.pool.threads);
  return {
    gemmI8(Y, Wq, wScales, Xq, xScales, perColumn, bias, M, N, K) {
      const k = "gemmI8";
      checkGemmI8(k, Y, Wq, wScales, Xq, xScales, perColumn, bias, M, N, K);
      ctx.pool.run("gemm_i8", ctx.threadsFor(M * N * K), ctx.ptr(k, "Y", Y), ctx.ptr(k, "Wq", Wq), ctx.ptr(k, "wScales", wScales),
        ctx.ptr(k, "Xq", Xq), ctx.ptr(k, "xScales", xScales), +perColumn, ctx.ptr(k, "bias", bias), M, N, K);
    },
    quantizeRowsI8(Q, scales, X, rows, cols) {
      const k = "quantizeRowsI8";
      checkQuantizeRows(k, Q, scales, X, rows, cols);
      ctx.pool.run("quantize_rows_i8", ctx.threadsFor(rows * cols), ctx.ptr(k, "Q", Q), ctx.ptr(k, "scales", scales),
        ctx.ptr(k, "X", X), rows, cols);
      // NaN propagates through the kernel's max (wasm semantics) and ±∞ makes the scale infinite.
      for (let r = 0; r < rows; r++) if (!Number.isFinite(scales[r])) throw nonFinite(k, r);
    },
    im2rowI8(patches, x, g, rowBytes) {
      const k = "im2rowI8";
      checkIm2rowI8(k, patches, x, g, rowBytes);
      ctx.pool.run("im2row_i8", ctx.threadsFor(patches.length), ctx.ptr(k, "patches", patches), ctx.ptr(k, "x", x),
        g.C, g.H, g.W, g.R, g.S, g.strideH, g.strideW, g.padTop, g.padLeft, g.OH, g.OW, rowBytes);
    },
    im2rowSensitive(patches, x, g, idx, count, K) {
      const k = "im2rowSensitive";
      checkIm2rowSensitive(k, patches, x, g, idx, count, K);
      ctx.within(k, "convPositions", g.OH * g.OW);
      ctx.pool.run("im2row_sensitive_f32", ctx.threadsFor(count * g.C * g.R * g.S / K), ctx.ptr(k, "patches", patches), ctx.ptr(k, "x", x),
        g.C, g.H, g.W, g.R, g.S, g.strideH, g.strideW, g.padTop, g.padLeft, g.OH, g.OW, ctx.ptr(k, "idx", idx), count, marks.byteOffset);
    },
  };
}
