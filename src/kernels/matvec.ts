// Matrix-vector products in fp32: dense, and row-sparse (only listed rows are read).
// Each kernel has a plain TypeScript twin (the reference) and a WebAssembly SIMD version.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";

export interface MatvecKernels {
  /** y (rows) = W (rows, cols) · x (cols) + b (rows; null for none). */
  matvec(y: Float32Array, W: Float32Array, x: Float32Array, b: Float32Array | null, rows: number, cols: number): void;
}

function checkMatvec(k: string, y: unknown, W: unknown, x: unknown, b: unknown, rows: number, cols: number): void {
  check.size(k, "rows", rows);
  check.size(k, "cols", cols);
  check.f32(k, "y", y, rows);
  check.f32(k, "W", W, rows * cols);
  check.f32(k, "x", x, cols);
  if (b !== null) check.f32(k, "b", b, rows);
}

export const matvecReference: MatvecKernels = {
  matvec(y, W, x, b, rows, cols) {
    checkMatvec("matvec", y, W, x, b, rows, cols);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += W[r * cols + c] * x[c];
      y[r] = s + (b ? b[r] : 0);
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
  };
}
