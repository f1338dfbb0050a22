// Dual-module ResNet-18 at batch 1, readable top to bottom: build → fit → calibrate → forward →
// accounting.
//
// Which convolutions are dual: both 3×3 convolutions of every basic block (16 of them), each
// followed by a ReLU (the second one after the residual add, whose value is known exactly and added
// to the estimate before the threshold). Dense: the stem (C ≤ 3 input channels: nothing to save),
// the 1×1 shortcut projections (no ReLU right after them, so no insensitive region), pooling and
// the classifier. Little modules are fitted on the dense network's activations; thresholds are
// calibrated layer by layer through the dual network itself (layer l sees the outputs of the
// already thresholded layers before it), to a target insensitive ratio per layer.
// Not here: training (src/conv/train.ts), the little module and the dual convolution (src/conv/dual-conv.ts).
import { ResNet, type ResNetConfig, type ResNetWeights } from "./resnet.js";
import { NO_WATCH, Stopwatch } from "../util/stopwatch.js";
import { DualConv2d, type DualBackend, type DualProfile, type InsensitiveOutput, LittleConv, LittleConvFit,
  type LittleConvOptions } from "./dual-conv.js";
import { calibrate } from "../dual/calibrate.js";
import type { LayerCurve } from "./allocate.js";

export interface DualResNetOptions extends LittleConvOptions {
  mode?: InsensitiveOutput;   // default "zero"
}

export interface DualLayerReport {
  name: string;
  K: number; CRS: number; positions: number; k: number; bits: number;
  threshold: number;
  insensitiveRatio: number;   // achieved, over the images since the last reset
  // Per image:
  macsDense: number;
  macsBig: number;
  macsLittle: number;         // raw multiply-adds at `bits`
  macsLittleFp32eq: number;   // macsLittle · bits / 32
  projectionAdds: number;
}

export interface DualResNetReport {
  images: number;
  layers: DualLayerReport[];
  /** Per image, whole network: the dense network's multiply-adds, and those of its dense-only parts (stem, shortcuts, classifier). */
  macsDenseNetwork: number;
  macsDenseOnly: number;
  macsBig: number; macsLittle: number; macsLittleFp32eq: number; projectionAdds: number;
  /** Insensitive fraction of all dual-layer outputs. */
  insensitiveRatio: number;
  /** macsDenseNetwork / (macsDenseOnly + macsBig + macsLittleFp32eq + projectionAdds), an addition counted as one op. */
  opsReductionFp32eq: number;
  /** The same without the projection's additions. */
  opsReductionFp32eqNoProjection: number;
}

export interface LittleFitReport { name: string; k: number; samples: number; relativeError: number }

export class DualResNet {
  readonly dense: ResNet;
  readonly layers: { name: string; dual: DualConv2d }[] = [];

  constructor(private readonly be: DualBackend, readonly config: ResNetConfig, weights: ResNetWeights,
              readonly options: DualResNetOptions = {}) {
    this.dense = new ResNet(be, config, weights, 1);
    const seed = options.seed ?? 1;
    this.dense.blocks.forEach((b, i) => {
      const stage = Math.floor(i / 2) + 1, block = i % 2;
      for (const [j, conv] of [[1, b.conv1], [2, b.conv2]] as const) {
        const little = new LittleConv(be, conv.geometry, conv.K, { ...options, seed: seed + 2 * i + j - 1 });
        // SeerNet's predictor is the big convolution quantized: its weights are known, nothing to fit.
        if (little.predictor === "seernet") little.setWeights(conv.weight, conv.bias);
        this.layers.push({ name: `layer${stage}.${block}.conv${j}`, dual: new DualConv2d(be, conv, little) });
      }
    });
    this.mode = options.mode ?? "zero";
  }

  get mode(): InsensitiveOutput { return this.layers[0].dual.mode; }

  set mode(mode: InsensitiveOutput) {
    if (mode !== "zero" && mode !== "little") throw new RangeError(`DualResNet: mode must be "zero" or "little", got ${String(mode)}`);
    for (const l of this.layers) l.dual.mode = mode;
  }

  // -------------------------------------------------------------------------------------------
  // Fit: every little module from the dense network's activations on `images`

  /** Each dual layer's input in the dense network's last forward pass. */
  private denseInputs(): Float32Array[] {
    const d = this.dense, inputs: Float32Array[] = [];
    let x = d.pool ? d.pool.y : d.stem.y;
    for (const b of d.blocks) {
      inputs.push(x, b.conv1.y);
      x = b.conv2.y;
    }
    return inputs;
  }

  /**
   * Fits every little module (ridge λ: options.lambda, default 1e-4); returns the fit error on the same
   * images. The seernet predictor has nothing to fit: only its error is measured.
   */
  fit(images: Float32Array[], lambda = this.options.lambda ?? 1e-4): LittleFitReport[] {
    if (images.length === 0) throw new RangeError("DualResNet.fit: no images to fit on");
    if (this.layers[0].dual.little.predictor === "seernet") return this.fitError(images);
    const fits = this.layers.map((l) => new LittleConvFit(l.dual.little, { backend: this.be.fit }));
    const Y = this.be.fit.alloc(Math.max(...this.layers.map((l) => l.dual.K * l.dual.P)));
    try {
      for (const image of images) {
        this.dense.forward(this.checkImage("DualResNet.fit", image));
        this.denseInputs().forEach((x, i) => {
          const dual = this.layers[i].dual, y = Y.subarray(0, dual.K * dual.P);
          fits[i].add(x, dual.targets(x, y), y);
        });
      }
      fits.forEach((f) => f.solve(lambda));
    } finally {
      this.be.fit.release?.(Y);
    }
    return this.fitError(images);
  }

  /** 1 − R² of every little module against the big pre-activations (dense activations) on `images`. */
  fitError(images: Float32Array[]): LittleFitReport[] {
    if (images.length === 0) throw new RangeError("DualResNet.fitError: no images");
    const Y = this.be.fit.alloc(Math.max(...this.layers.map((l) => l.dual.K * l.dual.P)));
    const E = this.be.fit.alloc(Y.length);
    const err = this.layers.map(() => ({ se: 0, sum: 0, sq: 0, n: 0 }));
    try {
      for (const image of images) {
        this.dense.forward(this.checkImage("DualResNet.fitError", image));
        this.denseInputs().forEach((x, i) => {
          const { dual } = this.layers[i], K = dual.K, P = dual.P;
          const y = Y.subarray(0, K * P), e = E.subarray(0, K * P);
          dual.little.estimate(e, x, dual.targets(x, y)); // e (K, P), y (P, K)
          const s = err[i];
          for (let p = 0; p < P; p++) for (let k = 0; k < K; k++) {
            const t = y[p * K + k], d = e[k * P + p] - t;
            s.se += d * d; s.sum += t; s.sq += t * t; s.n++;
          }
        });
      }
    } finally {
      this.be.fit.release?.(Y);
      this.be.fit.release?.(E);
    }
    return this.layers.map((l, i) => {
      const s = err[i], variance = s.sq / s.n - (s.sum / s.n) ** 2;
      // A dead layer (constant targets) is fitted exactly or not at all.
      const relativeError = variance > 0 ? s.se / s.n / variance : s.se === 0 ? 0 : Infinity;
      return { name: l.name, k: l.dual.little.k, samples: s.n, relativeError };
    });
  }

  /**
   * Dual layer `i`'s pre-activations on `image`, (K, P) each: exact (the big module on the dense
   * network's input to the layer) and as the little module estimates them; without the residual
   * that a block's second convolution adds before its ReLU. For Figures 3 and 4.
   */
  preActivations(image: Float32Array, i: number): { big: Float32Array; little: Float32Array } {
    if (!Number.isInteger(i) || i < 0 || i >= this.layers.length) throw new RangeError(`DualResNet.preActivations: layer ${i} is not one of the ${this.layers.length} dual layers`);
    const { dual } = this.layers[i], K = dual.K, P = dual.P;
    const Y = this.be.fit.alloc(K * P), E = this.be.fit.alloc(K * P);
    try {
      this.dense.forward(this.checkImage("DualResNet.preActivations", image));
      const x = this.denseInputs()[i];
      dual.little.estimate(E, x, dual.targets(x, Y));
      const big = new Float32Array(K * P);
      for (let p = 0; p < P; p++) for (let k = 0; k < K; k++) big[k * P + p] = Y[p * K + k];
      return { big, little: E.slice() };
    } finally {
      this.be.fit.release?.(Y);
      this.be.fit.release?.(E);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Calibration: one threshold per layer for a target insensitive ratio

  /**
   * Sets every layer's threshold for one ratio, or a ratio per layer (allocateRatios); returns the
   * achieved ratio per layer on the calibration images.
   */
  calibrate(images: Float32Array[], ratio: number | number[]): number[] {
    const ratios = typeof ratio === "number" ? this.layers.map(() => ratio) : ratio;
    if (ratios.length !== this.layers.length) throw new RangeError(`DualResNet.calibrate: ${ratios.length} ratios for ${this.layers.length} dual layers`);
    for (const r of ratios) if (!(r >= 0 && r < 1)) throw new RangeError(`DualResNet.calibrate: ratio must be in [0, 1), got ${r}`);
    if (images.length === 0) throw new RangeError("DualResNet.calibrate: no calibration images");
    for (const l of this.layers) l.dual.threshold = -Infinity;
    const achieved = this.layers.map((l, i) => {
      const samples: Float32Array[] = [];
      l.dual.samples = samples;
      try {
        for (const image of images) this.run(this.checkImage("DualResNet.calibrate", image), undefined, i);
      } finally {
        l.dual.samples = null;
      }
      const all = new Float32Array(samples.reduce((n, s) => n + s.length, 0));
      samples.reduce((at, s) => { all.set(s, at); return at + s.length; }, 0);
      const c = calibrate("relu", all, ratios[i]);
      l.dual.threshold = c.lo;
      return c.achieved;
    });
    this.resetCounts();
    return achieved;
  }

  /**
   * Each layer's damage curve for allocateRatios: with that layer alone dual (the others dense) at
   * each of `ratios` (ascending, from 0), the mean KL divergence of the network's softmax from the
   * dense one's over `images`; macs are the layer's dense multiply-adds. Leaves every layer dense.
   */
  sensitivity(images: Float32Array[], ratios: number[]): LayerCurve[] {
    const f = "DualResNet.sensitivity";
    if (images.length === 0) throw new RangeError(`${f}: no images`);
    if (ratios[0] !== 0 || ratios.some((r, j) => j > 0 && !(r > ratios[j - 1] && r < 1))) throw new RangeError(`${f}: ratios must ascend from 0 within [0, 1), got ${ratios.join(", ")}`);
    for (const l of this.layers) l.dual.threshold = -Infinity;
    const dense = images.map((x) => logSoftmax(this.forward(this.checkImage(f, x))));
    const curves = this.layers.map((l, i) => {
      const samples: Float32Array[] = [];
      l.dual.samples = samples;
      try {
        for (const image of images) this.run(image, undefined, i);
      } finally {
        l.dual.samples = null;
      }
      const all = new Float32Array(samples.reduce((n, s) => n + s.length, 0));
      samples.reduce((at, s) => { all.set(s, at); return at + s.length; }, 0);
      const damage = ratios.map((r) => {
        if (r === 0) return 0;
        l.dual.threshold = calibrate("relu", all, r).lo;
        let kl = 0;
        images.forEach((x, n) => {
          const q = logSoftmax(this.forward(x)), p = dense[n];
          for (let j = 0; j < p.length; j++) kl += Math.exp(p[j]) * (p[j] - q[j]);
        });
        return kl / images.length;
      });
      l.dual.threshold = -Infinity;
      return { macs: l.dual.K * l.dual.P * l.dual.CRS, ratios: ratios.slice(), damage };
    });
    this.resetCounts();
    return curves;
  }

  // -------------------------------------------------------------------------------------------
  // Forward

  /** Logits (classes) of one image (inChannels, imageSize, imageSize); a view the next call overwrites. */
  forward(image: Float32Array, profile?: DualProfile): Float32Array {
    return this.run(this.checkImage("DualResNet.forward", image), profile, this.layers.length)!;
  }

  /** The forward pass, stopped after dual layer `last` (returning null) unless last = layers.length. */
  private run(image: Float32Array, profile: DualProfile | undefined, last: number): Float32Array | null {
    // The dense parts are timed here; each dual layer times its own steps.
    const d = this.dense, watch = new Stopwatch(profile);
    d.input.set(image);
    let x = d.stem.forward(d.input, null, true, NO_WATCH);
    if (d.pool) x = d.pool.forward(x, NO_WATCH);
    watch.lap("dense");
    for (let i = 0; i < d.blocks.length; i++) {
      const b = d.blocks[i];
      watch.skip();
      const shortcut = b.downsample ? b.downsample.forward(x, null, false, NO_WATCH) : x;
      watch.lap("dense");
      const h = this.layers[2 * i].dual.forward(x, null, profile);
      if (last === 2 * i) return null;
      x = this.layers[2 * i + 1].dual.forward(h, shortcut, profile);
      if (last === 2 * i + 1) return null;
    }
    watch.skip();
    const logits = d.head.forward(x, NO_WATCH);
    watch.lap("rest");
    return logits;
  }

  private checkImage(f: string, image: Float32Array): Float32Array {
    const c = this.config, n = c.inChannels * c.imageSize * c.imageSize;
    if (!(image instanceof Float32Array) || image.length !== n) {
      const got = image instanceof Float32Array ? `${image.length} floats` : String((image as object)?.constructor?.name ?? typeof image);
      throw new RangeError(`${f}: an image must be a Float32Array of ${c.inChannels}×${c.imageSize}×${c.imageSize} = ${n} floats (channels × height × width), got ${got}`);
    }
    return image;
  }

  // -------------------------------------------------------------------------------------------
  // Accounting

  resetCounts(): void {
    for (const l of this.layers) Object.assign(l.dual.counts, { images: 0, sensitive: 0, littleRuns: 0 });
  }

  report(): DualResNetReport {
    const images = this.layers[0].dual.counts.images;
    const per = (v: number) => (images > 0 ? v / images : 0);
    const layers = this.layers.map(({ name, dual }): DualLayerReport => {
      const c = dual.counts, little = dual.little, total = dual.K * dual.P;
      const macsLittle = per(c.littleRuns * little.macs);
      return {
        name, K: dual.K, CRS: dual.CRS, positions: dual.P, k: little.k, bits: little.bits, threshold: dual.threshold,
        insensitiveRatio: c.images > 0 ? 1 - c.sensitive / (c.images * total) : 0,
        macsDense: total * dual.CRS, macsBig: per(c.sensitive * dual.CRS),
        macsLittle, macsLittleFp32eq: macsLittle * little.bits / 32,
        projectionAdds: per(c.littleRuns * little.projectionAdds),
      };
    });
    const sum = (f: (l: DualLayerReport) => number) => layers.reduce((s, l) => s + f(l), 0);
    const macsDenseOnly = this.dense.macs - sum((l) => l.macsDense);
    const macsBig = sum((l) => l.macsBig), macsLittle = sum((l) => l.macsLittle);
    const macsLittleFp32eq = sum((l) => l.macsLittleFp32eq), projectionAdds = sum((l) => l.projectionAdds);
    const outputs = sum((l) => l.K * l.positions);
    return {
      images, layers, macsDenseNetwork: this.dense.macs, macsDenseOnly, macsBig, macsLittle, macsLittleFp32eq, projectionAdds,
      insensitiveRatio: sum((l) => l.insensitiveRatio * l.K * l.positions) / outputs,
      opsReductionFp32eq: this.dense.macs / (macsDenseOnly + macsBig + macsLittleFp32eq + projectionAdds),
      opsReductionFp32eqNoProjection: this.dense.macs / (macsDenseOnly + macsBig + macsLittleFp32eq),
    };
  }
}

/** log softmax of logits, in float64. */
function logSoftmax(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of logits) m = Math.max(m, v);
  let s = 0;
  for (const v of logits) s += Math.exp(v - m);
  const log = m + Math.log(s);
  return Float64Array.from(logits, (v) => v - log);
}
