// Dual-module inference over a recurrent stack. Per layer and step:
//   1. the little module estimates every gate neuron's pre-activation from [x | h];
//   2. a neuron whose estimate lands in its gate's insensitive region keeps the estimate
//      (sigmoid: σ(a) ≤ θ_σ; tanh: |tanh a| ≥ θ_tanh); the others are "sensitive";
//   3. the big module recomputes only the sensitive rows, reading only their weights;
//   4. the state updates as in the dense cell.
// Thresholds are per layer and gate, calibrated to a requested insensitive ratio; a per-step top-k
// mode instead marks exactly that fraction of each gate insensitive at every step.
import type { Runtime } from "../runtime/runtime.js";
import type { Stack, Cell } from "./stack.js";
import type { LittleModule } from "./little.js";
import { calibrate, topKBounds, type Bounds, type Region } from "../dual/calibrate.js";
import { Accounting } from "../dual/accounting.js";
import type { Rng } from "../util/random.js";
import { NO_WATCH, Stopwatch, type Profile } from "../util/stopwatch.js";
import type { LstmDualPlan } from "../kernels/dual-step.js";

export type SelectMode = "threshold" | "topk";

/**
 * Where dual steps spend their time, in milliseconds summed over steps (benchmarks pass one to
 * step()): the little module (projection, quantization, little product), selection, the big
 * module (its rows and the state update, or the dense product where nothing can be insensitive),
 * the three in one kernel where the step is fused (see DualModel.fuse), and the rest (copying the
 * layer's input, residuals, accounting).
 */
export type DualStepProfile = Profile<"little" | "select" | "big" | "fused" | "other">;

/**
 * The paper's check that insensitive neurons tolerate error: every row is computed exactly, then
 * Gaussian noise of standard deviation `sigma` is added to the pre-activations of the neurons the
 * little module marks `target` (at the current thresholds or top-k ratio).
 */
export interface NoiseInjection { target: "insensitive" | "sensitive"; sigma: number; rng: Rng }

/** Which nonlinearity reads each gate block, in PyTorch's gate order. */
export function gateRegions(kind: Cell["kind"]): Region[] {
  return kind === "lstm" ? ["sigmoid", "sigmoid", "tanh", "sigmoid"] : ["sigmoid", "sigmoid", "tanh"];
}

/**
 * Per layer and gate block: the interval (lo, hi) of SENSITIVE pre-activation estimates. Kept as
 * pre-activation bounds rather than post-activation θ, so that calibration's cuts (sample values)
 * apply exactly, also where σ or tanh would round θ to 0 or 1.
 */
export type Thresholds = Bounds[][];

interface LayerState {
  cell: Cell;
  little: LittleModule;
  regions: Region[];
  score: Float32Array;   // (rows) the little module's pre-activation estimate that selection reads
  lo: Float32Array;      // (gates) sensitive iff lo[g] < score < hi[g]
  hi: Float32Array;
  rowIdx: Int32Array;    // (rows) sensitive rows of the current step: the first `count`
  count: number;
  everySensitive: boolean; // the thresholds leave nothing insensitive: the step is the dense one
  noisy: Uint8Array;     // (rows) noise injection: 1 where noise goes this step
  topKScratch: Float32Array; // (H) selection keys of the top-k mode
  fused: LstmDualPlan | null; // the layer's step as one kernel, where its cell and little module allow
}

export class DualModel {
  readonly accounting: Accounting;
  private readonly layers: LayerState[];
  private bounds: Thresholds = [];
  private ratio = 0;
  private selection: SelectMode = "threshold";
  private noise: NoiseInjection | null = null;
  /**
   * Run a threshold-mode step of an LSTM layer with an INT8 little module over the random
   * projection as one kernel (lstmDualStep: one fork/join of the pool instead of one per phase);
   * false runs the separate kernels. Both compute the same step; benchmarks and tests compare them.
   */
  fuse = true;

  constructor(private readonly rt: Runtime, readonly stack: Stack, readonly littles: LittleModule[]) {
    if (littles.length !== stack.layers.length) {
      throw new Error(`DualModel: the stack has ${stack.layers.length} layers but ${littles.length} little modules were given`);
    }
    this.layers = stack.layers.map((cell, l) => {
      const little = littles[l];
      if (little.rows !== cell.rows || little.input !== cell.input || little.hidden !== cell.hidden) {
        throw new Error(`DualModel: little module ${l} is for (rows ${little.rows}, input ${little.input}, hidden ${little.hidden}), layer ${l} is (${cell.rows}, ${cell.input}, ${cell.hidden})`);
      }
      const regions = gateRegions(cell.kind);
      const lo = rt.heap.f32(regions.length), hi = rt.heap.f32(regions.length), rowIdx = rt.heap.i32(cell.rows);
      return {
        cell, little, regions, lo, hi, rowIdx,
        score: cell.kind === "lstm" ? cell.pre : rt.heap.f32(cell.rows),
        count: 0, everySensitive: false,
        noisy: new Uint8Array(cell.rows),
        topKScratch: new Float32Array(cell.hidden),
        fused: fusedPlan(cell, little, lo, hi, rowIdx),
      };
    });
    this.setAllSensitive();
    // Bytes per step: the cell's rows with their biases (bigBytes), the little module as it counts
    // itself, and the fp32 bounds lo and hi per gate that selection reads.
    this.accounting = new Accounting(this.layers.map((s) => ({
      rows: s.cell.rows, gates: s.regions.length, bigBytes: (n: number) => s.cell.bigBytes(n),
      littleBytes: s.little.bytes, littleMacs: s.little.macs, projectionOps: s.little.projectionOps, cols: s.cell.cols,
      thresholdBytes: s.lo.byteLength + s.hi.byteLength,
    })));
  }

  /** The requested insensitive ratio (threshold mode: what the thresholds were calibrated to). */
  get targetRatio(): number { return this.ratio; }
  get mode(): SelectMode { return this.selection; }

  /** Per-step top-k: at every step exactly floor(ratio · H) neurons of each gate take the estimate. */
  useTopK(ratio: number): void {
    if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`DualModel.useTopK: ratio must be in [0, 1), got ${ratio}`);
    this.selection = "topk";
    this.ratio = ratio;
  }
  get thresholds(): Thresholds { return this.bounds.map((row) => row.map((b) => ({ ...b }))); }

  /** Sets the sensitive interval per layer and gate directly (e.g. from a checkpoint). */
  setThresholds(thresholds: Thresholds, ratio = this.ratio): void {
    if (thresholds.length !== this.layers.length) throw new Error(`DualModel.setThresholds: ${this.layers.length} layers need thresholds, got ${thresholds.length}`);
    thresholds.forEach((row, l) => {
      const s = this.layers[l];
      if (row.length !== s.regions.length) throw new Error(`DualModel.setThresholds: layer ${l} needs ${s.regions.length} gate intervals, got ${row.length}`);
      row.forEach((b, g) => {
        if (Number.isNaN(b.lo) || Number.isNaN(b.hi)) throw new RangeError(`DualModel.setThresholds: layer ${l} gate ${g} has a NaN bound`);
        s.lo[g] = b.lo; s.hi[g] = b.hi;
      });
      s.everySensitive = row.every((b) => b.lo === -Infinity && b.hi === Infinity);
      if (s.everySensitive) for (let r = 0; r < s.cell.rows; r++) s.rowIdx[r] = r;
    });
    this.bounds = thresholds.map((row) => row.map((b) => ({ lo: b.lo, hi: b.hi })));
    this.ratio = ratio;
    this.selection = "threshold";
  }

  /** Every neuron sensitive: the dual step then computes exactly what the dense step does. */
  setAllSensitive(): void { this.setUniform({ lo: -Infinity, hi: Infinity }, 0); }

  /** No neuron sensitive: every value comes from the little module (what the overhead costs alone). */
  setNoneSensitive(): void { this.setUniform({ lo: 0, hi: 0 }, 1); }

  private setUniform(b: Bounds, ratio: number): void {
    this.setThresholds(this.layers.map((s) => s.regions.map(() => b)), ratio);
  }

  reset(): void { this.stack.reset(); }

  /** The rows of layer l that the last step found sensitive, ascending (a view the next step overwrites). */
  sensitiveRows(l: number): Int32Array {
    if (!(l >= 0 && l < this.layers.length)) throw new RangeError(`DualModel.sensitiveRows: layer ${l} is outside [0, ${this.layers.length})`);
    const s = this.layers[l];
    return s.rowIdx.subarray(0, s.count);
  }

  /** Turns noise injection on (every row then computed exactly, see NoiseInjection) or off (null). */
  setNoise(noise: NoiseInjection | null): void {
    if (noise && !(noise.sigma >= 0 && Number.isFinite(noise.sigma))) throw new RangeError(`DualModel.setNoise: sigma must be finite and ≥ 0, got ${noise.sigma}`);
    this.noise = noise;
  }

  /** One dual-module step through every layer; x is [x | context]. Returns the top layer's output. */
  step(x: Float32Array, profile?: DualStepProfile): Float32Array {
    const kr = this.rt.kernels, watch = profile ? new Stopwatch(profile) : NO_WATCH;
    for (let l = 0; l < this.layers.length; l++) {
      const s = this.layers[l], cell = s.cell;
      this.stack.loadLayer(l, x);
      watch.lap("other");
      if (this.selection === "threshold" && s.everySensitive && !this.noise) {
        // Nothing can be insensitive (ratio 0): no need to ask the little module.
        cell.compute();
        watch.lap("big");
        this.stack.finishLayer(l);
        this.accounting.record(l, s.rowIdx, s.count = cell.rows, false);
        watch.lap("other");
        continue;
      }
      if (s.fused && this.fuse && this.selection === "threshold" && !this.noise) {
        const count = s.count = kr.lstmDualStep(s.fused);
        watch.lap("fused");
        this.stack.finishLayer(l);
        this.accounting.record(l, s.rowIdx, count);
        watch.lap("other");
        continue;
      }
      this.estimate(s);
      watch.lap("little");
      if (this.selection === "topk") this.topK(s);
      const count = s.count = kr.selectSensitive(s.rowIdx, s.score, s.lo, s.hi, cell.hidden, s.regions.length);
      watch.lap("select");
      // Every row sensitive: the dense product is the same computation, on the faster kernel for
      // consecutive rows (so ratio 0 also reproduces the dense model bit for bit).
      if (this.noise) this.computeNoisy(s, count, this.noise);
      else if (count === cell.rows) cell.compute(); else cell.computeRows(s.rowIdx, count);
      watch.lap("big");
      this.stack.finishLayer(l);
      this.accounting.record(l, s.rowIdx, count);
      watch.lap("other");
    }
    this.accounting.endStep();
    watch.lap("other");
    return this.stack.output;
  }

  /** Little-module estimates into the cell's pre-activation buffers, and the selection score. */
  private estimate(s: LayerState): void {
    const cell = s.cell;
    if (cell.kind === "lstm") {
      s.little.estimate(cell.pre, null, cell.xh);
      return;
    }
    // GRU: r and z read x part + h part; the candidate reads x part + r ⊙ h part.
    s.little.estimate(cell.preX, cell.preH, cell.xh);
    const H = cell.hidden, px = cell.preX, ph = cell.preH, score = s.score;
    for (let i = 0; i < 2 * H; i++) score[i] = px[i] + ph[i];
    for (let i = 0; i < H; i++) score[2 * H + i] = px[2 * H + i] + ph[2 * H + i] / (1 + Math.exp(-score[i]));
  }

  private computeNoisy(s: LayerState, count: number, noise: NoiseInjection): void {
    const insensitive = noise.target === "insensitive";
    s.noisy.fill(insensitive ? 1 : 0);
    for (let j = 0; j < count; j++) s.noisy[s.rowIdx[j]] = insensitive ? 0 : 1;
    s.cell.compute((pre) => {
      for (let r = 0; r < pre.length; r++) if (s.noisy[r]) pre[r] += noise.sigma * noise.rng.normal();
    });
  }

  private topK(s: LayerState): void {
    const H = s.cell.hidden;
    s.regions.forEach((region, g) => {
      const b = topKBounds(region, s.score.subarray(g * H, (g + 1) * H), this.ratio, undefined, s.topKScratch);
      s.lo[g] = b.lo; s.hi[g] = b.hi;
    });
  }

  /**
   * Calibrates the sensitive interval per layer and gate so that `ratio` of the little module's estimates land in the
   * insensitive region, on calibration sequences run through the dense model (so the thresholds do
   * not depend on their own errors). Each sequence is a list of step inputs [x | context].
   */
  calibrate(sequences: Float32Array[][], ratio: number): Thresholds {
    if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`DualModel.calibrate: ratio must be in [0, 1), got ${ratio}`);
    const steps = sequences.reduce((n, seq) => n + seq.length, 0);
    if (steps === 0) throw new Error("DualModel.calibrate: no calibration steps given");
    const samples = this.layers.map((s) => s.regions.map(() => new Float32Array(steps * s.cell.hidden)));
    let t = 0;
    for (const seq of sequences) {
      this.stack.reset();
      for (const x of seq) {
        for (let l = 0; l < this.layers.length; l++) {
          const s = this.layers[l], H = s.cell.hidden;
          this.stack.loadLayer(l, x);
          this.estimate(s);
          s.regions.forEach((_, g) => samples[l][g].set(s.score.subarray(g * H, (g + 1) * H), t * H));
          s.cell.compute();
          this.stack.finishLayer(l);
        }
        t++;
      }
    }
    this.stack.reset();
    const thresholds = this.layers.map((s, l) => s.regions.map((region, g) => {
      const c = calibrate(region, samples[l][g], ratio);
      return { lo: c.lo, hi: c.hi };
    }));
    this.setThresholds(thresholds, ratio);
    return thresholds;
  }

  /**
   * Runs sequences through the dual model and returns the achieved insensitive ratio (accounting
   * is reset first, so afterwards it describes exactly these sequences).
   */
  measure(sequences: Float32Array[][]): number {
    this.accounting.reset();
    for (const seq of sequences) {
      this.reset();
      for (const x of seq) this.step(x);
    }
    return this.accounting.report().insensitiveRatio;
  }
}

/** The fused step's plan of an LSTM layer whose big weights are dense rows and whose little module is joint INT8 over the random projection; null otherwise. */
function fusedPlan(cell: Cell, little: LittleModule, lo: Float32Array, hi: Float32Array, rowIdx: Int32Array): LstmDualPlan | null {
  if (cell.kind !== "lstm") return null;
  const big = cell.dualArrays, l = little.fusedArrays;
  if (!big || !l) return null;
  return {
    hidden: cell.hidden, ...big, offsets: l.offsets, indices: l.indices, projScale: l.scale, p: l.p,
    littleW: l.Wq, littleScales: l.scales, littleB: l.b, lo, hi, rowIdx,
  };
}
