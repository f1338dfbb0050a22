// Convolution kernels for training on a whole batch at once, with activations channel-major,
// (C, N, H, W): im2colBatch lays out the patches of every image side by side, so that one GEMM per
// layer computes the batch, Z (K, N·OH·OW) = W (K, C·R·S) · cols, already channel-major; col2imBatch
// is its adjoint, which turns the gradient of the columns into the images' (dX = col2im(Wᵀ · dZ)).
// With N = 1 they are im2col and its adjoint on one image. Batch normalization in training, on the
// same layout (channel k's M = N·OH·OW values contiguous): the channels' statistics, the normalization
// with its statistics folded into a scale and a shift, and its backward pass with the ReLU and residual
// that follow it.
// A plain TypeScript twin (the reference) and a WebAssembly SIMD version of each.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";
import { type PatchGeometry, checkGeometry, disjoint } from "./conv.js";

export interface ConvGradKernels {
  /**
   * cols (C·R·S, N·OH·OW) from x (C, N, H, W): row (c·R + r)·S + s, column (n·OH + oh)·OW + ow holds
   * x[c, n, oh·strideH − padTop + r, ow·strideW − padLeft + s], or 0 outside the image.
   */
  im2colBatch(cols: Float32Array, x: Float32Array, g: PatchGeometry, N: number): void;
  /**
   * x (C, N, H, W) ← (accumulate ? x : 0) + every entry of cols (C·R·S, N·OH·OW) added where
   * im2colBatch reads it from; entries that im2colBatch fills with padding are dropped.
   */
  col2imBatch(x: Float32Array, cols: Float32Array, g: PatchGeometry, N: number, accumulate: boolean): void;
  /** mean (K) and biased variance (K) of each channel of z (K, M), two-pass; sums accumulated in float64. */
  channelStats(mean: Float32Array, variance: Float32Array, z: Float32Array, K: number, M: number): void;
  /**
   * y (K, M) = scale[k]·z + shift[k], + residual (K, M) unless null, then max(·, 0) if relu.
   * y may be z itself but must not partly overlap it.
   */
  bnApply(y: Float32Array, z: Float32Array, scale: Float32Array, shift: Float32Array, residual: Float32Array | null,
          K: number, M: number, relu: boolean): void;
  /**
   * Backward of y = [ReLU](γ·x̂ + β [+ residual]), x̂ = (z − mean)·invstd with the batch's statistics,
   * dy (K, M) in place: dy ← 0 where y ≤ 0 (y null: no ReLU); dResidual += dy (unless null); then
   * sums[k] = Σ dy (dβ) and sums[K + k] = Σ dy·x̂ (dγ), and dy ← γ·invstd/M · (M·dy − dβ − x̂·dγ),
   * the gradient of z.
   */
  bnBackward(dy: Float32Array, z: Float32Array, y: Float32Array | null, dResidual: Float32Array | null, mean: Float32Array,
             invstd: Float32Array, gamma: Float32Array, sums: Float32Array, K: number, M: number): void;
}

function checkBatch(k: string, cols: unknown, x: unknown, g: PatchGeometry, N: number): void {
  checkGeometry(k, g);
  check.size(k, "N", N, 1);
  if (g.OW >= 65536) throw new RangeError(`${k}: OW = ${g.OW} must be below 65536`); // the kernel packs column ranges in 16 bits
  check.f32(k, "cols", cols, g.C * g.R * g.S * N * g.OH * g.OW);
  check.f32(k, "x", x, g.C * N * g.H * g.W);
  disjoint(k, cols, x);
}

function flag(k: string, accumulate: unknown): void {
  if (typeof accumulate !== "boolean") throw new TypeError(`${k}: accumulate must be a boolean, got ${typeof accumulate}`);
}

/** Visits every entry of the columns with the flat index of the input it comes from (−1: padding). */
function forEachEntry(g: PatchGeometry, N: number, visit: (col: number, src: number) => void): void {
  const { C, H, W, R, S, OH, OW } = g;
  let i = 0;
  for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
    for (let n = 0; n < N; n++) for (let oh = 0; oh < OH; oh++) {
      const ih = oh * g.strideH - g.padTop + r;
      for (let ow = 0; ow < OW; ow++, i++) {
        const iw = ow * g.strideW - g.padLeft + s;
        visit(i, ih >= 0 && ih < H && iw >= 0 && iw < W ? ((c * N + n) * H + ih) * W + iw : -1);
      }
    }
  }
}

function checkStats(k: string, mean: unknown, variance: unknown, z: unknown, K: number, M: number): void {
  check.size(k, "K", K);
  check.size(k, "M", M, 1);
  check.f32(k, "mean", mean, K);
  check.f32(k, "variance", variance, K);
  check.f32(k, "z", z, K * M);
}

function checkApply(k: string, y: unknown, z: unknown, scale: unknown, shift: unknown, residual: unknown, K: number, M: number, relu: unknown): void {
  check.size(k, "K", K);
  check.size(k, "M", M);
  check.f32(k, "y", y, K * M);
  check.f32(k, "z", z, K * M);
  check.f32(k, "scale", scale, K);
  check.f32(k, "shift", shift, K);
  if (residual !== null) check.f32(k, "residual", residual, K * M);
  if (typeof relu !== "boolean") throw new TypeError(`${k}: relu must be a boolean, got ${typeof relu}`);
  if (y !== z) disjoint(k, y, z);
}

function checkBackward(k: string, dy: unknown, z: unknown, y: unknown, dResidual: unknown, mean: unknown, invstd: unknown,
                       gamma: unknown, sums: unknown, K: number, M: number): void {
  check.size(k, "K", K);
  check.size(k, "M", M, 1);
  check.f32(k, "dy", dy, K * M);
  check.f32(k, "z", z, K * M);
  if (y !== null) check.f32(k, "y", y, K * M);
  if (dResidual !== null) { check.f32(k, "dResidual", dResidual, K * M); disjoint(k, dy, dResidual); }
  check.f32(k, "mean", mean, K);
  check.f32(k, "invstd", invstd, K);
  check.f32(k, "gamma", gamma, K);
  check.f32(k, "sums", sums, 2 * K);
  disjoint(k, dy, z);
}

export const convGradReference: ConvGradKernels = {
  im2colBatch(cols, x, g, N) {
    checkBatch("im2colBatch", cols, x, g, N);
    forEachEntry(g, N, (i, src) => { cols[i] = src < 0 ? 0 : x[src]; });
  },
  col2imBatch(x, cols, g, N, accumulate) {
    checkBatch("col2imBatch", cols, x, g, N);
    flag("col2imBatch", accumulate);
    if (!accumulate) x.fill(0);
    forEachEntry(g, N, (i, src) => { if (src >= 0) x[src] += cols[i]; });
  },
  channelStats(mean, variance, z, K, M) {
    checkStats("channelStats", mean, variance, z, K, M);
    for (let k = 0; k < K; k++) {
      let s = 0, v = 0;
      for (let i = k * M; i < (k + 1) * M; i++) s += z[i];
      const m = Math.fround(s / M);
      for (let i = k * M; i < (k + 1) * M; i++) v += (z[i] - m) ** 2;
      mean[k] = m;
      variance[k] = v / M;
    }
  },
  bnApply(y, z, scale, shift, residual, K, M, relu) {
    checkApply("bnApply", y, z, scale, shift, residual, K, M, relu);
    for (let k = 0; k < K; k++) {
      for (let i = k * M; i < (k + 1) * M; i++) {
        let v = Math.fround(scale[k] * z[i]) + shift[k];
        if (residual) v += residual[i];
        y[i] = relu ? Math.max(v, 0) : v;
      }
    }
  },
  bnBackward(dy, z, y, dResidual, mean, invstd, gamma, sums, K, M) {
    checkBackward("bnBackward", dy, z, y, dResidual, mean, invstd, gamma, sums, K, M);
    for (let k = 0; k < K; k++) {
      const m = mean[k], is = invstd[k];
      let sb = 0, sg = 0;
      for (let i = k * M; i < (k + 1) * M; i++) {
        if (y && !(y[i] > 0)) dy[i] = 0;
        if (dResidual) dResidual[i] += dy[i];
        sb += dy[i];
        sg += dy[i] * (z[i] - m);
      }
      sg *= is;
      sums[k] = sb;
      sums[K + k] = sg;
      const a = gamma[k] * is / M;
      for (let i = k * M; i < (k + 1) * M; i++) dy[i] = a * (M * dy[i] - sb - (z[i] - m) * is * sg);
    }
  },
};

export function convGradWasm(ctx: WasmContext): ConvGradKernels {
  const geometry = (g: PatchGeometry) =>
    [g.C, g.H, g.W, g.R, g.S, g.strideH, g.strideW, g.padTop, g.padLeft, g.OH, g.OW] as const;
  return {
    im2colBatch(cols, x, g, N) {
      const k = "im2colBatch";
      checkBatch(k, cols, x, g, N);
      ctx.pool.run("im2col_batch_f32", ctx.threadsFor(cols.length), ctx.ptr(k, "cols", cols), ctx.ptr(k, "x", x), ...geometry(g), N);
    },
    col2imBatch(x, cols, g, N, accumulate) {
      const k = "col2imBatch";
      checkBatch(k, cols, x, g, N);
      flag(k, accumulate);
      ctx.pool.run("col2im_batch_f32", ctx.threadsFor(cols.length), ctx.ptr(k, "x", x), ctx.ptr(k, "cols", cols),
        ...geometry(g), N, +accumulate);
    },
    channelStats(mean, variance, z, K, M) {
      const k = "channelStats";
      checkStats(k, mean, variance, z, K, M);
      ctx.pool.run("channel_stats_f32", ctx.threadsFor(2 * z.length), ctx.ptr(k, "mean", mean), ctx.ptr(k, "variance", variance),
        ctx.ptr(k, "z", z), K, M);
    },
    bnApply(y, z, scale, shift, residual, K, M, relu) {
      const k = "bnApply";
      checkApply(k, y, z, scale, shift, residual, K, M, relu);
      ctx.pool.run("bn_apply_f32", ctx.threadsFor(y.length), ctx.ptr(k, "y", y), ctx.ptr(k, "z", z), ctx.ptr(k, "scale", scale),
        ctx.ptr(k, "shift", shift), ctx.ptr(k, "residual", residual), K, M, +relu);
    },
    bnBackward(dy, z, y, dResidual, mean, invstd, gamma, sums, K, M) {
      const k = "bnBackward";
      checkBackward(k, dy, z, y, dResidual, mean, invstd, gamma, sums, K, M);
      ctx.pool.run("bn_backward_f32", ctx.threadsFor(3 * dy.length), ctx.ptr(k, "dy", dy), ctx.ptr(k, "z", z), ctx.ptr(k, "y", y),
        ctx.ptr(k, "dResidual", dResidual), ctx.ptr(k, "mean", mean), ctx.ptr(k, "invstd", invstd), ctx.ptr(k, "gamma", gamma),
        ctx.ptr(k, "sums", sums), K, M);
    },
  };
}
