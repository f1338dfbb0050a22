// ResNet-18 in training mode (the topology and parameter table of src/conv/resnet.ts) with its
// backward pass written by hand, on the project's kernels, checked against finite differences in
// test/train-cnn.test.ts. Batch normalization is NOT folded here: in training it normalizes by the
// batch's statistics and updates the running ones (PyTorch's momentum 0.1, unbiased running
// variance); in evaluation it uses the running ones, which is what src/conv/resnet.ts folds for
// inference. Not here: the optimiser, data and the loop (src/conv/train.ts).
//
// Activations are channel-major, (C, N, H, W), so that a convolution is one GEMM for the whole batch,
// Z (K, N·OH·OW) = W (K, C·R·S) · im2colBatch(x), and each channel's values are contiguous for batch
// normalization. Backward: dW += dZ · colsᵀ, dcols = Wᵀ · dZ, dX += col2imBatch(dcols).
// Reads top to bottom: initialisation → layers (conv + BN, max pool, head) → the network.
import type { Runtime } from "../runtime/runtime.js";
import { type Backend, BN_EPS, type ConvSpec, referenceBackend, runtimeBackend } from "./layers.js";
import { type PatchGeometry, patchGeometry } from "../kernels/conv.js";
import * as check from "../kernels/check.js";
import {
  type ResNetConfig, type ResNetWeights, allocateResNetWeights, blockSpecs, checkConfig, resnetParameters, stemSpec,
} from "./resnet.js";
import { Rng } from "../util/random.js";

/** Where training runs: a Backend that also allocates the labels. */
export type TrainBackend = Backend & { i32(n: number): Int32Array };

export function trainBackend(rt: Runtime): TrainBackend {
  return { ...runtimeBackend(rt), i32: (n) => rt.heap.i32(n) };
}

/** The plain TypeScript kernels on ordinary arrays (tests). */
export const referenceTrainBackend: TrainBackend = { ...referenceBackend, i32: (n) => new Int32Array(n) };

/** PyTorch's BatchNorm2d default: running = (1 − m)·running + m·batch. */
export const BN_MOMENTUM = 0.1;

// ---------------------------------------------------------------------------------------------
// Initialisation: torchvision's resnet18

/**
 * Convolutions He-normal with fan-out (kaiming_normal_, mode "fan_out", nonlinearity "relu"),
 * batch norms γ = 1, β = 0, running mean 0 and variance 1, the classifier PyTorch's nn.Linear
 * default (uniform ±1/√fan-in, weight and bias). `flat` is in the order of resnetParameters.
 */
export function initResNetParams(c: ResNetConfig, flat: Float32Array, seed: number): void {
  const { tensors } = allocateResNetWeights(c, flat), rng = new Rng(seed);
  for (const p of resnetParameters(c)) {
    const t = tensors[p.name];
    if (p.shape.length === 4) {
      const std = Math.sqrt(2 / (p.shape[0] * p.shape[2] * p.shape[3]));
      for (let i = 0; i < t.length; i++) t[i] = std * rng.normal();
    } else if (p.name.startsWith("fc.")) {
      const bound = 1 / Math.sqrt(8 * c.width);
      rng.fillUniform(t, -bound, bound);
    } else {
      t.fill(p.name.endsWith(".weight") || p.name.endsWith(".running_var") ? 1 : 0);
    }
  }
}

/** Whether a parameter is learned (running statistics are not) and whether weight decay applies to it. */
export function parameterRole(name: string): { trained: boolean; decayed: boolean } {
  const trained = !name.endsWith(".running_mean") && !name.endsWith(".running_var");
  // Common practice: decay on convolution and classifier weights, not on BN's γ, β or on biases.
  const decayed = trained && name.endsWith(".weight") && (name.startsWith("fc.") || /conv\d\.weight$|downsample\.0\.weight$/.test(name));
  return { trained, decayed };
}

// ---------------------------------------------------------------------------------------------
// Convolution + batch normalization (+ residual) (+ ReLU)

/**
 * y (K, N, OH, OW) = [ReLU](BN(conv(x)) [+ residual]). Keeps z = conv(x) and the statistics it was
 * normalized with; dy (the gradient of y) is accumulated by the layers that read y.
 */
export class ConvBn {
  readonly geometry: PatchGeometry;
  readonly K: number;
  readonly CRS: number;
  readonly NP: number;        // N·OH·OW values per channel
  readonly z: Float32Array;   // (K, N, OH, OW) convolution output
  readonly y: Float32Array;   // (K, N, OH, OW) layer output
  readonly dy: Float32Array;  // (K, N, OH, OW) d loss / d y, then d loss / d z in place during backward
  // (K) each: the statistics of the last forward (batch or running), 1/√(var + ε), the folded
  // normalization y = scale·z + shift, and backward's per-channel sums (2K: dβ then dγ).
  private readonly mean: Float32Array;
  private readonly variance: Float32Array;
  private readonly invstd: Float32Array;
  private readonly scale: Float32Array;
  private readonly shift: Float32Array;
  private readonly sums: Float32Array;
  private readonly w: Record<"weight" | "gamma" | "beta" | "runMean" | "runVar", Float32Array>;
  private readonly g: Record<"weight" | "gamma" | "beta", Float32Array> | null;
  private readonly cols: Float32Array;

  /** `cols` is scratch shared by every layer: at least C·R·S·N·OH·OW floats. */
  constructor(private readonly be: Backend, readonly N: number, H: number, spec: ConvSpec, readonly relu: boolean,
              params: ResNetWeights, grads: ResNetWeights | null, conv: string, bn: string, cols: Float32Array) {
    const { inChannels: C, outChannels: K, kernel } = spec;
    this.geometry = patchGeometry(C, H, H, kernel, spec.stride, spec.pad);
    this.K = K;
    this.CRS = C * kernel * kernel;
    this.NP = N * this.geometry.OH * this.geometry.OW;
    const need = this.CRS * this.NP;
    if (cols.length < need) throw new RangeError(`ConvBn ${conv}: the column scratch holds ${cols.length} floats, this layer needs ${need}`);
    this.cols = cols.length === need ? cols : cols.subarray(0, need);
    const t = params.tensors;
    this.w = { weight: t[`${conv}.weight`], gamma: t[`${bn}.weight`], beta: t[`${bn}.bias`], runMean: t[`${bn}.running_mean`], runVar: t[`${bn}.running_var`] };
    this.g = grads && { weight: grads.tensors[`${conv}.weight`], gamma: grads.tensors[`${bn}.weight`], beta: grads.tensors[`${bn}.bias`] };
    this.z = be.f32(K * this.NP);
    this.y = be.f32(K * this.NP);
    this.dy = be.f32(grads ? K * this.NP : 0);
    this.mean = be.f32(K);
    this.variance = be.f32(K);
    this.invstd = be.f32(K);
    this.scale = be.f32(K);
    this.shift = be.f32(K);
    this.sums = be.f32(2 * K);
  }

  get outH(): number { return this.geometry.OH; }

  /** x (C, N, H, W); in training the batch's statistics normalize and update the running ones. */
  forward(x: Float32Array, residual: Float32Array | null, train: boolean): Float32Array {
    const k = this.be.kernels, { N, K, NP, CRS, cols, z, y, mean, invstd } = this;
    k.im2colBatch(cols, x, this.geometry, N);
    k.gemm(z, this.w.weight, cols, K, NP, CRS, false, false, false);
    const { gamma, beta, runMean, runVar } = this.w, { variance, scale, shift } = this;
    if (train) {
      if (NP < 2) throw new RangeError(`ConvBn: batch normalization in training needs more than one value per channel, got N·OH·OW = ${NP}`);
      k.channelStats(mean, variance, z, K, NP);
      for (let c = 0; c < K; c++) {
        invstd[c] = 1 / Math.sqrt(variance[c] + BN_EPS);
        runMean[c] = (1 - BN_MOMENTUM) * runMean[c] + BN_MOMENTUM * mean[c];
        runVar[c] = (1 - BN_MOMENTUM) * runVar[c] + BN_MOMENTUM * variance[c] * NP / (NP - 1);
      }
    } else {
      for (let c = 0; c < K; c++) { mean[c] = runMean[c]; invstd[c] = 1 / Math.sqrt(runVar[c] + BN_EPS); }
    }
    for (let c = 0; c < K; c++) {
      scale[c] = gamma[c] * invstd[c];
      shift[c] = beta[c] - scale[c] * mean[c];
    }
    k.bnApply(y, z, scale, shift, residual, K, NP, this.relu);
    return y;
  }

  /**
   * After a training forward of input x and once dy is complete: adds the parameter gradients,
   * adds d loss / d residual to dResidual and d loss / d x to dx (each unless null). Consumes dy.
   */
  backward(x: Float32Array, dx: Float32Array | null, dResidual: Float32Array | null): void {
    const k = this.be.kernels, { N, K, NP, CRS, cols, z, y, mean, invstd, dy, sums } = this, gr = this.g!;
    k.bnBackward(dy, z, this.relu ? y : null, dResidual, mean, invstd, this.w.gamma, sums, K, NP);
    for (let c = 0; c < K; c++) {
      gr.beta[c] += sums[c];
      gr.gamma[c] += sums[K + c];
    }
    // Convolution: the columns are recomputed rather than kept (C·R·S/K times the output); the same
    // scratch then holds their gradient.
    k.im2colBatch(cols, x, this.geometry, N);
    k.gemm(gr.weight, dy, cols, K, CRS, NP, false, true, true);
    if (dx) {
      k.gemm(cols, this.w.weight, dy, CRS, NP, K, true, false, false);
      k.col2imBatch(dx, cols, this.geometry, N, true);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Max pooling (the ImageNet stem)

/** y (C, N, OH, OW) = max over windows of x; the gradient goes to each window's first maximum. */
export class MaxPoolTrain {
  readonly geometry: PatchGeometry;
  readonly y: Float32Array;
  readonly dy: Float32Array;

  constructor(private readonly be: Backend, N: number, C: number, H: number, kernel: number, stride: number, pad: number, withGrad: boolean) {
    this.geometry = patchGeometry(N * C, H, H, kernel, stride, pad);
    const size = N * C * this.geometry.OH * this.geometry.OW;
    this.y = be.f32(size);
    this.dy = be.f32(withGrad ? size : 0);
  }

  get outH(): number { return this.geometry.OH; }

  forward(x: Float32Array): Float32Array {
    this.be.kernels.maxpool(this.y, x, this.geometry);
    return this.y;
  }

  /** dx += the gradient of x (C, N, H, W). */
  backward(x: Float32Array, dx: Float32Array): void {
    const { C, H, W, R, S, OH, OW, strideH, strideW, padTop, padLeft } = this.geometry, dy = this.dy;
    let o = 0;
    for (let c = 0; c < C; c++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++, o++) {
      let best = -1, m = -Infinity;
      for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) {
        const ih = oh * strideH - padTop + r, iw = ow * strideW - padLeft + s;
        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
        const i = (c * H + ih) * W + iw;
        if (x[i] > m || best < 0) { m = x[i]; best = i; }
      }
      dx[best] += dy[o];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Head: global average pooling, the classifier, softmax cross-entropy

class Head {
  readonly features: Float32Array; // (C, N): channel-major, as the activations
  readonly logits: Float32Array;   // (N, classes); after a training forward: d loss / d logits
  private readonly dFeatures: Float32Array;
  private readonly ones: Float32Array;

  constructor(private readonly be: Backend, readonly N: number, readonly C: number, readonly P: number, readonly classes: number,
              private readonly weight: Float32Array, private readonly bias: Float32Array,
              private readonly dWeight: Float32Array | null, private readonly dBias: Float32Array | null) {
    this.features = be.f32(C * N);
    this.logits = be.f32(N * classes);
    this.dFeatures = be.f32(dWeight ? C * N : 0);
    this.ones = be.f32(dWeight ? N : 0).fill(1);
  }

  /**
   * Logits of x (C, N, P), then the summed loss and the number of correct predictions (the first
   * maximum); in training the logits become the gradient of the mean loss.
   */
  forward(x: Float32Array, labels: Int32Array, train: boolean): { loss: number; correct: number } {
    const k = this.be.kernels, { N, C, classes } = this, logits = this.logits;
    k.avgpoolGlobal(this.features, x, C * N, this.P);
    for (let n = 0; n < N; n++) logits.set(this.bias, n * classes);
    // logits (N, classes) += featuresᵀ (N, C) · weightᵀ (C, classes)
    k.gemm(logits, this.features, this.weight, N, classes, C, true, true, true);
    let correct = 0;
    for (let n = 0; n < N; n++) {
      let best = 0;
      for (let j = 1; j < classes; j++) if (logits[n * classes + j] > logits[n * classes + best]) best = j;
      if (best === labels[n]) correct++;
    }
    const loss = k.softmaxCrossEntropy(logits, labels, N, classes, train ? 1 / N : 0);
    return { loss, correct };
  }

  /** dx (C, N, P) += the gradient of the head's input, from the logits' gradient. */
  backward(dx: Float32Array): void {
    const k = this.be.kernels, { N, C, P, classes } = this;
    k.gemm(this.dWeight!, this.logits, this.features, classes, C, N, true, true, true);
    k.gemm(this.dBias!, this.ones, this.logits, 1, classes, N, false, false, true);
    k.gemm(this.dFeatures, this.weight, this.logits, C, N, classes, true, true, false);
    for (let cn = 0; cn < C * N; cn++) {
      const d = this.dFeatures[cn] / P;
      for (let i = cn * P; i < (cn + 1) * P; i++) dx[i] += d;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The network

interface TrainBlock { conv1: ConvBn; conv2: ConvBn; downsample: ConvBn | null }

/**
 * ResNet-18 on a fixed batch: fill `input` (inChannels, N, size, size), channel-major (for one
 * channel the same as (N, 1, size, size)), and `labels` (N), then
 * forward(train) and, after a training forward, backward(). Parameters and their gradients are flat
 * arrays in the order of resnetParameters (gradients of the running statistics stay 0).
 */
export class ResNetGraph {
  readonly params: ResNetWeights;
  readonly grads: ResNetWeights | null; // null: evaluation only
  readonly input: Float32Array;
  readonly labels: Int32Array;
  readonly stem: ConvBn;
  readonly pool: MaxPoolTrain | null;
  readonly blocks: TrainBlock[];
  private readonly head: Head;
  private pending = false;

  constructor(be: TrainBackend, readonly config: ResNetConfig, params: Float32Array,
              grads: Float32Array | null, readonly batch: number) {
    checkConfig(config);
    check.size("ResNetGraph", "batch", batch, 1);
    const c = config, N = batch;
    this.params = allocateResNetWeights(c, params);
    this.grads = grads && allocateResNetWeights(c, grads);
    const specs = blockSpecs(c), stem = stemSpec(c);

    // One column scratch for every layer, sized for the largest.
    let H = c.imageSize, scratch = 0;
    const colsOf = (spec: ConvSpec, h: number) => {
      const g = patchGeometry(spec.inChannels, h, h, spec.kernel, spec.stride, spec.pad);
      scratch = Math.max(scratch, spec.inChannels * spec.kernel * spec.kernel * N * g.OH * g.OW);
      return g.OH;
    };
    H = colsOf(stem, H);
    if (c.stem === "imagenet") H = patchGeometry(1, H, H, 3, 2, 1).OH;
    for (const b of specs) { if (b.downsample) colsOf(b.downsample, H); H = colsOf(b.conv1, H); colsOf(b.conv2, H); }
    const cols = be.f32(scratch);

    const layer = (h: number, spec: ConvSpec, relu: boolean, conv: string, bn: string) =>
      new ConvBn(be, N, h, spec, relu, this.params, this.grads, conv, bn, cols);
    this.input = be.f32(N * c.inChannels * c.imageSize * c.imageSize);
    this.labels = be.i32(N);
    this.stem = layer(c.imageSize, stem, true, "conv1", "bn1");
    H = this.stem.outH;
    this.pool = c.stem === "imagenet" ? new MaxPoolTrain(be, N, c.width, H, 3, 2, 1, grads !== null) : null;
    if (this.pool) H = this.pool.outH;
    this.blocks = specs.map((b) => {
      const conv1 = layer(H, b.conv1, true, `${b.prefix}.conv1`, `${b.prefix}.bn1`);
      const downsample = b.downsample ? layer(H, b.downsample, false, `${b.prefix}.downsample.0`, `${b.prefix}.downsample.1`) : null;
      H = conv1.outH;
      return { conv1, conv2: layer(H, b.conv2, true, `${b.prefix}.conv2`, `${b.prefix}.bn2`), downsample };
    });
    const t = this.params.tensors, gt = this.grads?.tensors;
    this.head = new Head(be, N, 8 * c.width, H * H, c.classes, t["fc.weight"], t["fc.bias"], gt?.["fc.weight"] ?? null, gt?.["fc.bias"] ?? null);
  }

  /** (N, classes) of the last forward; after a training forward, d loss / d logits instead. */
  get logits(): Float32Array { return this.head.logits; }

  /**
   * Summed cross-entropy and correct predictions of the batch in `input` / `labels`. Training
   * (batch statistics, running statistics updated) prepares backward(); evaluation uses the running ones.
   */
  forward(train: boolean): { loss: number; correct: number } {
    if (train && !this.grads) throw new Error("ResNetGraph.forward: this graph is for evaluation only (it has no gradients)");
    let x = this.stem.forward(this.input, null, train);
    if (this.pool) x = this.pool.forward(x);
    for (const b of this.blocks) {
      const shortcut = b.downsample ? b.downsample.forward(x, null, train) : x;
      x = b.conv2.forward(b.conv1.forward(x, null, train), shortcut, train);
    }
    this.pending = train;
    return this.head.forward(x, this.labels, train);
  }

  /** Adds the gradient of the last training forward's mean loss to `grads` (zero them before). */
  backward(): void {
    if (!this.pending) throw new Error("ResNetGraph.backward: no training forward to differentiate (once per forward(true))");
    this.pending = false;
    const layers = [this.stem, ...this.blocks.flatMap((b) => [b.conv1, b.conv2, ...(b.downsample ? [b.downsample] : [])])];
    for (const l of layers) l.dy.fill(0);
    this.pool?.dy.fill(0);
    const last = this.blocks[this.blocks.length - 1].conv2;
    this.head.backward(last.dy);
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const b = this.blocks[i];
      const [x, dx] = i > 0 ? [this.blocks[i - 1].conv2.y, this.blocks[i - 1].conv2.dy]
        : this.pool ? [this.pool.y, this.pool.dy] : [this.stem.y, this.stem.dy];
      b.conv2.backward(b.conv1.y, b.conv1.dy, b.downsample ? b.downsample.dy : dx);
      b.conv1.backward(x, dx, null);
      b.downsample?.backward(x, dx, null);
    }
    if (this.pool) this.pool.backward(this.stem.y, this.stem.dy);
    this.stem.backward(this.input, null, null);
  }
}
