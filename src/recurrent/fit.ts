// Fitting the little modules of a stack: run calibration sequences through the dense model,
// collect each layer's input [x | h] and its big module's pre-activations, choose the projection
// (the paper's random one, or the reduced-rank basis of the pre-activations), and fit the little
// weights to the projected inputs by least squares, big weights frozen (Liu et al., ICML 2020,
// proceedings.mlr.press/v119/liu20c). The default is the closed-form ridge solution (exact optimum,
// one pass); the paper's SGD is an option for the random projection.
//   LSTM: one joint fit of pre = W·x + b from p (2k); its columns split into W_LL_x, W_LL_h.
//   GRU: the x part and the h part are fitted apart (the candidate gate needs them apart).
import type { Runtime } from "../runtime/runtime.js";
import type { Stack, Cell } from "./stack.js";
import { splitRows, type Lstm } from "./lstm.js";
import type { Gru } from "./gru.js";
import { DenseProjector, LittleModule, RandomProjector, type ProjectionKind, type Projector, type LittleWeights } from "./little.js";
import type { Bits } from "../dual/quantize.js";
import { jlDim, projectWeights } from "../dual/projection.js";
import { RidgeAccumulator, fitError, type GemmBackend } from "../dual/ridge.js";
import { covariance, reducedRankBasis } from "../dual/reduced-rank.js";
import { fitSgd } from "../dual/sgd.js";

export type FitMethod = "ridge" | "sgd";

export interface FitOptions {
  /** Johnson–Lindenstrauss ε that sets k from the gate rows (default 0.5), unless k is given. */
  eps?: number;
  /** Projected size of x and of h each. Default: the JL dimension, at most the narrower of x and h
   *  (the bound is meant for large layers; on a small one it would project to more than it reads). */
  k?: number;
  seed?: number;          // projection seed of layer 0; layer l uses seed + l (default 1)
  bits?: Bits;            // little-weight precision (default 8)
  method?: FitMethod;     // default "ridge"
  /** "random": the paper's sparse projection (default); "rrr": the reduced-rank basis of the pre-activations. */
  projection?: ProjectionKind;
  lambda?: number;        // ridge regularisation, relative to the mean variance of the projected inputs (default 1e-4)
  sgd?: { epochs?: number; lr?: number; batch?: number };
  /** Held-out sequences: the fit's error is reported on them; SGD needs them for its rate schedule. */
  validation?: Float32Array[][];
  onProgress?: (what: string, done: number, total: number) => void;
}

export interface FitReport {
  layer: number;
  method: FitMethod;
  projection: ProjectionKind;
  k: number;
  samples: number;
  trainMse: number;
  validationMse: number | null;
  validationR2: number | null;
}

/** Projected inputs and targets of one fitted part, one row per step. */
interface Part { d: number; m: number; Z: Float32Array; Y: Float32Array }

/** What the dense run recorded for one layer: its inputs [x | h] and the pre-activations of each part. */
interface Recorded { steps: number; U: Float32Array; Y: Float32Array[] }

export function fitLittleModules(rt: Runtime, stack: Stack, sequences: Float32Array[][], options: FitOptions = {}):
    { littles: LittleModule[]; report: FitReport[] } {
  const eps = options.eps ?? 0.5, seed = options.seed ?? 1, bits = options.bits ?? 8;
  const method = options.method ?? "ridge", lambda = options.lambda ?? 1e-4, projection = options.projection ?? "random";
  if (projection !== "random" && projection !== "rrr") throw new RangeError(`fitLittleModules: projection must be "random" or "rrr", got ${JSON.stringify(projection)}`);
  if (method === "sgd" && projection !== "random") throw new Error("fitLittleModules: the SGD fit starts from the random projection's weights; use method \"ridge\" with projection \"rrr\"");
  const train = collect(stack, sequences, (d, t) => options.onProgress?.("collect", d, t));
  const valid = options.validation ? collect(stack, options.validation) : null;

  if (method === "sgd" && !valid) throw new Error("fitLittleModules: the SGD fit needs validation sequences (options.validation)");
  const backend: GemmBackend = { gemm: rt.kernels.gemm, alloc: (n) => rt.heap.f32(n), release: (a) => rt.heap.release(a) };

  const littles: LittleModule[] = [];
  const report: FitReport[] = [];
  stack.layers.forEach((cell, l) => {
    const k = options.k ?? Math.min(jlDim(cell.rows, eps), cell.input, cell.hidden);
    const projector = projection === "random"
      ? new RandomProjector(rt, cell.input, cell.hidden, k, seed + l)
      : reducedRankProjector(rt, cell, k, train[l], backend, seed + l);
    const parts = project(rt, cell, projector, train[l]);
    const validParts = valid ? project(rt, cell, projector, valid[l]) : null;
    // SGD starts from the projected big weights W·Pᵀ (rows, 2k): all of it for the LSTM's joint
    // fit, its x and h column halves for the GRU's parts.
    const init = method === "sgd" ? initialWeights(cell, projector as RandomProjector, parts.length) : null;
    const fits = parts.map((part, j) => {
      const val = validParts ? validParts[j] : null;
      const fit = method === "ridge"
        ? ridge(part, lambda, backend)
        : fitSgd({
            Z: part.Z, Y: part.Y, samples: samples(part), d: part.d, m: part.m, init: init![j],
            valZ: val!.Z, valY: val!.Y, valSamples: samples(val!), backend,
            epochs: options.sgd?.epochs ?? 10, lr: options.sgd?.lr, batch: options.sgd?.batch, seed: seed + l,
          });
      return {
        ...fit,
        train: fitError(fit.W, fit.b, part.Z, part.Y, samples(part), { backend }),
        val: val ? fitError(fit.W, fit.b, val.Z, val.Y, samples(val), { backend }) : null,
      };
    });
    littles.push(new LittleModule(rt, cell.rows, projector, bits, splitWeights(fits, cell.rows, k), cell.kind === "lstm"));
    report.push({
      layer: l, method, projection, k, samples: samples(parts[0]),
      trainMse: mean(fits.map((f) => f.train.mseAll)),
      validationMse: valid ? mean(fits.map((f) => f.val!.mseAll)) : null,
      validationR2: valid ? mean(fits.map((f) => f.val!.r2All)) : null,
    });
  });
  return { littles, report };
}

function samples(p: Part): number { return p.Y.length / p.m; }
function mean(a: number[]): number { return a.reduce((s, v) => s + v, 0) / a.length; }

function ridge(part: Part, lambda: number, backend: GemmBackend): { W: Float32Array; b: Float32Array } {
  const acc = new RidgeAccumulator(part.d, part.m, { backend });
  try {
    acc.add(part.Z, part.Y, samples(part));
    return acc.solve(lambda);
  } finally {
    acc.close();
  }
}

/** W·Pᵀ and the big bias, split like the parts: one (rows, 2k) part for an LSTM, x and h halves for a GRU. */
function initialWeights(cell: Cell, projector: RandomProjector, parts: number): { W: Float32Array; b: Float32Array }[] {
  const WP = projectWeights(projector.projection, cell.W, cell.rows), k = projector.k;
  if (parts === 1) return [{ W: WP, b: (cell as Lstm).b.slice() }];
  const gru = cell as Gru, [Wx, Wh] = splitRows(WP, cell.rows, k, k);
  return [{ W: Wx, b: gru.bIh.slice() }, { W: Wh, b: gru.bHh.slice() }];
}

/** Runs the dense stack over the sequences and records, per layer, its inputs and each part's pre-activations. */
function collect(stack: Stack, sequences: Float32Array[][], onProgress?: (done: number, total: number) => void): Recorded[] {
  const steps = sequences.reduce((n, seq) => n + seq.length, 0);
  if (steps === 0) throw new Error("fitLittleModules: no steps in the calibration sequences");
  const recorded = stack.layers.map((cell): Recorded => ({
    steps, U: new Float32Array(steps * cell.cols),
    Y: Array.from({ length: cell.kind === "lstm" ? 1 : 2 }, () => new Float32Array(steps * cell.rows)),
  }));
  let t = 0;
  for (const seq of sequences) {
    stack.reset();
    for (const x of seq) {
      stack.layers.forEach((cell, l) => {
        stack.loadLayer(l, x);
        const r = recorded[l];
        r.U.set(cell.xh, t * cell.cols);
        cell.compute();
        if (cell.kind === "lstm") r.Y[0].set(cell.pre, t * cell.rows);
        else { r.Y[0].set(cell.preX, t * cell.rows); r.Y[1].set(cell.preH, t * cell.rows); }
        stack.finishLayer(l);
      });
      t++;
    }
    onProgress?.(t, steps);
  }
  stack.reset();
  return recorded;
}

/** The fitted parts of one layer: its recorded inputs through the projector (the kernel it runs with), and the targets. */
function project(rt: Runtime, cell: Cell, projector: Projector, r: Recorded): Part[] {
  const k = projector.k, D = cell.cols, xh = rt.heap.f32(D);
  const Z = cell.kind === "lstm" ? [new Float32Array(r.steps * 2 * k)] : [new Float32Array(r.steps * k), new Float32Array(r.steps * k)];
  try {
    for (let t = 0; t < r.steps; t++) {
      xh.set(r.U.subarray(t * D, (t + 1) * D));
      const p = projector.project(xh);
      if (Z.length === 1) Z[0].set(p, t * 2 * k);
      else { Z[0].set(p.subarray(0, k), t * k); Z[1].set(p.subarray(k), t * k); }
    }
  } finally {
    rt.heap.release(xh);
  }
  return Z.map((z, j) => ({ d: z.length / r.steps, m: cell.rows, Z: z, Y: r.Y[j] }));
}

/**
 * The reduced-rank projection of a layer: for an LSTM the best 2k directions of all of [x | h] for
 * its pre-activations; for a GRU the best k of x for the x part and of h for the h part.
 */
function reducedRankProjector(rt: Runtime, cell: Cell, k: number, r: Recorded, backend: GemmBackend, seed: number): DenseProjector {
  const E = cell.input, H = cell.hidden, D = cell.cols, R = cell.rows;
  const ranges = cell.kind === "lstm" ? [{ start: 0, cols: D, rows: 2 * k }] : [{ start: 0, cols: E, rows: k }, { start: E, cols: H, rows: k }];
  const W = cell.W, blocks = ranges.map(({ start, cols, rows }) => {
    if (rows > Math.min(R, cols)) throw new RangeError(`fitLittleModules: k = ${k} gives ${rows} projected values from ${cols} inputs; take k ≤ ${Math.floor(cols / (rows / k))}`);
    const Wb = backend.alloc(R * cols), Ub = new Float32Array(r.steps * cols);
    for (let o = 0; o < R; o++) Wb.set(W.subarray(o * D + start, o * D + start + cols), o * cols);
    for (let t = 0; t < r.steps; t++) Ub.set(r.U.subarray(t * D + start, t * D + start + cols), t * cols);
    const cov = covariance(Ub, r.steps, cols, backend);
    try {
      return { start, cols, rows, B: reducedRankBasis(Wb, R, cols, cov, rows, backend, { seed }).B };
    } finally {
      backend.release?.(cov);
      backend.release?.(Wb);
    }
  });
  return new DenseProjector(rt, E, H, k, blocks);
}

/** Little weights from the fitted parts: LSTM's joint (rows, 2k) splits by columns; GRU's are apart. */
function splitWeights(fits: { W: Float32Array; b: Float32Array }[], rows: number, k: number): LittleWeights {
  if (fits.length === 2) return { Wx: fits[0].W, bx: fits[0].b, Wh: fits[1].W, bh: fits[1].b };
  const [Wx, Wh] = splitRows(fits[0].W, rows, k, k);
  return { Wx, Wh, bx: fits[0].b, bh: new Float32Array(rows) };
}
