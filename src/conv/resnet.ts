// ResNet-18 (He et al. 2016; torchvision's resnet18) for inference, readable top to bottom:
// config → parameter table → weights → the network → forward.
//
// Topology: a stem, four stages of two basic blocks (width w, 2w, 4w, 8w channels; the first block
// of stages 2–4 halves the resolution with stride 2 and a 1×1 stride-2 projection on its shortcut),
// global average pooling, a linear classifier. Basic block: conv3×3-BN-ReLU, conv3×3-BN, + shortcut,
// ReLU. Three stems:
//   "small":    conv 3×3 stride 1 pad 1 (for 28×28 MNIST / Fashion-MNIST; no max pool, as CIFAR ResNets)
//   "stride2":  conv 3×3 stride 2 pad 1 (28×28 → 14×14 before layer1: the full widths 64–512 train in
//               a quarter of the "small" stem's operations; ImageNet's stem downsamples too, 4x)
//   "imagenet": conv 7×7 stride 2 pad 3, then max pool 3×3 stride 2 pad 1 (torchvision's, for 224×224×3)
// Not here: training, the dual-module convolution.
import { type Backend, BN_EPS, type BatchNormParams, Conv2d, type ConvProfile, type ConvSpec, MaxPool2d, PoolLinear,
  foldBatchNorm } from "./layers.js";
import { Stopwatch } from "../util/stopwatch.js";
import { Rng } from "../util/random.js";

// ---------------------------------------------------------------------------------------------
// Config

export type ResNetStem = "small" | "stride2" | "imagenet";
export const RESNET_STEMS: readonly ResNetStem[] = ["small", "stride2", "imagenet"];

export interface ResNetConfig {
  stem: ResNetStem;
  inChannels: number;
  /** Input height and width. */
  imageSize: number;
  /** Channels of the first stage; 64 is the full ResNet-18, narrower keeps depth and topology. */
  width: number;
  classes: number;
}

/** ResNet-18 for 28×28 grayscale images in 10 classes (MNIST, Fashion-MNIST), with a 3×3 stem of stride 1 or 2. */
export function resnet18Small(width = 64, stem: "small" | "stride2" = "small"): ResNetConfig {
  return { stem, inChannels: 1, imageSize: 28, width, classes: 10 };
}

/** torchvision's ResNet-18 at ImageNet shapes (224×224×3, 1000 classes). */
export function resnet18ImageNet(width = 64): ResNetConfig {
  return { stem: "imagenet", inChannels: 3, imageSize: 224, width, classes: 1000 };
}

export function checkConfig(c: ResNetConfig): void {
  if (!RESNET_STEMS.includes(c.stem)) throw new RangeError(`ResNet: stem must be one of ${RESNET_STEMS.map((t) => `"${t}"`).join(", ")}, got ${String(c.stem)}`);
  for (const k of ["inChannels", "imageSize", "width", "classes"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new RangeError(`ResNet: ${k} must be a positive integer, got ${c[k]}`);
  }
  // The last stage must keep at least one position; 28×28 is the smallest input the imagenet stem
  // (7×7 stride 2, max pool) is used with (a grayscale variant of torchvision's network: 14, 7, …, 1).
  const minSize = c.stem === "imagenet" ? 28 : c.stem === "stride2" ? 16 : 8;
  if (c.imageSize < minSize) throw new RangeError(`ResNet: imageSize must be at least ${minSize} with the ${c.stem} stem, got ${c.imageSize}`);
}

// ---------------------------------------------------------------------------------------------
// Parameter table: PyTorch (torchvision) names and shapes, in this order in the flat buffer

export interface ParameterShape { name: string; shape: number[] }

/** One basic block: its convolutions, and the projection on its shortcut when the shape changes. */
export interface BlockSpec { prefix: string; conv1: ConvSpec; conv2: ConvSpec; downsample: ConvSpec | null }

export const STAGES = 4;
export const BLOCKS_PER_STAGE = 2;

export function stemSpec(c: ResNetConfig): ConvSpec {
  return c.stem === "imagenet"
    ? { inChannels: c.inChannels, outChannels: c.width, kernel: 7, stride: 2, pad: 3 }
    : { inChannels: c.inChannels, outChannels: c.width, kernel: 3, stride: c.stem === "stride2" ? 2 : 1, pad: 1 };
}

export function blockSpecs(c: ResNetConfig): BlockSpec[] {
  const blocks: BlockSpec[] = [];
  let channels = c.width;
  for (let s = 0; s < STAGES; s++) {
    const out = c.width << s;
    for (let b = 0; b < BLOCKS_PER_STAGE; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      blocks.push({
        prefix: `layer${s + 1}.${b}`,
        conv1: { inChannels: channels, outChannels: out, kernel: 3, stride, pad: 1 },
        conv2: { inChannels: out, outChannels: out, kernel: 3, stride: 1, pad: 1 },
        downsample: stride !== 1 || channels !== out ? { inChannels: channels, outChannels: out, kernel: 1, stride, pad: 0 } : null,
      });
      channels = out;
    }
  }
  return blocks;
}

const BN_FIELDS = ["weight", "bias", "running_mean", "running_var"] as const;

/** Every parameter of the network (no bias on convolutions: BN follows each one). */
export function resnetParameters(c: ResNetConfig): ParameterShape[] {
  checkConfig(c);
  const table: ParameterShape[] = [];
  const conv = (name: string, s: ConvSpec) => table.push({ name: `${name}.weight`, shape: [s.outChannels, s.inChannels, s.kernel, s.kernel] });
  const bn = (name: string, K: number) => { for (const f of BN_FIELDS) table.push({ name: `${name}.${f}`, shape: [K] }); };
  conv("conv1", stemSpec(c));
  bn("bn1", c.width);
  for (const b of blockSpecs(c)) {
    conv(`${b.prefix}.conv1`, b.conv1);
    bn(`${b.prefix}.bn1`, b.conv1.outChannels);
    conv(`${b.prefix}.conv2`, b.conv2);
    bn(`${b.prefix}.bn2`, b.conv2.outChannels);
    if (b.downsample) {
      conv(`${b.prefix}.downsample.0`, b.downsample);
      bn(`${b.prefix}.downsample.1`, b.downsample.outChannels);
    }
  }
  table.push({ name: "fc.weight", shape: [c.classes, 8 * c.width] }, { name: "fc.bias", shape: [c.classes] });
  return table;
}

// ---------------------------------------------------------------------------------------------
// Weights: one flat buffer cut into named views, in the order of the table

export interface ResNetWeights {
  flat: Float32Array;
  tensors: Record<string, Float32Array>;
}

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function allocateResNetWeights(c: ResNetConfig, flat?: Float32Array): ResNetWeights {
  const table = resnetParameters(c);
  const total = table.reduce((n, p) => n + count(p.shape), 0);
  flat ??= new Float32Array(total);
  if (flat.length !== total) throw new RangeError(`ResNet weights: expected ${total} floats for ${describe(c)}, got ${flat.length}`);
  const tensors: Record<string, Float32Array> = {};
  let at = 0;
  for (const p of table) { tensors[p.name] = flat.subarray(at, at + count(p.shape)); at += count(p.shape); }
  return { flat, tensors };
}

/**
 * He-normal convolutions, PyTorch's default linear layer, and batch norms with random affine
 * parameters and running statistics (so that folding them is exercised): for tests and benchmarks.
 */
export function randomResNetWeights(c: ResNetConfig, seed: number): ResNetWeights {
  const w = allocateResNetWeights(c), rng = new Rng(seed);
  for (const p of resnetParameters(c)) {
    const t = w.tensors[p.name];
    if (p.name.endsWith("running_var")) rng.fillUniform(t, 0.5, 1.5);
    else if (p.name.endsWith("running_mean") || (p.name.endsWith(".bias") && !p.name.startsWith("fc"))) rng.fillUniform(t, -0.1, 0.1);
    else if (p.shape.length === 1 && !p.name.startsWith("fc")) rng.fillUniform(t, 0.8, 1.2); // BN γ
    else if (p.shape.length === 4) {
      const std = Math.sqrt(2 / (p.shape[1] * p.shape[2] * p.shape[3]));
      for (let i = 0; i < t.length; i++) t[i] = std * rng.normal();
    } else {
      const bound = 1 / Math.sqrt(8 * c.width);
      rng.fillUniform(t, -bound, bound);
    }
  }
  return w;
}

export function describe(c: ResNetConfig): string {
  return `ResNet-18 (${c.stem} stem, ${c.inChannels}×${c.imageSize}×${c.imageSize} input, width ${c.width}, ${c.classes} classes)`;
}

// ---------------------------------------------------------------------------------------------
// The network: BN folded into every convolution, activations allocated once for a fixed batch

interface Block { conv1: Conv2d; conv2: Conv2d; downsample: Conv2d | null }

export class ResNet {
  readonly input: Float32Array; // (N, inChannels, imageSize, imageSize)
  readonly stem: Conv2d;
  readonly pool: MaxPool2d | null;
  readonly blocks: Block[];
  readonly head: PoolLinear;
  /** Multiply-adds of one image's forward pass (convolutions and classifier). */
  readonly macs: number;

  constructor(be: Backend, readonly config: ResNetConfig, weights: ResNetWeights, readonly batch = 1) {
    checkConfig(config);
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`ResNet: batch must be a positive integer, got ${batch}`);
    const c = config, N = batch;
    for (const p of resnetParameters(c)) {
      const t = weights.tensors[p.name];
      if (!(t instanceof Float32Array) || t.length !== count(p.shape)) {
        throw new RangeError(`ResNet: weight ${p.name} must be [${p.shape}] (${count(p.shape)} floats), got ${t ? `${t.length} floats` : "nothing"}: the weights do not match ${describe(c)}`);
      }
    }
    const blocks = blockSpecs(c);

    // Every convolution shares one im2col scratch, sized for the largest.
    let H = c.imageSize, scratch = Conv2d.colsLength(H, H, stemSpec(c));
    const stemOut = Math.floor((H + 2 * stemSpec(c).pad - stemSpec(c).kernel) / stemSpec(c).stride) + 1;
    H = c.stem === "imagenet" ? Math.floor((stemOut + 2 - 3) / 2) + 1 : stemOut;
    for (const b of blocks) {
      scratch = Math.max(scratch, Conv2d.colsLength(H, H, b.conv1));
      H = Math.floor((H + 2 - 3) / b.conv1.stride) + 1;
      scratch = Math.max(scratch, Conv2d.colsLength(H, H, b.conv2));
    }
    const cols = be.f32(scratch);

    const t = weights.tensors;
    const conv = (H: number, spec: ConvSpec, name: string, bn: string) => {
      const f = foldBatchNorm(t[`${name}.weight`], null, bnParams(t, bn), spec.outChannels, BN_EPS);
      return new Conv2d(be, N, H, H, spec, f.weight, f.bias, cols);
    };

    this.input = be.f32(N * c.inChannels * c.imageSize * c.imageSize);
    this.stem = conv(c.imageSize, stemSpec(c), "conv1", "bn1");
    H = this.stem.outH;
    this.pool = c.stem === "imagenet" ? new MaxPool2d(be, N, c.width, H, H, 3, 2, 1) : null;
    if (this.pool) H = this.pool.outH;
    this.blocks = blocks.map((b) => {
      const conv1 = conv(H, b.conv1, `${b.prefix}.conv1`, `${b.prefix}.bn1`);
      const downsample = b.downsample ? conv(H, b.downsample, `${b.prefix}.downsample.0`, `${b.prefix}.downsample.1`) : null;
      H = conv1.outH;
      const conv2 = conv(H, b.conv2, `${b.prefix}.conv2`, `${b.prefix}.bn2`);
      return { conv1, conv2, downsample };
    });
    this.head = new PoolLinear(be, N, 8 * c.width, H * H, c.classes, t["fc.weight"], t["fc.bias"]);

    const convMacs = (cv: Conv2d) => cv.K * cv.CRS * cv.P;
    this.macs = convMacs(this.stem) + this.head.C * c.classes
      + this.blocks.reduce((n, b) => n + convMacs(b.conv1) + convMacs(b.conv2) + (b.downsample ? convMacs(b.downsample) : 0), 0);
  }

  /**
   * Logits (N, classes) of images (N, inChannels, imageSize, imageSize), planar float32. The result
   * is a view that the next call overwrites. A profile, if given, accumulates where the time went.
   */
  forward(images: Float32Array, profile?: ConvProfile): Float32Array {
    const c = this.config;
    if (!(images instanceof Float32Array) || images.length !== this.input.length) {
      const got = images instanceof Float32Array ? `${images.length} floats` : String((images as object)?.constructor?.name ?? typeof images);
      throw new RangeError(`ResNet.forward: images must be a Float32Array of ${this.batch}×${c.inChannels}×${c.imageSize}×${c.imageSize} = ${this.input.length} floats (batch × channels × height × width), got ${got}`);
    }
    const watch = new Stopwatch(profile);
    this.input.set(images);
    let x = this.stem.forward(this.input, null, true, watch);
    if (this.pool) x = this.pool.forward(x, watch);
    for (const b of this.blocks) {
      const shortcut = b.downsample ? b.downsample.forward(x, null, false, watch) : x;
      const h = b.conv1.forward(x, null, true, watch);
      x = b.conv2.forward(h, shortcut, true, watch);
    }
    return this.head.forward(x, watch);
  }
}

function bnParams(t: Record<string, Float32Array>, name: string): BatchNormParams {
  return { weight: t[`${name}.weight`], bias: t[`${name}.bias`], running_mean: t[`${name}.running_mean`], running_var: t[`${name}.running_var`] };
}
