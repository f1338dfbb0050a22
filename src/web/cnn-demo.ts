// The web page's image-classifier demo as a class that runs in a browser and in Node alike: a
// ResNet-18 checkpoint from bytes made dual-module (little modules fitted on a few training images,
// thresholds calibrated per insensitive ratio and mode on a few more), one 28×28 image classified
// dense and dual, with every dual layer's sensitive map, and the time per image of both. The page
// (web/cnn.js) only draws it; the browser test runs the same class in Node to check the page's
// predictions. Not here: fetching, the DOM, where the images come from (`dmi serve`).
import type { Runtime } from "../runtime/runtime.js";
import { decodeResNet } from "../conv/checkpoint.js";
import { DualResNet, type LittleFitReport } from "../conv/dual.js";
import { type InsensitiveOutput, runtimeDualBackend } from "../conv/dual-conv.js";
import { timeInterleaved } from "../util/timing.js";

/** The images the demo needs, as `dmi serve` sends them: 28×28 grayscale pixels 0–255, row-major, images back to back. */
export interface CnnDemoImages {
  dataset: string;
  classes: string[];   // (10) class names
  fit: Uint8Array;     // (n, 28, 28) training images the little modules are fitted on
  calibrate: Uint8Array; // (n, 28, 28) further training images the thresholds are calibrated on
  test: Uint8Array;    // (n, 28, 28) test images to pick from
  testLabels: number[];
}

/** CnnDemoImages as JSON: the pixel arrays in base64. */
export type CnnDemoImagesJson = Omit<CnnDemoImages, "fit" | "calibrate" | "test"> & { fit: string; calibrate: string; test: string };

/** One dual layer's sensitive outputs on the last image: the fraction of its channels computed by the big module, per position. */
export interface SensitiveMap { name: string; height: number; width: number; channels: number; sensitive: Float32Array; ratio: number }

export interface Prediction { logits: Float32Array; probabilities: number[]; top: number }

export interface Classification {
  dense: Prediction;
  dual: Prediction;
  /** Insensitive fraction of all dual-layer outputs on this image. */
  achievedRatio: number;
  maps: SensitiveMap[];
}

export interface ImageTimes { denseMs: number; dualMs: number }

const PIXELS = 28 * 28;

export function decodeCnnImages(json: CnnDemoImagesJson): CnnDemoImages {
  const bytes = (b64: string) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return { ...json, fit: bytes(json.fit), calibrate: bytes(json.calibrate), test: bytes(json.test) };
}

/** Images back to back (n, 28, 28) as network inputs (1, 28, 28) in [0, 1]. */
export function imageInputs(pixels: Uint8Array): Float32Array[] {
  if (pixels.length % PIXELS !== 0) throw new RangeError(`imageInputs: ${pixels.length} bytes are not whole 28×28 images`);
  return Array.from({ length: pixels.length / PIXELS }, (_, i) => Float32Array.from(pixels.subarray(i * PIXELS, (i + 1) * PIXELS), (v) => v / 255));
}

function prediction(logits: Float32Array): Prediction {
  let top = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[top]) top = i;
  const exps = Array.from(logits, (v) => Math.exp(v - logits[top])), sum = exps.reduce((a, b) => a + b, 0);
  return { logits: logits.slice(), probabilities: exps.map((e) => e / sum), top };
}

export class CnnDemo {
  readonly net: DualResNet;
  readonly fit: LittleFitReport[];
  readonly test: Float32Array[];
  private readonly calibration: Float32Array[];
  private readonly thresholds = new Map<string, number[]>();

  private constructor(rt: Runtime, checkpoint: Uint8Array, readonly images: CnnDemoImages) {
    const { config, weights } = decodeResNet(checkpoint, "the CNN checkpoint");
    if (config.inChannels !== 1 || config.imageSize !== 28 || config.classes !== images.classes.length) {
      throw new Error(`CnnDemo: the page draws 28×28 grayscale images in ${images.classes.length} classes; the checkpoint takes ` +
        `${config.inChannels}×${config.imageSize}×${config.imageSize} in ${config.classes}: serve a ResNet trained by \`dmi train cnn\``);
    }
    this.net = new DualResNet(runtimeDualBackend(rt), config, weights, { mode: "little" });
    this.fit = this.net.fit(imageInputs(images.fit));
    this.calibration = imageInputs(images.calibrate);
    this.test = imageInputs(images.test);
  }

  /** The dual network of a ResNet checkpoint's bytes, its little modules fitted on `images.fit`. */
  static create(rt: Runtime, checkpoint: ArrayBuffer | Uint8Array, images: CnnDemoImages): CnnDemo {
    return new CnnDemo(rt, checkpoint instanceof Uint8Array ? checkpoint : new Uint8Array(checkpoint), images);
  }

  /** Calibrates every layer's threshold to insensitive ratio `ratio` in `mode` on the calibration images (once per pair). */
  setRatio(ratio: number, mode: InsensitiveOutput): void {
    const key = `${mode} ${ratio}`;
    this.net.mode = mode;
    let t = this.thresholds.get(key);
    if (!t) {
      this.net.calibrate(this.calibration, ratio);
      t = this.net.layers.map((l) => l.dual.threshold);
      this.thresholds.set(key, t);
    }
    this.net.layers.forEach((l, i) => { l.dual.threshold = t![i]; });
  }

  /** `image` (1, 28, 28) in [0, 1] dense and dual at the current ratio, with every dual layer's sensitive map. */
  classify(image: Float32Array): Classification {
    const dense = prediction(this.net.dense.forward(image));
    // Each layer's estimates (its residual included) are recorded during the dual pass; sensitive = above the threshold.
    const recorded = this.net.layers.map((l) => (l.dual.samples = []));
    let dual: Prediction;
    try {
      dual = prediction(this.net.forward(image));
    } finally {
      for (const l of this.net.layers) l.dual.samples = null;
    }
    let outputs = 0, insensitive = 0;
    const maps = this.net.layers.map(({ name, dual: layer }, i): SensitiveMap => {
      const pre = recorded[i][0], K = layer.K, P = layer.P, side = Math.round(Math.sqrt(P));
      const sensitive = new Float32Array(P);
      let count = 0;
      for (let k = 0; k < K; k++) for (let p = 0; p < P; p++) if (pre[k * P + p] > layer.threshold) { sensitive[p]++; count++; }
      for (let p = 0; p < P; p++) sensitive[p] /= K;
      outputs += K * P; insensitive += K * P - count;
      return { name, height: side, width: P / side, channels: K, sensitive, ratio: 1 - count / (K * P) };
    });
    return { dense, dual, achievedRatio: insensitive / outputs, maps };
  }

  /** Median time per image, dense and dual at the current ratio, over `rounds` interleaved passes through the test images. */
  async imageTimes(rounds = 3): Promise<ImageTimes> {
    const xs = this.test, n = xs.length;
    const [denseMs, dualMs] = await timeInterleaved([
      { run: (i) => this.net.dense.forward(xs[i % n]) }, { run: (i) => this.net.forward(xs[i % n]) },
    ], { warmup: 3, rounds: rounds * n });
    return { denseMs, dualMs };
  }
}
