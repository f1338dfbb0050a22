// Matrix-vector products in fp32: dense, and row-sparse (only listed rows are read), each also in a
// split form that returns the two partial sums of every row on either side of a column.
// Each kernel has a plain TypeScript twin (the reference) and a WebAssembly SIMD version.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";

export interface MatvecKernels {
  /** y (rows) = W (rows, cols) · x (cols) + b (rows; null for none). */
  matvec(y: Float32Array, W: Float32Array, x: Float32Array, b: Float32Array | null, rows: number, cols: number): void;
  /**
   * As matvec, for the rows rowIdx[0..count) only: y[r] = W[r, :]·x + b[r]. Only those rows of W are
   * read and only those elements of y written. rowIdx (≥ count elements) is a reusable buffer.
   */
  matvecRows(y: Float32Array, W: Float32Array, x: Float32Array, b: Float32Array | null,
             rowIdx: Int32Array, count: number, rows: number, cols: number): void;
  /**
   * y1 (rows) = W[:, :split]·x[:split] + b1 and y2 (rows) = W[:, split:]·x[split:] + b2, W (rows, cols),
   * x (cols), b1, b2 (rows; null for none), 0 ≤ split ≤ cols: a GRU row is [W_ih row | W_hh row].
   */
  matvecSplit(y1: Float32Array, y2: Float32Array, W: Float32Array, x: Float32Array,
              b1: Float32Array | null, b2: Float32Array | null, rows: number, cols: number, split: number): void;
  /** matvecSplit for the rows rowIdx[0..count) only, as matvecRows. */
  matvecRowsSplit(y1: Float32Array, y2: Float32Array, W: Float32Array, x: Float32Array,
                  b1: Float32Array | null, b2: Float32Array | null,
                  rowIdx: Int32Array, count: number, rows: number, cols: number, split: number): void;
}

/**
 * A row list: rowIdx an Int32Array of at least `count` elements, its first `count` entries in
 * [0, rows). Duplicates are allowed (the row is computed twice, to the same value).
 */
export function checkRowList(k: string, rowIdx: unknown, count: number, rows: number): asserts rowIdx is Int32Array {
  check.size(k, "count", count);
  if (!(rowIdx instanceof Int32Array)) check.i32(k, "rowIdx", rowIdx, count);
  if (count > rowIdx.length) {
    throw new RangeError(`${k}: count must be ≤ rowIdx.length = ${rowIdx.length}, got ${count}`);
  }
  for (let j = 0; j < count; j++) {
    const r = rowIdx[j];
    if (r < 0 || r >= rows) throw new RangeError(`${k}: rowIdx[${j}] = ${r} is outside [0, ${rows})`);
  }
}

function checkMatvec(k: string, y: unknown, W: unknown, x: unknown, b: unknown, rows: number, cols: number): void {
  check.size(k, "rows", rows);
  check.size(k, "cols", cols);
  check.f32(k, "y", y, rows);
  check.f32(k, "W", W, rows * cols);
  check.f32(k, "x", x, cols);
  if (b !== null) check.f32(k, "b", b, rows);
}

function checkSplit(k: string, y1: unknown, y2: unknown, W: unknown, x: unknown, b1: unknown, b2: unknown,
                    rows: number, cols: number, split: number): void {
  checkMatvec(k, y1, W, x, b1, rows, cols);
  check.f32(k, "y2", y2, rows);
  if (b2 !== null) check.f32(k, "b2", b2, rows);
  if (!Number.isInteger(split) || split < 0 || split > cols) {
    throw new RangeError(`${k}: split must be an integer in [0, cols = ${cols}], got ${split}`);
  }
}

/** W[r, c0:c1]·x[c0:c1] + (b ? b[r] : 0), the reference's one loop. */
function dotRef(W: Float32Array, x: Float32Array, b: Float32Array | null, r: number, cols: number,
                c0: number, c1: number): number {
  let s = 0;
  for (let c = c0; c < c1; c++) s += W[r * cols + c] * x[c];
  return s + (b ? b[r] : 0);
}

export const matvecReference: MatvecKernels = {
  matvec(y, W, x, b, rows, cols) {
    checkMatvec("matvec", y, W, x, b, rows, cols);
    for (let r = 0; r < rows; r++) y[r] = dotRef(W, x, b, r, cols, 0, cols);
  },
  matvecRows(y, W, x, b, rowIdx, count, rows, cols) {
    const k = "matvecRows";
    checkMatvec(k, y, W, x, b, rows, cols);
    checkRowList(k, rowIdx, count, rows);
    for (let j = 0; j < count; j++) y[rowIdx[j]] = dotRef(W, x, b, rowIdx[j], cols, 0, cols);
  },
  matvecSplit(y1, y2, W, x, b1, b2, rows, cols, split) {
    checkSplit("matvecSplit", y1, y2, W, x, b1, b2, rows, cols, split);
    for (let r = 0; r < rows; r++) {
      y1[r] = dotRef(W, x, b1, r, cols, 0, split);
      y2[r] = dotRef(W, x, b2, r, cols, split, cols);
    }
  },
  matvecRowsSplit(y1, y2, W, x, b1, b2, rowIdx, count, rows, cols, split) {
    const k = "matvecRowsSplit";
    checkSplit(k, y1, y2, W, x, b1, b2, rows, cols, split);
    checkRowList(k, rowIdx, count, rows);
    for (let j = 0; j < count; j++) {
      const r = rowIdx[j];
      y1[r] = dotRef(W, x, b1, r, cols, 0, split);
      y2[r] = dotRef(W, x, b2, r, cols, split, cols);
    }
  },
};

export function matvecWasm(ctx: WasmContext): MatvecKernels {
  return {
    matvec(y, W, x, b, rows, cols) {
      const k = "matvec";
      checkMatvec(k, y, W, x, b, rows, cols);
      ctx.pool.run("matvec_f32", ctx.threadsFor(rows * cols),
        ctx.ptr(k, "y", y), ctx.ptr(k, "W", W), ctx.ptr(k, "x", x), ctx.ptr(k, "b", b), rows, cols);
    },
    matvecRows(y, W, x, b, rowIdx, count, rows, cols) {
      const k = "matvecRows";
      checkMatvec(k, y, W, x, b, rows, cols);
      checkRowList(k, rowIdx, count, rows);
      ctx.pool.run("matvec_rows_f32", ctx.threadsFor(count * cols),
        ctx.ptr(k, "y", y), ctx.ptr(k, "W", W), ctx.ptr(k, "x", x), ctx.ptr(k, "b", b),
        ctx.ptr(k, "rowIdx", rowIdx), count, cols);
    },
    matvecSplit(y1, y2, W, x, b1, b2, rows, cols, split) {
      const k = "matvecSplit";
      checkSplit(k, y1, y2, W, x, b1, b2, rows, cols, split);
      ctx.pool.run("matvec_split_f32", ctx.threadsFor(rows * cols),
        ctx.ptr(k, "y1", y1), ctx.ptr(k, "y2", y2), ctx.ptr(k, "W", W), ctx.ptr(k, "x", x),
        ctx.ptr(k, "b1", b1), ctx.ptr(k, "b2", b2), 0, rows, cols, split);
    },
    matvecRowsSplit(y1, y2, W, x, b1, b2, rowIdx, count, rows, cols, split) {
      const k = "matvecRowsSplit";
      checkSplit(k, y1, y2, W, x, b1, b2, rows, cols, split);
      checkRowList(k, rowIdx, count, rows);
      ctx.pool.run("matvec_split_f32", ctx.threadsFor(count * cols),
        ctx.ptr(k, "y1", y1), ctx.ptr(k, "y2", y2), ctx.ptr(k, "W", W), ctx.ptr(k, "x", x),
        ctx.ptr(k, "b1", b1), ctx.ptr(k, "b2", b2), ctx.ptr(k, "rowIdx", rowIdx), count, cols, split);
    },
  };
}
