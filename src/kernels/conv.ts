// Convolution-network kernels besides the matrix product: im2col (so that a convolution is one GEMM:
// Y (K, OH·OW) = W (K, C·R·S) · cols (C·R·S, OH·OW), already planar), the bias + residual + ReLU that
// ends a convolution, max pooling and global average pooling; for the dual-module convolution,
// im2row (one patch per row) and the big module that computes only listed outputs. Images are planar (NCHW).
// Each kernel has a plain TypeScript twin (the reference) and a WebAssembly SIMD version.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";

/**
 * Where the R×S windows of a (C, H, W) image lie: window (oh, ow) starts at row oh·strideH − padTop
 * and column ow·strideW − padLeft; positions outside the image are padding. The output size is given,
 * so asymmetric padding (ONNX `pads`) and ceil-mode pooling are expressed through OH and OW.
 */
export interface PatchGeometry {
  C: number; H: number; W: number;
  R: number; S: number;
  strideH: number; strideW: number;
  padTop: number; padLeft: number;
  OH: number; OW: number;
}

/** Square windows with the same stride and padding on every side: PyTorch's Conv2d / MaxPool2d. */
export function patchGeometry(C: number, H: number, W: number, kernel: number, stride = 1, pad = 0): PatchGeometry {
  return {
    C, H, W, R: kernel, S: kernel, strideH: stride, strideW: stride, padTop: pad, padLeft: pad,
    OH: Math.floor((H + 2 * pad - kernel) / stride) + 1, OW: Math.floor((W + 2 * pad - kernel) / stride) + 1,
  };
}

/**
 * How convSensitive walks its outputs: channel by channel, eight positions sharing each weight load
 * ("channel": weight rows read once, best with many positions), or position by position, eight
 * channels sharing each patch load ("position": best with many channels and few positions).
 */
export type SensitiveGrouping = "channel" | "position";

export interface ConvKernels {
  /**
   * cols (C·R·S, OH·OW) from x (C, H, W): row (c·R + r)·S + s, column oh·OW + ow holds
   * x[c, oh·strideH − padTop + r, ow·strideW − padLeft + s], or 0 outside the image.
   */
  im2col(cols: Float32Array, x: Float32Array, g: PatchGeometry): void;
  /** y (N, K, P) ← y + bias (K) per plane, + residual (N, K, P) unless null, then max(·, 0) if relu. */
  biasAct(y: Float32Array, bias: Float32Array, residual: Float32Array | null, N: number, K: number, P: number, relu: boolean): void;
  /**
   * y (C, OH, OW) = max of x (C, H, W) over each window, padding ignored (−∞). g.C may count the
   * planes of a whole batch (N·C). NaN propagates.
   */
  maxpool(y: Float32Array, x: Float32Array, g: PatchGeometry): void;
  /** y (C) = mean of each plane of x (C, P); C may be N·C. */
  avgpoolGlobal(y: Float32Array, x: Float32Array, C: number, P: number): void;
  /**
   * patches (OH·OW, C·R·S) from x (C, H, W): im2col's matrix transposed, one patch per row, so
   * that output (k, p) is the contiguous dot product weight[k] · patches[p].
   */
  im2row(patches: Float32Array, x: Float32Array, g: PatchGeometry): void;
  /**
   * The big module of a dual-module convolution, computing only the listed outputs: for each of the
   * first `count` entries of idx (strictly ascending flat indices k·P + p into y (K, P), as
   * selectSensitive lists them), y[k·P + p] = bias[k] (0 if bias is null) + weight (K, CRS)[k] ·
   * patches (P, CRS)[p]. Nothing else in y is written. `grouping` changes the order of the work only
   * (default "channel").
   */
  convSensitive(y: Float32Array, weight: Float32Array, patches: Float32Array, bias: Float32Array | null,
                idx: Int32Array, count: number, K: number, P: number, CRS: number, grouping?: SensitiveGrouping): void;
}

// ---- argument checks, shared by both versions ----

/** Sizes that make every window overlap the image (ONNX requires pads smaller than the kernel). */
export function checkGeometry(k: string, g: PatchGeometry): void {
  if (typeof g !== "object" || g === null) throw new TypeError(`${k}: the geometry must be a PatchGeometry object`);
  for (const n of ["C", "H", "W", "OH", "OW"] as const) check.size(k, n, g[n]);
  for (const n of ["R", "S", "strideH", "strideW"] as const) check.size(k, n, g[n], 1);
  check.size(k, "padTop", g.padTop);
  check.size(k, "padLeft", g.padLeft);
  if (g.padTop >= g.R || g.padLeft >= g.S) {
    throw new RangeError(`${k}: padding (${g.padTop}, ${g.padLeft}) must be smaller than the window ${g.R}×${g.S}`);
  }
  if (g.OH > 0 && (g.OH - 1) * g.strideH - g.padTop >= g.H) {
    throw new RangeError(`${k}: OH = ${g.OH} puts the last window below the image (H = ${g.H}, stride ${g.strideH}, pad ${g.padTop})`);
  }
  if (g.OW > 0 && (g.OW - 1) * g.strideW - g.padLeft >= g.W) {
    throw new RangeError(`${k}: OW = ${g.OW} puts the last window right of the image (W = ${g.W}, stride ${g.strideW}, pad ${g.padLeft})`);
  }
}

export function disjoint(k: string, y: Float32Array, x: Float32Array): void {
  if (y.buffer === x.buffer && y.byteOffset < x.byteOffset + x.byteLength && x.byteOffset < y.byteOffset + y.byteLength) {
    throw new RangeError(`${k}: the output must not overlap x`);
  }
}

function checkIm2col(k: string, cols: unknown, x: unknown, g: PatchGeometry): void {
  checkGeometry(k, g);
  check.f32(k, "cols", cols, g.C * g.R * g.S * g.OH * g.OW);
  check.f32(k, "x", x, g.C * g.H * g.W);
  disjoint(k, cols, x);
}

function checkBiasAct(k: string, y: unknown, bias: unknown, residual: unknown, N: number, K: number, P: number, relu: unknown): void {
  check.size(k, "N", N);
  check.size(k, "K", K);
  check.size(k, "P", P);
  check.f32(k, "y", y, N * K * P);
  check.f32(k, "bias", bias, K);
  if (residual !== null) check.f32(k, "residual", residual, N * K * P);
  if (typeof relu !== "boolean") throw new TypeError(`${k}: relu must be a boolean, got ${typeof relu}`);
}

function checkMaxpool(k: string, y: unknown, x: unknown, g: PatchGeometry): void {
  checkGeometry(k, g);
  check.f32(k, "y", y, g.C * g.OH * g.OW);
  check.f32(k, "x", x, g.C * g.H * g.W);
  disjoint(k, y, x);
}

function checkAvgpool(k: string, y: unknown, x: unknown, C: number, P: number): void {
  check.size(k, "C", C);
  check.size(k, "P", P, 1);
  check.f32(k, "y", y, C);
  check.f32(k, "x", x, C * P);
  disjoint(k, y, x);
}

function checkIm2row(k: string, patches: unknown, x: unknown, g: PatchGeometry): void {
  checkGeometry(k, g);
  check.f32(k, "patches", patches, g.OH * g.OW * g.C * g.R * g.S);
  check.f32(k, "x", x, g.C * g.H * g.W);
  disjoint(k, patches, x);
}

/** The list is read on every call (it changes with every image): O(count), against O(count·CRS) of work. */
function checkSensitive(k: string, y: unknown, weight: unknown, patches: unknown, bias: unknown, idx: unknown,
                        count: number, K: number, P: number, CRS: number, grouping: unknown): void {
  if (grouping !== "channel" && grouping !== "position") throw new RangeError(`${k}: grouping must be "channel" or "position", got ${String(grouping)}`);
  check.size(k, "K", K);
  check.size(k, "P", P);
  check.size(k, "CRS", CRS);
  check.size(k, "count", count);
  check.f32(k, "y", y, K * P);
  check.f32(k, "weight", weight, K * CRS);
  check.f32(k, "patches", patches, P * CRS);
  if (bias !== null) check.f32(k, "bias", bias, K);
  if (!(idx instanceof Int32Array)) check.i32(k, "idx", idx, count); // throws the shared type error
  if (idx.length < count) throw new RangeError(`${k}: idx must have at least count = ${count} elements, got ${idx.length}`);
  disjoint(k, y, weight);
  disjoint(k, y, patches);
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const v = idx[i];
    if (v <= prev || v >= K * P) {
      throw new RangeError(`${k}: idx[${i}] = ${v} must be greater than idx[${i - 1}] = ${prev} (strictly ascending) and below K·P = ${K * P}`);
    }
    prev = v;
  }
}

// ---- reference: plain TypeScript, one element at a time ----

export const convReference: ConvKernels = {
  im2col(cols, x, g) {
    checkIm2col("im2col", cols, x, g);
    const { C, H, W, R, S, OH, OW } = g;
    let d = 0;
    for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
      for (let oh = 0; oh < OH; oh++) {
        const ih = oh * g.strideH - g.padTop + r;
        for (let ow = 0; ow < OW; ow++) {
          const iw = ow * g.strideW - g.padLeft + s;
          cols[d++] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[(c * H + ih) * W + iw] : 0;
        }
      }
    }
  },
  biasAct(y, bias, residual, N, K, P, relu) {
    checkBiasAct("biasAct", y, bias, residual, N, K, P, relu);
    for (let plane = 0; plane < N * K; plane++) {
      const b = bias[plane % K];
      for (let i = plane * P; i < (plane + 1) * P; i++) {
        let v = y[i] + b;
        if (residual) v += residual[i];
        y[i] = relu ? Math.max(v, 0) : v;
      }
    }
  },
  maxpool(y, x, g) {
    checkMaxpool("maxpool", y, x, g);
    const { C, H, W, R, S, OH, OW } = g;
    let d = 0;
    for (let c = 0; c < C; c++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
      let m = -Infinity;
      for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
        const ih = oh * g.strideH - g.padTop + r, iw = ow * g.strideW - g.padLeft + s;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) m = Math.max(m, x[(c * H + ih) * W + iw]);
      }
      y[d++] = m;
    }
  },
  avgpoolGlobal(y, x, C, P) {
    checkAvgpool("avgpoolGlobal", y, x, C, P);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let i = c * P; i < (c + 1) * P; i++) s += x[i];
      y[c] = s / P;
    }
  },
  im2row(patches, x, g) {
    checkIm2row("im2row", patches, x, g);
    const { C, H, W, R, S, OH, OW } = g;
    let d = 0;
    for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
      for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
        const ih = oh * g.strideH - g.padTop + r, iw = ow * g.strideW - g.padLeft + s;
        patches[d++] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[(c * H + ih) * W + iw] : 0;
      }
    }
  },
  convSensitive(y, weight, patches, bias, idx, count, K, P, CRS, grouping = "channel") {
    checkSensitive("convSensitive", y, weight, patches, bias, idx, count, K, P, CRS, grouping);
    for (let i = 0; i < count; i++) {
      const k = Math.floor(idx[i] / P), p = idx[i] - k * P;
      let s = bias ? bias[k] : 0;
      for (let j = 0; j < CRS; j++) s += weight[k * CRS + j] * patches[p * CRS + j];
      y[idx[i]] = s;
    }
  },
};

// ---- WebAssembly ----

export function convWasm(ctx: WasmContext): ConvKernels {
  // convSensitive's per-thread cursors, for up to limits.convChannels output channels.
  const sensitiveScratch = ctx.heap.u8(ctx.pool.call("conv_sensitive_scratch", ctx.limits.convChannels) * ctx.pool.threads);
  const geometry = (g: PatchGeometry) =>
    [g.C, g.H, g.W, g.R, g.S, g.strideH, g.strideW, g.padTop, g.padLeft, g.OH, g.OW] as const;
  return {
    im2col(cols, x, g) {
      const k = "im2col";
      checkIm2col(k, cols, x, g);
      ctx.pool.run("im2col_f32", ctx.threadsFor(cols.length), ctx.ptr(k, "cols", cols), ctx.ptr(k, "x", x), ...geometry(g));
    },
    biasAct(y, bias, residual, N, K, P, relu) {
      const k = "biasAct";
      checkBiasAct(k, y, bias, residual, N, K, P, relu);
      ctx.pool.run("bias_act_f32", ctx.threadsFor(y.length), ctx.ptr(k, "y", y), ctx.ptr(k, "bias", bias),
        ctx.ptr(k, "residual", residual), N, K, P, +relu);
    },
    maxpool(y, x, g) {
      const k = "maxpool";
      checkMaxpool(k, y, x, g);
      ctx.pool.run("maxpool_f32", ctx.threadsFor(y.length * g.R * g.S), ctx.ptr(k, "y", y), ctx.ptr(k, "x", x), ...geometry(g));
    },
    avgpoolGlobal(y, x, C, P) {
      const k = "avgpoolGlobal";
      checkAvgpool(k, y, x, C, P);
      ctx.pool.run("avgpool_global_f32", ctx.threadsFor(x.length), ctx.ptr(k, "y", y), ctx.ptr(k, "x", x), C, P);
    },
    im2row(patches, x, g) {
      const k = "im2row";
      checkIm2row(k, patches, x, g);
      ctx.pool.run("im2row_f32", ctx.threadsFor(patches.length), ctx.ptr(k, "patches", patches), ctx.ptr(k, "x", x), ...geometry(g));
    },
    convSensitive(y, weight, patches, bias, idx, count, K, P, CRS, grouping = "channel") {
      const k = "convSensitive";
      checkSensitive(k, y, weight, patches, bias, idx, count, K, P, CRS, grouping);
      ctx.within(k, "convChannels", K);
      ctx.pool.run(grouping === "channel" ? "conv_sensitive_f32" : "conv_sensitive_pos_f32", ctx.threadsFor(count * CRS), ctx.ptr(k, "y", y), ctx.ptr(k, "weight", weight),
        ctx.ptr(k, "patches", patches), ctx.ptr(k, "bias", bias), ctx.ptr(k, "idx", idx), count, K, P, CRS,
        sensitiveScratch.byteOffset);
    },
  };
}
