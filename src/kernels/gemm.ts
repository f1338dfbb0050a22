// Matrix-matrix products in fp32 with optional transposes: the compute-bound core of training
// (Y = X·Wᵀ, dX = dY·W, dW += dYᵀ·X) and of convolution through im2col.
// A plain TypeScript twin (the reference) and a WebAssembly SIMD version (packed, register-blocked).
import * as check from "./check.js";
import type { WasmContext } from "./context.js";

export interface GemmKernels {
  /**
   * C (M, N) = op(A) (M, K) · op(B) (K, N), plus the old C when `accumulate`. A is stored (M, K), or
   * (K, M) when transA; B is stored (K, N), or (N, K) when transB. All row-major and contiguous.
   * K = 0 gives C = 0 (unchanged when accumulating). C must not overlap A or B.
   */
  gemm(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number,
       transA: boolean, transB: boolean, accumulate: boolean): void;
}

function flag(k: string, name: string, v: unknown): void {
  if (typeof v !== "boolean") throw new TypeError(`${k}: ${name} must be a boolean, got ${typeof v}`);
}

/** The output is written while the inputs are still being read, so they must not share memory. */
function disjoint(k: string, C: Float32Array, name: string, X: Float32Array): void {
  if (C.buffer !== X.buffer) return;
  if (C.byteOffset < X.byteOffset + X.byteLength && X.byteOffset < C.byteOffset + C.byteLength) {
    throw new RangeError(`${k}: C must not overlap ${name}`);
  }
}

function checkGemm(k: string, C: unknown, A: unknown, B: unknown, M: number, N: number, K: number,
                   transA: unknown, transB: unknown, accumulate: unknown): void {
  check.size(k, "M", M);
  check.size(k, "N", N);
  check.size(k, "K", K);
  check.f32(k, "C", C, M * N);
  check.f32(k, "A", A, M * K);
  check.f32(k, "B", B, K * N);
  flag(k, "transA", transA);
  flag(k, "transB", transB);
  flag(k, "accumulate", accumulate);
  disjoint(k, C, "A", A);
  disjoint(k, C, "B", B);
}

export const gemmReference: GemmKernels = {
  gemm(C, A, B, M, N, K, transA, transB, accumulate) {
    checkGemm("gemm", C, A, B, M, N, K, transA, transB, accumulate);
    // Element strides of op(A)[i, p] and op(B)[p, j].
    const ai = transA ? 1 : K, ap = transA ? M : 1;
    const bp = transB ? 1 : N, bj = transB ? K : 1;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = accumulate ? C[i * N + j] : 0;
        for (let p = 0; p < K; p++) s += A[i * ai + p * ap] * B[p * bp + j * bj];
        C[i * N + j] = s;
      }
    }
  },
};

export function gemmWasm(ctx: WasmContext): GemmKernels {
  // Packing space for every thread, sized by the kernel's own blocking: allocated once, reused.
  const scratch = ctx.heap.u8(ctx.pool.call("gemm_f32_scratch") * ctx.pool.threads);
  return {
    gemm(C, A, B, M, N, K, transA, transB, accumulate) {
      const k = "gemm";
      checkGemm(k, C, A, B, M, N, K, transA, transB, accumulate);
      ctx.pool.run("gemm_f32", ctx.threadsFor(M * N * K), ctx.ptr(k, "C", C), ctx.ptr(k, "A", A), ctx.ptr(k, "B", B),
        M, N, K, +transA, +transB, +accumulate, scratch.byteOffset);
    },
  };
}
