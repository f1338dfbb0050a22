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
  /**
   * Packs op(B) (K, N) once for many gemmPacked products with it (a recurrent weight over the steps of
   * a window). P holds gemmPackedSize(N, K) floats: panels of GEMM_PANEL columns, each (K, GEMM_PANEL),
   * zero-padded. B is stored (K, N), or (N, K) when transB.
   */
  packB(P: Float32Array, B: Float32Array, N: number, K: number, transB: boolean): void;
  /** gemm with op(B) already packed by packB into P: the same result, bit for bit, without re-packing B. */
  gemmPacked(C: Float32Array, A: Float32Array, P: Float32Array, M: number, N: number, K: number,
             transA: boolean, accumulate: boolean): void;
}

/** Columns of one packed panel of B: the micro-kernel's width (assembly/gemm.ts NR). */
export const GEMM_PANEL = 8;

/** Floats of op(B) (K, N) packed by packB. */
export function gemmPackedSize(N: number, K: number): number { return Math.ceil(N / GEMM_PANEL) * K * GEMM_PANEL; }

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

function checkPack(k: string, P: unknown, B: unknown, N: number, K: number, transB: unknown): void {
  check.size(k, "N", N);
  check.size(k, "K", K);
  check.f32(k, "P", P, gemmPackedSize(N, K));
  check.f32(k, "B", B, K * N);
  flag(k, "transB", transB);
  disjoint(k, P, "B", B);
}

function checkGemmPacked(k: string, C: unknown, A: unknown, P: unknown, M: number, N: number, K: number,
                         transA: unknown, accumulate: unknown): void {
  check.size(k, "M", M);
  check.size(k, "N", N);
  check.size(k, "K", K);
  check.f32(k, "C", C, M * N);
  check.f32(k, "A", A, M * K);
  check.f32(k, "P", P, gemmPackedSize(N, K));
  flag(k, "transA", transA);
  flag(k, "accumulate", accumulate);
  disjoint(k, C, "A", A);
  disjoint(k, C, "P", P);
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
  packB(P, B, N, K, transB) {
    checkPack("packB", P, B, N, K, transB);
    const bp = transB ? 1 : N, bj = transB ? K : 1, W = GEMM_PANEL;
    for (let j = 0; j < Math.ceil(N / W) * W; j++) {
      const panel = Math.floor(j / W) * K * W + (j % W);
      for (let p = 0; p < K; p++) P[panel + p * W] = j < N ? B[p * bp + j * bj] : 0;
    }
  },
  gemmPacked(C, A, P, M, N, K, transA, accumulate) {
    checkGemmPacked("gemmPacked", C, A, P, M, N, K, transA, accumulate);
    const ai = transA ? 1 : K, ap = transA ? M : 1, W = GEMM_PANEL;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        const panel = Math.floor(j / W) * K * W + (j % W);
        let s = accumulate ? C[i * N + j] : 0;
        for (let p = 0; p < K; p++) s += A[i * ai + p * ap] * P[panel + p * W];
        C[i * N + j] = s;
      }
    }
  },
};

export function gemmWasm(ctx: WasmContext): GemmKernels {
  // Packing space for every thread, sized by the kernel's own blocking: allocated once, reused.
  const scratch = ctx.heap.u8(ctx.pool.call("gemm_f32_scratch") * ctx.pool.threads);
  if (ctx.pool.call("gemm_f32_panel") !== GEMM_PANEL) throw new Error("gemm: the kernel module's panel width differs from GEMM_PANEL; rebuild (npm run build)");
  return {
    gemm(C, A, B, M, N, K, transA, transB, accumulate) {
      const k = "gemm";
      checkGemm(k, C, A, B, M, N, K, transA, transB, accumulate);
      ctx.pool.run("gemm_f32", ctx.threadsFor(M * N * K), ctx.ptr(k, "C", C), ctx.ptr(k, "A", A), ctx.ptr(k, "B", B),
        M, N, K, +transA, +transB, +accumulate, scratch.byteOffset);
    },
    packB(P, B, N, K, transB) {
      const k = "packB";
      checkPack(k, P, B, N, K, transB);
      ctx.pool.run("gemm_pack_b_f32", ctx.threadsFor(N * K), ctx.ptr(k, "P", P), ctx.ptr(k, "B", B), N, K, +transB);
    },
    gemmPacked(C, A, P, M, N, K, transA, accumulate) {
      const k = "gemmPacked";
      checkGemmPacked(k, C, A, P, M, N, K, transA, accumulate);
      ctx.pool.run("gemm_f32_packed", ctx.threadsFor(M * N * K), ctx.ptr(k, "C", C), ctx.ptr(k, "A", A), ctx.ptr(k, "P", P),
        M, N, K, +transA, +accumulate, scratch.byteOffset);
    },
  };
}
