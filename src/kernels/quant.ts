// INT8 symmetric quantization (per-vector scale for inputs, per-row scales for weights) and int8
// matrix-vector products, dense and row-sparse, plus a dense one over packed int4 weights. Integer
// sums are exact; only the final scaling rounds, in a fixed order, so the fast kernels match the
// reference bit for bit.
// Each kernel has a plain TypeScript twin (the reference) and a WebAssembly SIMD version.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";
import { checkRowList } from "./matvec.js";

/** Largest quantized magnitude: symmetric, so -128 is never produced. */
export const QMAX = 127;

/**
 * Longest int8 row whose exact dot product fits an i32 accumulator: every product is at most
 * 128·128 = 2^14 in magnitude, so cols · 2^14 must stay below 2^31.
 */
export const MAX_I8_COLS = 2 ** 31 / 2 ** 14 - 1;

/**
 * Bytes of one packed int4 row of `cols` weights: each group of 32 columns takes 16 bytes, byte i
 * holding column i in its low nibble and column i + 16 in its high nibble (two's complement, -8..7),
 * so one 16-byte load of weights lines up with two of x. The last group is padded to 16 bytes.
 */
export function i4RowBytes(cols: number): number {
  return Math.ceil(cols / 32) * 16;
}

/** Weight (r, c) of a packed int4 matrix with `rowBytes` bytes per row. */
function nibbleAt(W4: Uint8Array, rowBytes: number, r: number, c: number): number {
  const byte = W4[r * rowBytes + (c >> 5) * 16 + (c & 15)];
  return c & 16 ? (byte << 24) >> 28 : (byte << 28) >> 28;
}

/**
 * Packs q (rows, cols), every value in [-8, 7], into W4 (rows · i4RowBytes(cols) bytes) in the
 * layout of i4RowBytes; padding nibbles are 0. A one-off weight conversion, not a kernel.
 */
export function packInt4(W4: Uint8Array, q: Int8Array, rows: number, cols: number): void {
  const k = "packInt4";
  check.size(k, "rows", rows);
  check.size(k, "cols", cols);
  check.i8(k, "q", q, rows * cols);
  const rowBytes = i4RowBytes(cols);
  check.u8(k, "W4", W4, rows * rowBytes);
  for (let i = 0; i < q.length; i++) {
    if (q[i] < -8 || q[i] > 7) throw new RangeError(`${k}: q[${i}] = ${q[i]} is outside the int4 range [-8, 7]`);
  }
  W4.fill(0);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const o = r * rowBytes + (c >> 5) * 16 + (c & 15);
      W4[o] |= (q[r * cols + c] & 15) << (c & 16 ? 4 : 0);
    }
  }
}

export interface QuantKernels {
  /**
   * q (n) = clamp(round(x / scale), ±127), rounding halves to even, with scale = max|x| / 127 in f32;
   * returns scale. x must be finite. A zero x (or one too small for scale to be nonzero) gives
   * q = 0 and scale 1.
   */
  quantize(q: Int8Array, x: Float32Array, n: number): number;
  /**
   * y (rows) = scales (rows) · xScale · (Wq (rows, cols) · xq (cols)) + b (rows; null for none), the
   * integer sum exact and then rounded to f32 as fround(fround(sum) · fround(scales[r] · xScale)) + b[r].
   * Scales finite and > 0; cols ≤ MAX_I8_COLS.
   */
  matvecI8(y: Float32Array, Wq: Int8Array, scales: Float32Array, xq: Int8Array, xScale: number,
           b: Float32Array | null, rows: number, cols: number): void;
  /** As matvecI8, for the rows rowIdx[0..count) only (as matvecRows: only those rows are read or written). */
  matvecI8Rows(y: Float32Array, Wq: Int8Array, scales: Float32Array, xq: Int8Array, xScale: number,
               b: Float32Array | null, rowIdx: Int32Array, count: number, rows: number, cols: number): void;
  /**
   * As matvecI8 with int4 weights W4 (rows · i4RowBytes(cols) bytes, see packInt4): half the bytes
   * of int8, at the cost of a few shifts per 32 weights.
   */
  matvecI4(y: Float32Array, W4: Uint8Array, scales: Float32Array, xq: Int8Array, xScale: number,
           b: Float32Array | null, rows: number, cols: number): void;
}

function checkQuantize(k: string, q: unknown, x: unknown, n: number): void {
  check.size(k, "n", n);
  check.i8(k, "q", q, n);
  check.f32(k, "x", x, n);
  check.finite(k, "x", x);
}

/** The int8 and int4 products' arguments; int4 weights are packed bytes (the same cols bound is ample). */
function checkMatvecQ(k: string, y: unknown, W: unknown, scales: unknown, xq: unknown, xScale: number, b: unknown,
                      rows: number, cols: number, int4: boolean): void {
  check.size(k, "rows", rows);
  check.size(k, "cols", cols);
  if (cols > MAX_I8_COLS) throw new RangeError(`${k}: cols must be ≤ ${MAX_I8_COLS} (exact i32 sums), got ${cols}`);
  check.f32(k, "y", y, rows);
  if (int4) check.u8(k, "W4", W, rows * i4RowBytes(cols));
  else check.i8(k, "Wq", W, rows * cols);
  check.f32(k, "scales", scales, rows);
  check.constant(scales as Float32Array, "scales finite > 0", () => check.finite(k, "scales", scales as Float32Array, true));
  check.i8(k, "xq", xq, cols);
  const xs = Math.fround(xScale);
  if (!Number.isFinite(xs) || !(xs > 0)) {
    throw new RangeError(`${k}: xScale must be finite and > 0 in f32, got ${xScale}`);
  }
  if (b !== null) check.f32(k, "b", b, rows);
}

function roundHalfEven(v: number): number {
  const r = Math.round(v); // halves go up
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Row r of the reference product given its exact integer sum, rounded as the interface states. */
function finishRef(acc: number, scales: Float32Array, xScale: number, b: Float32Array | null, r: number): number {
  const v = Math.fround(Math.fround(acc) * Math.fround(scales[r] * Math.fround(xScale)));
  return b ? Math.fround(v + b[r]) : v;
}

function rowI8Ref(Wq: Int8Array, scales: Float32Array, xq: Int8Array, xScale: number, b: Float32Array | null,
                  r: number, cols: number): number {
  let acc = 0;
  for (let c = 0; c < cols; c++) acc += Wq[r * cols + c] * xq[c];
  return finishRef(acc, scales, xScale, b, r);
}

export const quantReference: QuantKernels = {
  quantize(q, x, n) {
    checkQuantize("quantize", q, x, n);
    let amax = 0;
    for (let i = 0; i < n; i++) amax = Math.max(amax, Math.abs(x[i]));
    const scale = Math.fround(amax / QMAX);
    if (scale === 0) { q.fill(0); return 1; }
    for (let i = 0; i < n; i++) q[i] = Math.min(QMAX, Math.max(-QMAX, roundHalfEven(Math.fround(x[i] / scale))));
    return scale;
  },
  matvecI8(y, Wq, scales, xq, xScale, b, rows, cols) {
    checkMatvecQ("matvecI8", y, Wq, scales, xq, xScale, b, rows, cols, false);
    for (let r = 0; r < rows; r++) y[r] = rowI8Ref(Wq, scales, xq, xScale, b, r, cols);
  },
  matvecI8Rows(y, Wq, scales, xq, xScale, b, rowIdx, count, rows, cols) {
    const k = "matvecI8Rows";
    checkMatvecQ(k, y, Wq, scales, xq, xScale, b, rows, cols, false);
    checkRowList(k, rowIdx, count, rows);
    for (let j = 0; j < count; j++) y[rowIdx[j]] = rowI8Ref(Wq, scales, xq, xScale, b, rowIdx[j], cols);
  },
  matvecI4(y, W4, scales, xq, xScale, b, rows, cols) {
    checkMatvecQ("matvecI4", y, W4, scales, xq, xScale, b, rows, cols, true);
    const rowBytes = i4RowBytes(cols);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += nibbleAt(W4, rowBytes, r, c) * xq[c];
      y[r] = finishRef(acc, scales, xScale, b, r);
    }
  },
};

/** Bytes of one thread's copy of x widened to i16 (assembly/quant.ts widenedBytes). */
function widenedBytes(cols: number): number { return Math.ceil((cols * 2) / 64) * 64; }

export function quantWasm(ctx: WasmContext): QuantKernels {
  // The int8 products' per-thread widened x, for up to limits.i8Cols columns.
  const widened = ctx.heap.u8(widenedBytes(ctx.limits.i8Cols) * ctx.pool.threads);
  const scratch = (k: string, cols: number) => { ctx.within(k, "i8Cols", cols); return widened.byteOffset; };
  return {
    quantize(q, x, n) {
      const k = "quantize";
      checkQuantize(k, q, x, n);
      return ctx.pool.call("quantize_i8", ctx.ptr(k, "q", q), ctx.ptr(k, "x", x), n);
    },
    matvecI8(y, Wq, scales, xq, xScale, b, rows, cols) {
      const k = "matvecI8";
      checkMatvecQ(k, y, Wq, scales, xq, xScale, b, rows, cols, false);
      ctx.pool.run("matvec_i8", ctx.threadsFor(rows * cols),
        ctx.ptr(k, "y", y), ctx.ptr(k, "Wq", Wq), ctx.ptr(k, "scales", scales), ctx.ptr(k, "xq", xq), xScale,
        ctx.ptr(k, "b", b), rows, cols, scratch(k, cols));
    },
    matvecI8Rows(y, Wq, scales, xq, xScale, b, rowIdx, count, rows, cols) {
      const k = "matvecI8Rows";
      checkMatvecQ(k, y, Wq, scales, xq, xScale, b, rows, cols, false);
      checkRowList(k, rowIdx, count, rows);
      ctx.pool.run("matvec_i8_rows", ctx.threadsFor(count * cols),
        ctx.ptr(k, "y", y), ctx.ptr(k, "Wq", Wq), ctx.ptr(k, "scales", scales), ctx.ptr(k, "xq", xq), xScale,
        ctx.ptr(k, "b", b), ctx.ptr(k, "rowIdx", rowIdx), count, cols, scratch(k, cols));
    },
    matvecI4(y, W4, scales, xq, xScale, b, rows, cols) {
      const k = "matvecI4";
      checkMatvecQ(k, y, W4, scales, xq, xScale, b, rows, cols, true);
      ctx.pool.run("matvec_i4", ctx.threadsFor(rows * cols),
        ctx.ptr(k, "y", y), ctx.ptr(k, "W4", W4), ctx.ptr(k, "scales", scales), ctx.ptr(k, "xq", xq), xScale,
        ctx.ptr(k, "b", b), rows, cols);
    },
  };
}
