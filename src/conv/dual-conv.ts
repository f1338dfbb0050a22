// The dual-module convolution: the RNN recipe over the patches of a 3×3 convolution whose output
// goes through a ReLU.
//   Little module: a sparse random (Achlioptas) projection of every C·R·S patch to k values, then
//   INT8 (or INT4) weights (K, k) and a bias fitted in closed form (ridge) to the big convolution's
//   pre-activations after batch-norm folding; at run time the projected patches are quantized (one
//   scale per image or per position) and all estimates are one INT8 GEMM (K, k) · (k, positions).
//   Sensitivity: the estimated pre-activation (plus the residual, known exactly, for the second
//   convolution of a block) at or below the layer's threshold is insensitive: its output is 0
//   ("zero") or the ReLU of the estimate ("little").
//   Big module: only the sensitive (channel, position) outputs (convSensitive), on the patches of the
//   positions that have one (im2rowSensitive); then bias, residual and ReLU as in the dense layer.
// Two projections:
//   "patch":   the paper's recipe, one k × C·R·S matrix applied to every patch (a GEMM of the patches
//              with the dense ternary matrix here; its additions are counted as a sparse kernel would).
//   "channel": a Kronecker-structured Achlioptas matrix P_c ⊗ I_{R·S}: each pixel's C channels are
//              projected to c' values once (a 1×1 convolution), and a patch of the projected image is
//              the projected patch (k = c'·R·S). Overlapping patches share the work, so the
//              projection costs about c'·C/3 additions per pixel instead of k·C·R·S/3 per position.
// A competitor, as an option (predictor "seernet", Cao et al. 2019): no projection and no fit; the
// little module is the big convolution itself with its weights quantized per row to INT4 or INT2
// (and its input to INT8, one scale per image), on the same int8 patches and GEMM.
// Not here: the network (src/conv/dual.ts), training of the big weights.
import { type Backend, type Conv2d, referenceBackend, runtimeBackend } from "./layers.js";
import { NO_WATCH, type Profile, Stopwatch } from "../util/stopwatch.js";
import type { Runtime } from "../runtime/runtime.js";
import type { PatchGeometry } from "../kernels/conv.js";
import { blockProjection, jlDim } from "../dual/projection.js";
import { type FitOptions, type GemmBackend, RidgeAccumulator, plainBackend } from "../dual/ridge.js";
import { quantizeRows } from "../dual/quantize.js";

// ---------------------------------------------------------------------------------------------
// Where it runs

/** A CNN backend plus the integer arrays and the fit's product backend the dual module needs. */
export interface DualBackend extends Backend {
  i8(n: number): Int8Array;
  i32(n: number): Int32Array;
  fit: GemmBackend;
}

export function runtimeDualBackend(rt: Runtime): DualBackend {
  return {
    ...runtimeBackend(rt), i8: (n) => rt.heap.i8(n), i32: (n) => rt.heap.i32(n),
    fit: { gemm: rt.kernels.gemm, alloc: (n) => rt.heap.f32(n), release: (a) => rt.heap.release(a) },
  };
}

export const referenceDualBackend: DualBackend = {
  ...referenceBackend, i8: (n) => new Int8Array(n), i32: (n) => new Int32Array(n), fit: plainBackend,
};

// ---------------------------------------------------------------------------------------------
// Options

export type ConvProjection = "patch" | "channel";
/** The paper's projection + fitted little weights, or the big weights quantized (SeerNet). */
export type ConvPredictor = "projection" | "seernet";
export type InsensitiveOutput = "zero" | "little";
/** Little-module precisions that run on the INT8 GEMM (INT4 levels are int8 values in [−7, 7], INT2 in [−1, 1]). */
export type ConvBits = 8 | 4 | 2;
/** The precisions each predictor takes: the fitted module 8 or 4 bits, SeerNet's quantized big weights 4 or 2. */
export const PREDICTOR_BITS: Record<ConvPredictor, readonly ConvBits[]> = { projection: [8, 4], seernet: [4, 2] };

export interface LittleConvOptions {
  predictor?: ConvPredictor;    // default "projection"; "seernet" ignores projection, k, eps and lambda
  projection?: ConvProjection;  // default "channel"
  /** Projected dimension; default the Johnson–Lindenstrauss k for K points (jlDim(K, eps)), capped at C·R·S. "channel" rounds it to a multiple of R·S. */
  k?: number;
  eps?: number;                 // default 0.5
  bits?: ConvBits;              // default 8 ("projection"), 4 ("seernet")
  seed?: number;                // default 1
  lambda?: number;              // ridge, relative (RidgeAccumulator.solve); default 1e-4
}

/** The projected dimension and, for "channel", the projected channels c' (k = c'·R·S). */
export function littleConvDims(spec: { C: number; K: number; R: number; S: number }, options: LittleConvOptions):
    { k: number; channels: number } {
  const f = "littleConvDims";
  const { C, K, R, S } = spec, CRS = C * R * S;
  const projection = options.projection ?? "channel";
  if (projection !== "patch" && projection !== "channel") throw new RangeError(`${f}: projection must be "patch" or "channel", got ${String(projection)}`);
  if (options.k !== undefined && (!Number.isInteger(options.k) || options.k < 1)) throw new RangeError(`${f}: k must be a positive integer, got ${options.k}`);
  const want = Math.min(options.k ?? jlDim(Math.max(K, 2), options.eps ?? 0.5), CRS);
  if (projection === "patch") return { k: want, channels: 0 };
  const channels = Math.min(C, Math.max(1, Math.round(want / (R * S))));
  return { k: channels * R * S, channels };
}

/** The dense (rows, n) matrix of a sparse ternary projection: ±scale and 0. */
function denseProjection(rows: number, n: number, seed: number): Float32Array {
  const P = blockProjection([n], rows, seed), M = new Float32Array(rows * n);
  for (let i = 0; i < rows; i++) {
    for (let j = P.offsets[2 * i]; j < P.offsets[2 * i + 1]; j++) M[i * n + P.indices[j]] = P.scale;
    for (let j = P.offsets[2 * i + 1]; j < P.offsets[2 * i + 2]; j++) M[i * n + P.indices[j]] = -P.scale;
  }
  return M;
}

// ---------------------------------------------------------------------------------------------
// The little module

/**
 * Estimates E (K, P) of one convolution's pre-activations (after BN folding) from its input x
 * (C, H, W) and its im2row patches (P, C·R·S). fit() sets the weights; until then estimate() throws.
 */
export class LittleConv {
  readonly predictor: ConvPredictor;
  /** "seernet" runs on the "channel" path with the identity as its projection (x itself is quantized). */
  readonly projection: ConvProjection;
  readonly k: number;
  /** k rounded up to a multiple of 16: the int8 operands' row length (zero padding, no scalar tails). */
  readonly kPad: number;
  readonly channels: number;       // c' for "channel" (C for "seernet"), 0 for "patch"
  readonly bits: ConvBits;
  readonly seed: number;
  /** Additions of the sparse projection per image (its nonzeros × pixels or positions). */
  readonly projectionAdds: number;
  /** Multiply-adds of the little weights per image (K · k · positions; the zero padding not counted). */
  readonly macs: number;
  /** The fitted weights (K, k) and bias (K) in f32; null before setWeights(). */
  weights: { W: Float32Array; b: Float32Array } | null = null;
  /** (K) the bias the kernel adds, in the backend's memory. */
  readonly bias: Float32Array;
  private readonly Wq: Int8Array;              // (K, kPad) levels at `bits`
  private wScales: Float32Array | null = null; // (K)
  private readonly matrix: Float32Array;       // (kPad, CRS) "patch" (rows past k zero), (c', C) "channel"
  private readonly Z: Float32Array;            // (P, k) projected patches for the fit; (P, kPad) at run time for "patch"
  private readonly Zq: Int8Array;              // (P, kPad)
  private readonly zScales: Float32Array;      // (P) "patch": one scale per position
  private readonly xp: Float32Array | null;    // (c', H, W) the projected image, "channel" only (not "seernet")
  private readonly xpq: Int8Array | null;      // (c', H, W) quantized
  private readonly xScale: Float32Array;       // (1) its scale
  private readonly gp: PatchGeometry | null;   // its patch geometry

  constructor(private readonly be: DualBackend, readonly g: PatchGeometry, readonly K: number, options: LittleConvOptions = {}) {
    const f = "LittleConv";
    this.predictor = options.predictor ?? "projection";
    if (!(this.predictor in PREDICTOR_BITS)) throw new RangeError(`${f}: predictor must be "projection" or "seernet", got ${String(this.predictor)}`);
    const seernet = this.predictor === "seernet", allowed = PREDICTOR_BITS[this.predictor];
    this.projection = seernet ? "channel" : options.projection ?? "channel";
    this.bits = options.bits ?? allowed[0];
    if (!allowed.includes(this.bits)) throw new RangeError(`${f}: bits must be ${allowed.join(" or ")} with the ${this.predictor} predictor, got ${String(this.bits)}`);
    this.seed = options.seed ?? 1;
    if (!Number.isInteger(this.seed)) throw new RangeError(`${f}: seed must be an integer, got ${this.seed}`);
    const dims = seernet ? { k: g.C * g.R * g.S, channels: g.C } : littleConvDims({ C: g.C, K, R: g.R, S: g.S }, options);
    this.k = dims.k;
    this.kPad = Math.ceil(this.k / 16) * 16;
    this.channels = dims.channels;
    const P = g.OH * g.OW, CRS = g.C * g.R * g.S;
    const nonzeros = (M: Float32Array) => M.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0);
    if (seernet) {
      this.matrix = be.f32(0);
      this.xp = null;
      this.xpq = be.i8(g.C * g.H * g.W);
      this.gp = g;
      this.projectionAdds = 0;
    } else if (this.projection === "patch") {
      this.matrix = be.f32(this.kPad * CRS);
      this.matrix.set(denseProjection(this.k, CRS, this.seed));
      this.xp = null;
      this.xpq = null;
      this.gp = null;
      this.projectionAdds = nonzeros(this.matrix) * P;
    } else {
      this.matrix = be.f32(this.channels * g.C);
      this.matrix.set(denseProjection(this.channels, g.C, this.seed));
      this.xp = be.f32(this.channels * g.H * g.W);
      this.xpq = be.i8(this.channels * g.H * g.W);
      this.gp = { ...g, C: this.channels };
      this.projectionAdds = nonzeros(this.matrix) * g.H * g.W;
    }
    this.macs = K * this.k * P;
    this.Wq = be.i8(K * this.kPad);
    this.bias = be.f32(K);
    this.Z = be.f32(seernet ? 0 : P * (this.projection === "patch" ? this.kPad : this.k));
    this.Zq = be.i8(P * this.kPad);
    this.zScales = be.f32(P);
    this.xScale = be.f32(1);
  }

  /** Z (P, k) in f32: the projected patches of x (C, H, W), whose im2row is patches (P, C·R·S). For the fit. */
  project(x: Float32Array, patches: Float32Array): Float32Array {
    if (this.predictor === "seernet") throw new Error("LittleConv.project: the seernet predictor has no projection and is not fitted");
    const kr = this.be.kernels, g = this.g, P = g.OH * g.OW, Z = this.Z.subarray(0, P * this.k);
    if (this.projection === "patch") {
      kr.gemm(Z, patches, this.matrix.subarray(0, this.k * g.C * g.R * g.S), P, this.k, g.C * g.R * g.S, false, true, false);
    } else {
      kr.gemm(this.xp!, this.matrix, x, this.channels, g.H * g.W, g.C, false, false, false);
      kr.im2row(Z, this.xp!, this.gp!);
    }
    return Z;
  }

  /** Sets the little weights W (K, k) and bias b (K), quantized per row to `bits`. */
  setWeights(W: Float32Array, b: Float32Array): void {
    const f = "LittleConv.setWeights";
    if (!(W instanceof Float32Array) || W.length !== this.K * this.k) throw new RangeError(`${f}: W must be (${this.K}, ${this.k}) = ${this.K * this.k} floats, got ${W?.length}`);
    if (!(b instanceof Float32Array) || b.length !== this.K) throw new RangeError(`${f}: b must have ${this.K} floats, got ${b?.length}`);
    const q = quantizeRows(W, this.K, this.k, this.bits);
    this.weights = { W: W.slice(), b: b.slice() };
    for (let r = 0; r < this.K; r++) this.Wq.set(q.q!.subarray(r * this.k, (r + 1) * this.k), r * this.kPad);
    // A fresh array each time: the kernels check constant scales only on first sight.
    if (this.wScales) this.be.fit.release?.(this.wScales);
    this.wScales = this.be.f32(this.K);
    this.wScales.set(q.scales);
    this.bias.set(b);
  }

  /**
   * E (K, P) = the estimated pre-activations of x (C, H, W), whose im2row is patches (P, C·R·S; read
   * by "patch" only).
   * "channel" quantizes the projected image once (one scale) and cuts its int8 patches; "patch"
   * quantizes each position's projected patch with its own scale.
   */
  estimate(E: Float32Array, x: Float32Array, patches: Float32Array): void {
    if (!this.wScales) throw new Error("LittleConv: the little module has no weights yet; fit it first (LittleConvFit or DualResNet.fit)");
    const kr = this.be.kernels, g = this.g, P = g.OH * g.OW;
    if (this.predictor === "seernet") {
      kr.quantizeRowsI8(this.xpq!, this.xScale, x, 1, x.length);
      kr.im2rowI8(this.Zq, this.xpq!, this.gp!, this.kPad);
      kr.gemmI8(E, this.Wq, this.wScales, this.Zq, this.xScale, false, this.bias, this.K, P, this.kPad);
    } else if (this.projection === "channel") {
      kr.gemm(this.xp!, this.matrix, x, this.channels, g.H * g.W, g.C, false, false, false);
      // One row: quantize's result, with the finiteness check done after the kernel, not before it in JavaScript.
      kr.quantizeRowsI8(this.xpq!, this.xScale, this.xp!, 1, this.xp!.length);
      kr.im2rowI8(this.Zq, this.xpq!, this.gp!, this.kPad);
      kr.gemmI8(E, this.Wq, this.wScales, this.Zq, this.xScale, false, this.bias, this.K, P, this.kPad);
    } else {
      kr.gemm(this.Z, patches, this.matrix, P, this.kPad, g.C * g.R * g.S, false, true, false);
      kr.quantizeRowsI8(this.Zq, this.zScales, this.Z, P, this.kPad);
      kr.gemmI8(E, this.Wq, this.wScales, this.Zq, this.zScales, true, this.bias, this.K, P, this.kPad);
    }
  }

  /** Bytes of the little weights (at `bits`), their scales and the bias. */
  get bytes(): number { return Math.ceil(this.K * this.k * this.bits / 8) + 8 * this.K; }
}

/**
 * Closed-form fit of a little module from samples of its layer: add() one image at a time (its input
 * x, its im2row patches and the big module's pre-activations Y (P, K) at the same positions), then
 * solve(). A layer whose input never varies (every channel dead on the fit images) gets W = 0 and
 * the mean pre-activation as its bias.
 */
export class LittleConvFit {
  private readonly acc: RidgeAccumulator;
  private readonly ySum: Float64Array;
  private zMin = Infinity;
  private zMax = -Infinity;

  constructor(readonly little: LittleConv, options: FitOptions = {}) {
    this.acc = new RidgeAccumulator(little.k, little.K, options);
    this.ySum = new Float64Array(little.K);
  }

  add(x: Float32Array, patches: Float32Array, Y: Float32Array): void {
    const Z = this.little.project(x, patches), K = this.little.K;
    for (let i = 0; i < Z.length; i++) { const v = Z[i]; if (v < this.zMin) this.zMin = v; if (v > this.zMax) this.zMax = v; }
    for (let i = 0; i < Y.length; i++) this.ySum[i % K] += Y[i];
    this.acc.add(Z, Y, this.little.g.OH * this.little.g.OW);
  }

  get samples(): number { return this.acc.samples; }

  solve(lambda = 1e-4): void {
    try {
      if (this.acc.samples === 0) throw new Error("LittleConvFit.solve: no samples were added");
      if (this.zMin === this.zMax) {
        this.little.setWeights(new Float32Array(this.little.K * this.little.k), Float32Array.from(this.ySum, (s) => s / this.acc.samples));
      } else {
        const { W, b } = this.acc.solve(lambda);
        this.little.setWeights(W, b);
      }
    } finally {
      this.acc.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The dual-module convolution

/** Where a dual-module layer spends its time, in milliseconds (benchmarks only). */
export type DualProfile = Profile<"im2row" | "little" | "select" | "big" | "rest" | "dense">;

export function emptyDualProfile(): DualProfile { return { im2row: 0, little: 0, select: 0, big: 0, rest: 0, dense: 0 }; }

/** Per-layer counters, summed over the images seen since the last reset. */
export interface DualConvCounts { images: number; sensitive: number; littleRuns: number }

/**
 * conv (with BN folded) + optional residual + ReLU, with the big module computing only the outputs
 * the little module predicts above the threshold. Batch 1. Threshold −∞ (the default, ratio 0) makes
 * every output sensitive: the dense layer then runs as it is (im2col + GEMM), bit for bit.
 */
export class DualConv2d {
  readonly K: number;
  readonly P: number;
  readonly CRS: number;
  readonly y: Float32Array;           // (K, P)
  /** Sensitive iff estimate + residual > threshold. */
  threshold = -Infinity;
  mode: InsensitiveOutput = "zero";
  /** When set, every forward appends the layer's estimates (K·P values, residual included) here. */
  samples: Float32Array[] | null = null;
  readonly counts: DualConvCounts = { images: 0, sensitive: 0, littleRuns: 0 };
  private readonly patches: Float32Array; // (P, CRS)
  private readonly E: Float32Array;       // (K, P) little estimates
  private readonly pre: Float32Array;     // (K, P) estimates + residual
  private readonly idx: Int32Array;       // (K·P) sensitive outputs
  private readonly zeros: Float32Array;   // (K)
  private readonly lo: Float32Array;      // (1)
  private readonly hi: Float32Array;      // (1) +∞

  constructor(private readonly be: DualBackend, readonly conv: Conv2d, readonly little: LittleConv) {
    if (conv.N !== 1) throw new RangeError(`DualConv2d: batch 1 only, the convolution has batch ${conv.N}`);
    if (little.K !== conv.K || little.g.C !== conv.geometry.C || little.g.OH !== conv.geometry.OH || little.g.R !== conv.geometry.R) {
      throw new RangeError(`DualConv2d: the little module (K = ${little.K}, C = ${little.g.C}, ${little.g.R}×${little.g.S}) does not match the convolution (K = ${conv.K}, C = ${conv.geometry.C}, ${conv.geometry.R}×${conv.geometry.S})`);
    }
    this.K = conv.K;
    this.P = conv.P;
    this.CRS = conv.CRS;
    this.y = be.f32(this.K * this.P);
    this.patches = be.f32(this.P * this.CRS);
    this.E = be.f32(this.K * this.P);
    this.pre = be.f32(this.K * this.P);
    this.idx = be.i32(this.K * this.P);
    this.zeros = be.f32(this.K);
    this.lo = be.f32(1);
    this.hi = be.f32(1);
    this.hi[0] = Infinity;
  }

  /** Returns the output (K, P), a view that the next call overwrites. */
  forward(x: Float32Array, residual: Float32Array | null, profile?: DualProfile): Float32Array {
    const kr = this.be.kernels, { K, P, CRS } = this, total = K * P;
    const watch = new Stopwatch(profile);
    this.counts.images++;
    if (this.samples) {
      this.estimate(x, residual);
      this.samples.push(this.pre.slice());
      watch.lap("little");
    }
    if (this.threshold === -Infinity) {
      this.counts.sensitive += total;
      const y = this.conv.forward(x, residual, true, NO_WATCH);
      watch.lap("dense");
      return y;
    }
    if (!this.samples) {
      this.estimate(x, residual);
      watch.lap("little");
    }
    this.lo[0] = this.threshold;
    const count = kr.selectSensitive(this.idx, this.pre, this.lo, this.hi, total, 1);
    this.counts.sensitive += count;
    watch.lap("select");
    // "patch" cut every patch for its projection already; otherwise only those the big module reads.
    if (this.little.projection === "channel") kr.im2rowSensitive(this.patches, x, this.conv.geometry, this.idx, count, K);
    watch.lap("im2row");
    // Insensitive outputs: the estimate (ReLU'd below, with the residual), or −∞, which the ReLU
    // turns into 0 whatever the residual.
    if (this.mode === "little") this.y.set(this.E); else this.y.fill(-Infinity);
    watch.lap("rest");
    kr.convSensitive(this.y, this.conv.weight, this.patches, this.conv.bias, this.idx, count, K, P, CRS);
    watch.lap("big");
    kr.biasAct(this.y, this.zeros, residual, 1, K, P, true);
    watch.lap("rest");
    return this.y;
  }

  /** E and pre = E + residual from x ("patch" cuts all of x's patches first: its projection reads them). */
  private estimate(x: Float32Array, residual: Float32Array | null): void {
    const kr = this.be.kernels;
    if (this.little.projection === "patch") kr.im2row(this.patches, x, this.conv.geometry);
    this.little.estimate(this.E, x, this.patches);
    this.counts.littleRuns++;
    this.pre.set(this.E);
    if (residual) kr.biasAct(this.pre, this.zeros, residual, 1, this.K, this.P, false);
  }

  /** For the fit: the big module's pre-activations Y (P, K) = patches · Wᵀ + b at every position of x; returns x's patches (P, C·R·S). */
  targets(x: Float32Array, Y: Float32Array): Float32Array {
    const kr = this.be.kernels;
    kr.im2row(this.patches, x, this.conv.geometry);
    kr.gemm(Y, this.patches, this.conv.weight, this.P, this.K, this.CRS, false, true, false);
    for (let p = 0; p < this.P; p++) for (let k = 0; k < this.K; k++) Y[p * this.K + k] += this.conv.bias[k];
    return this.patches;
  }
}
