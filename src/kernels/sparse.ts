// Matrix-vector products over compressed rows: the big module of a pruned layer, reading only the
// nonzeros. Every row (the pruned dense step), or only listed rows (a dual-module step on a pruned
// layer: the nonzeros of the sensitive rows). Each kernel has a plain TypeScript twin and a
// WebAssembly SIMD version; packSparseRows builds the layout from a dense matrix. Not here: INT8
// values (a later variant: a scale per row in front of the block).
//
// Layout, one contiguous block per row so that a sensitive row is one read:
//   rowPtr (rows + 1) int32: byte offset of each row's block in `data`; rowPtr[0] = 0, rowPtr[rows] = data.length
//   block of row r with n nonzeros: n fp32 values, then their n u16 column indices (ascending), then
//   2 bytes of zero padding when n is odd, so every block starts 4-aligned:
//   n = ⌊(rowPtr[r+1] − rowPtr[r]) / 6⌋, block bytes 6n + 2·(n mod 2).
// Columns fit 16 bits: cols ≤ 65536.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";
import { checkRowList } from "./matvec.js";

/** A (rows, cols) matrix in compressed rows (the layout above). */
export interface SparseRows {
  rows: number;
  cols: number;
  data: Uint8Array;    // the row blocks
  rowPtr: Int32Array;  // (rows + 1) byte offsets
  nnz: number;         // nonzeros stored
}

export const MAX_SPARSE_COLS = 65536;

/** Bytes of a row block with n nonzeros. */
export function blockBytes(n: number): number { return 6 * n + 2 * (n & 1); }

/** Nonzeros of row r: from the block's size. */
export function rowNonzeros(rowPtr: Int32Array, r: number): number { return Math.floor((rowPtr[r + 1] - rowPtr[r]) / 6); }

/**
 * W (rows, cols) in compressed rows, keeping its nonzeros (exact zeros are what pruning left).
 * `alloc` makes the arrays (a runtime's heap for the fast kernels; plain arrays by default).
 */
export function packSparseRows(W: Float32Array, rows: number, cols: number,
                               alloc: { u8(n: number): Uint8Array; i32(n: number): Int32Array } = PLAIN): SparseRows {
  const k = "packSparseRows";
  check.size(k, "rows", rows);
  check.size(k, "cols", cols);
  if (cols > MAX_SPARSE_COLS) throw new RangeError(`${k}: cols must be ≤ ${MAX_SPARSE_COLS} (16-bit column indices), got ${cols}`);
  check.f32(k, "W", W, rows * cols);
  const rowPtr = alloc.i32(rows + 1);
  let bytes = 0, nnz = 0;
  for (let r = 0; r < rows; r++) {
    rowPtr[r] = bytes;
    let n = 0;
    for (let c = 0; c < cols; c++) if (W[r * cols + c] !== 0) n++;
    bytes += blockBytes(n);
    nnz += n;
  }
  rowPtr[rows] = bytes;
  const data = alloc.u8(bytes);
  data.fill(0);
  const { vals, idx } = views(data);
  for (let r = 0; r < rows; r++) {
    const n = rowNonzeros(rowPtr, r), v0 = rowPtr[r] >> 2, i0 = (rowPtr[r] + 4 * n) >> 1;
    let j = 0;
    for (let c = 0; c < cols; c++) {
      const w = W[r * cols + c];
      if (w !== 0) { vals[v0 + j] = w; idx[i0 + j] = c; j++; }
    }
  }
  return { rows, cols, data, rowPtr, nnz };
}

const PLAIN = { u8: (n: number) => new Uint8Array(n), i32: (n: number) => new Int32Array(n) };

/** The dense (rows, cols) matrix of a packed one. */
export function unpackSparseRows(S: SparseRows): Float32Array {
  const W = new Float32Array(S.rows * S.cols), { vals, idx } = views(S.data);
  for (let r = 0; r < S.rows; r++) {
    const n = rowNonzeros(S.rowPtr, r), v0 = S.rowPtr[r] >> 2, i0 = (S.rowPtr[r] + 4 * n) >> 1;
    for (let j = 0; j < n; j++) W[r * S.cols + idx[i0 + j]] = vals[v0 + j];
  }
  return W;
}

/** fp32 and u16 views of a block array (4-aligned; a trailing odd 2 bytes are padding). */
function views(data: Uint8Array): { vals: Float32Array; idx: Uint16Array } {
  return {
    vals: new Float32Array(data.buffer, data.byteOffset, data.length >> 2),
    idx: new Uint16Array(data.buffer, data.byteOffset, data.length >> 1),
  };
}

export interface SparseKernels {
  /**
   * y (rows) = W · x (cols) + b (rows; null for none), W (rows, cols) in compressed rows (data,
   * rowPtr): only the nonzeros are read.
   */
  matvecSparse(y: Float32Array, data: Uint8Array, rowPtr: Int32Array, x: Float32Array, b: Float32Array | null,
               rows: number, cols: number): void;
  /**
   * As matvecSparse, for the rows rowIdx[0..count) only: only those rows' blocks are read and only
   * those elements of y written. rowIdx (≥ count elements) is a reusable buffer.
   */
  matvecSparseRows(y: Float32Array, data: Uint8Array, rowPtr: Int32Array, x: Float32Array, b: Float32Array | null,
                   rowIdx: Int32Array, count: number, rows: number, cols: number): void;
}

/**
 * The shared argument checks. The layout (data, rowPtr) is a weight: verified in full the first
 * time a kernel sees it (check.constant), then trusted: block sizes, 4-aligned data, column indices
 * in [0, cols).
 */
function checkSparse(k: string, y: unknown, data: unknown, rowPtr: unknown, x: unknown, b: unknown, rows: number, cols: number): void {
  check.size(k, "rows", rows);
  check.size(k, "cols", cols);
  if (cols > MAX_SPARSE_COLS) throw new RangeError(`${k}: cols must be ≤ ${MAX_SPARSE_COLS} (16-bit column indices), got ${cols}`);
  check.f32(k, "y", y, rows);
  check.f32(k, "x", x, cols);
  if (b !== null) check.f32(k, "b", b, rows);
  check.i32(k, "rowPtr", rowPtr, rows + 1);
  check.u8(k, "data", data, rowPtr[rows]);
  check.constant(data, `sparse rows ${rows}×${cols}`, () => {
    if (data.byteOffset % 4 !== 0) throw new RangeError(`${k}: data must start 4-aligned (byteOffset ${data.byteOffset}); pack it with packSparseRows`);
    if (rowPtr[0] !== 0) throw new RangeError(`${k}: rowPtr[0] must be 0, got ${rowPtr[0]}`);
    const { idx } = views(data);
    for (let r = 0; r < rows; r++) {
      const bytes = rowPtr[r + 1] - rowPtr[r], n = Math.floor(bytes / 6);
      if (!(bytes >= 0 && bytes === blockBytes(n))) {
        throw new RangeError(`${k}: row ${r}'s block is ${bytes} bytes, not 6n (+2 for odd n) for any n; pack it with packSparseRows`);
      }
      const i0 = (rowPtr[r] + 4 * n) >> 1;
      for (let j = 0; j < n; j++) {
        if (idx[i0 + j] >= cols) throw new RangeError(`${k}: row ${r}'s column index ${idx[i0 + j]} is outside [0, ${cols})`);
      }
    }
  });
}

/** Row r · x + (b ? b[r] : 0), the reference's one loop. */
function dotRef(vals: Float32Array, idx: Uint16Array, rowPtr: Int32Array, x: Float32Array, b: Float32Array | null, r: number): number {
  const n = rowNonzeros(rowPtr, r), v0 = rowPtr[r] >> 2, i0 = (rowPtr[r] + 4 * n) >> 1;
  let s = 0;
  for (let j = 0; j < n; j++) s += vals[v0 + j] * x[idx[i0 + j]];
  return s + (b ? b[r] : 0);
}

export const sparseReference: SparseKernels = {
  matvecSparse(y, data, rowPtr, x, b, rows, cols) {
    checkSparse("matvecSparse", y, data, rowPtr, x, b, rows, cols);
    const { vals, idx } = views(data);
    for (let r = 0; r < rows; r++) y[r] = dotRef(vals, idx, rowPtr, x, b, r);
  },
  matvecSparseRows(y, data, rowPtr, x, b, rowIdx, count, rows, cols) {
    const k = "matvecSparseRows";
    checkSparse(k, y, data, rowPtr, x, b, rows, cols);
    checkRowList(k, rowIdx, count, rows);
    const { vals, idx } = views(data);
    for (let j = 0; j < count; j++) y[rowIdx[j]] = dotRef(vals, idx, rowPtr, x, b, rowIdx[j]);
  },
};

export function sparseWasm(ctx: WasmContext): SparseKernels {
  return {
    matvecSparse(y, data, rowPtr, x, b, rows, cols) {
      const k = "matvecSparse";
      checkSparse(k, y, data, rowPtr, x, b, rows, cols);
      ctx.pool.run("matvec_sparse_f32", ctx.threadsFor(Math.floor(data.length / 6)),
        ctx.ptr(k, "y", y), ctx.ptr(k, "data", data), ctx.ptr(k, "rowPtr", rowPtr), ctx.ptr(k, "x", x), ctx.ptr(k, "b", b), 0, rows);
    },
    matvecSparseRows(y, data, rowPtr, x, b, rowIdx, count, rows, cols) {
      const k = "matvecSparseRows";
      checkSparse(k, y, data, rowPtr, x, b, rows, cols);
      checkRowList(k, rowIdx, count, rows);
      // Work: the listed rows' share of the nonzeros, estimated from the average row.
      const work = rows === 0 ? 0 : Math.round((count * data.length) / (6 * rows));
      ctx.pool.run("matvec_sparse_f32", ctx.threadsFor(work),
        ctx.ptr(k, "y", y), ctx.ptr(k, "data", data), ctx.ptr(k, "rowPtr", rowPtr), ctx.ptr(k, "x", x), ctx.ptr(k, "b", b),
        ctx.ptr(k, "rowIdx", rowIdx), count);
    },
  };
}
