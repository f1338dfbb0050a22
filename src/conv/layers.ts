// Inference layers of a convolutional network at a fixed batch size, on the project's kernels:
// a convolution with its batch normalization folded in (im2col + GEMM, then bias, residual and ReLU
// in one pass), max pooling, global average pooling and the linear classifier. Activations are
// planar (N, C, H, W). Each layer allocates its output once; a different batch size is an error.
// Not here: training (backward passes) and the dual-module convolution.
import type { Runtime } from "../runtime/runtime.js";
import { type Kernels, reference } from "../kernels/index.js";
import { type PatchGeometry, patchGeometry } from "../kernels/conv.js";
import type { Profile, Stopwatch } from "../util/stopwatch.js";

// ---------------------------------------------------------------------------------------------
// Where the layers run

/** The kernels and an allocator whose arrays they accept: a Runtime's heap, or plain arrays for the reference. */
export interface Backend {
  kernels: Kernels;
  f32(n: number): Float32Array;
}

export function runtimeBackend(rt: Runtime): Backend {
  return { kernels: rt.kernels, f32: (n) => rt.heap.f32(n) };
}

/** The plain TypeScript kernels on ordinary arrays: the algorithmic reference of a whole network. */
export const referenceBackend: Backend = { kernels: reference, f32: (n) => new Float32Array(n) };

/** Where a forward pass of the dense network spends its time (benchmarks only): see util/stopwatch.ts. */
export type ConvProfile = Profile<"im2col" | "gemm" | "rest">;
export type ConvWatch = Stopwatch<keyof ConvProfile>;

// ---------------------------------------------------------------------------------------------
// Batch normalization, folded into the convolution before it

/** PyTorch's BatchNorm2d parameters and running statistics, each (K). */
export interface BatchNormParams {
  weight: Float32Array;
  bias: Float32Array;
  running_mean: Float32Array;
  running_var: Float32Array;
}

/** PyTorch's default. */
export const BN_EPS = 1e-5;

/**
 * The weight (K, CRS) and bias (K) of conv-then-BN as one convolution: with
 * a = γ / √(var + ε), W' = a·W and b' = a·(b − mean) + β (computed in float64, rounded once).
 */
export function foldBatchNorm(weight: Float32Array, bias: Float32Array | null, bn: BatchNormParams, K: number,
                              eps = BN_EPS): { weight: Float32Array; bias: Float32Array } {
  const CRS = weight.length / K;
  if (!Number.isInteger(CRS)) throw new RangeError(`foldBatchNorm: weight has ${weight.length} elements, not a multiple of K = ${K}`);
  for (const [name, a] of Object.entries(bn)) {
    if (a.length !== K) throw new RangeError(`foldBatchNorm: ${name} must have K = ${K} elements, got ${a.length}`);
  }
  const w = new Float32Array(weight.length), b = new Float32Array(K);
  for (let k = 0; k < K; k++) {
    if (!(bn.running_var[k] + eps > 0)) throw new RangeError(`foldBatchNorm: running_var[${k}] + eps = ${bn.running_var[k] + eps} must be > 0`);
    const a = bn.weight[k] / Math.sqrt(bn.running_var[k] + eps);
    for (let i = k * CRS; i < (k + 1) * CRS; i++) w[i] = a * weight[i];
    b[k] = a * ((bias ? bias[k] : 0) - bn.running_mean[k]) + bn.bias[k];
  }
  return { weight: w, bias: b };
}

// ---------------------------------------------------------------------------------------------
// Convolution

export interface ConvSpec {
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride: number;
  pad: number;
}

/**
 * y (N, K, OH, OW) = conv(x (N, C, H, W)) + bias, optionally + a residual, optionally ReLU. Weight
 * (K, C·R·S) in PyTorch's (K, C, R, S) order. One image at a time: im2col into a shared scratch
 * (skipped for 1×1, stride 1, no padding, where x already is the patch matrix), then
 * Y_n (K, OH·OW) = W · cols_n on the GEMM kernel, which is already the planar output.
 */
export class Conv2d {
  readonly geometry: PatchGeometry;
  readonly K: number;
  readonly CRS: number;
  readonly P: number;       // OH·OW output positions per image
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly y: Float32Array; // (N, K, OH, OW)
  private readonly pointwise: boolean;

  /** `cols` is scratch shared by the convolutions of one network: at least colsLength(...) floats. */
  constructor(private readonly be: Backend, readonly N: number, H: number, W: number, spec: ConvSpec,
              weight: Float32Array, bias: Float32Array, private readonly cols: Float32Array) {
    const { inChannels: C, outChannels: K, kernel, stride, pad } = spec;
    this.geometry = patchGeometry(C, H, W, kernel, stride, pad);
    this.K = K;
    this.CRS = C * kernel * kernel;
    this.P = this.geometry.OH * this.geometry.OW;
    if (weight.length !== K * this.CRS) {
      throw new RangeError(`Conv2d: weight must be (${K}, ${C}, ${kernel}, ${kernel}) = ${K * this.CRS} floats, got ${weight.length}`);
    }
    if (bias.length !== K) throw new RangeError(`Conv2d: bias must have ${K} floats, got ${bias.length}`);
    this.pointwise = kernel === 1 && stride === 1 && pad === 0;
    if (!this.pointwise && cols.length < this.CRS * this.P) {
      throw new RangeError(`Conv2d: the im2col scratch holds ${cols.length} floats, this convolution needs ${this.CRS * this.P}`);
    }
    this.weight = be.f32(weight.length);
    this.weight.set(weight);
    this.bias = be.f32(K);
    this.bias.set(bias);
    this.y = be.f32(N * K * this.P);
  }

  /** Floats of im2col scratch a convolution needs (0 when it needs none). */
  static colsLength(H: number, W: number, spec: ConvSpec): number {
    if (spec.kernel === 1 && spec.stride === 1 && spec.pad === 0) return 0;
    const g = patchGeometry(spec.inChannels, H, W, spec.kernel, spec.stride, spec.pad);
    return spec.inChannels * spec.kernel * spec.kernel * g.OH * g.OW;
  }

  get outH(): number { return this.geometry.OH; }
  get outW(): number { return this.geometry.OW; }

  /** Returns this.y, overwritten by the next call. */
  forward(x: Float32Array, residual: Float32Array | null, relu: boolean, watch: ConvWatch): Float32Array {
    const { kernels: k } = this.be;
    const g = this.geometry, inSize = g.C * g.H * g.W, outSize = this.K * this.P;
    const cols = this.pointwise ? null : this.cols.length === this.CRS * this.P ? this.cols : this.cols.subarray(0, this.CRS * this.P);
    for (let n = 0; n < this.N; n++) {
      const xn = this.N === 1 ? x : x.subarray(n * inSize, (n + 1) * inSize);
      const yn = this.N === 1 ? this.y : this.y.subarray(n * outSize, (n + 1) * outSize);
      if (cols) {
        k.im2col(cols, xn, g);
        watch.lap("im2col");
      }
      k.gemm(yn, this.weight, cols ?? xn, this.K, this.P, this.CRS, false, false, false);
      watch.lap("gemm");
    }
    k.biasAct(this.y, this.bias, residual, this.N, this.K, this.P, relu);
    watch.lap("rest");
    return this.y;
  }
}

// ---------------------------------------------------------------------------------------------
// Pooling and the classifier

/** y (N, C, OH, OW) = max over square windows of x (N, C, H, W). */
export class MaxPool2d {
  readonly geometry: PatchGeometry;
  readonly y: Float32Array;

  constructor(private readonly be: Backend, readonly N: number, C: number, H: number, W: number,
              kernel: number, stride: number, pad: number) {
    // The pooling kernel treats the batch's N·C planes alike.
    this.geometry = patchGeometry(N * C, H, W, kernel, stride, pad);
    this.y = be.f32(N * C * this.geometry.OH * this.geometry.OW);
  }

  get outH(): number { return this.geometry.OH; }
  get outW(): number { return this.geometry.OW; }

  forward(x: Float32Array, watch: ConvWatch): Float32Array {
    this.be.kernels.maxpool(this.y, x, this.geometry);
    watch.lap("rest");
    return this.y;
  }
}

/**
 * logits (N, classes) = mean over positions of x (N, C, H, W) · weightᵀ + bias, with PyTorch's
 * nn.Linear weight (classes, C) and bias (classes).
 */
export class PoolLinear {
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly features: Float32Array; // (N, C)
  readonly logits: Float32Array;   // (N, classes)

  constructor(private readonly be: Backend, readonly N: number, readonly C: number, readonly P: number,
              readonly classes: number, weight: Float32Array, bias: Float32Array) {
    if (weight.length !== classes * C) throw new RangeError(`PoolLinear: weight must be (${classes}, ${C}), got ${weight.length} floats`);
    if (bias.length !== classes) throw new RangeError(`PoolLinear: bias must have ${classes} floats, got ${bias.length}`);
    this.weight = be.f32(weight.length);
    this.weight.set(weight);
    this.bias = be.f32(classes);
    this.bias.set(bias);
    this.features = be.f32(N * C);
    this.logits = be.f32(N * classes);
  }

  forward(x: Float32Array, watch: ConvWatch): Float32Array {
    const k = this.be.kernels;
    k.avgpoolGlobal(this.features, x, this.N * this.C, this.P);
    k.gemm(this.logits, this.features, this.weight, this.N, this.classes, this.C, false, true, false);
    k.biasAct(this.logits, this.bias, null, this.N, this.classes, 1, false);
    watch.lap("rest");
    return this.logits;
  }
}
