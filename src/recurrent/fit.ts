// Fitting the little modules of a stack: run calibration sequences through the dense model,
// collect each layer's projected input and its big module's pre-activations, and fit the little
// weights to them by least squares, big weights frozen (Liu et al., ICML 2020,
// proceedings.mlr.press/v119/liu20c). The default is the closed-form ridge solution (exact optimum,
// one pass); the paper's SGD is an option.
//   LSTM: one joint fit of pre = W·x + b from [P_x x | P_h h]; its columns split into W_LL_x, W_LL_h.
//   GRU: the x part and the h part are fitted apart (the candidate gate needs them apart).
import type { Runtime } from "../runtime/runtime.js";
import type { Stack, Cell } from "./stack.js";
import { splitRows, type Lstm } from "./lstm.js";
import type { Gru } from "./gru.js";
import { LittleModule, Projector, type LittleWeights } from "./little.js";
import type { Bits } from "../dual/quantize.js";
import { jlDim, projectWeights } from "../dual/projection.js";
import { RidgeAccumulator, fitError, type GemmBackend } from "../dual/ridge.js";
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
  lambda?: number;        // ridge regularisation, relative to the mean variance of the projected inputs (default 1e-4)
  sgd?: { epochs?: number; lr?: number; batch?: number };
  /** Held-out sequences: the fit's error is reported on them; SGD needs them for its rate schedule. */
  validation?: Float32Array[][];
  onProgress?: (what: string, done: number, total: number) => void;
}

export interface FitReport {
  layer: number;
  method: FitMethod;
  k: number;
  samples: number;
  trainMse: number;
  validationMse: number | null;
  validationR2: number | null;
}

/** Projected inputs and targets of one fitted part, one row per step. */
interface Part { d: number; m: number; Z: Float32Array; Y: Float32Array }

export function fitLittleModules(rt: Runtime, stack: Stack, sequences: Float32Array[][], options: FitOptions = {}):
    { littles: LittleModule[]; report: FitReport[] } {
  const eps = options.eps ?? 0.5, seed = options.seed ?? 1, bits = options.bits ?? 8;
  const method = options.method ?? "ridge", lambda = options.lambda ?? 1e-4;
  const projectors = stack.layers.map((cell, l) =>
    new Projector(rt, cell.input, cell.hidden, options.k ?? Math.min(jlDim(cell.rows, eps), cell.input, cell.hidden), seed + l));
  const train = collect(stack, projectors, sequences, (d, t) => options.onProgress?.("collect", d, t));
  const valid = options.validation ? collect(stack, projectors, options.validation) : null;

  if (method === "sgd" && !valid) throw new Error("fitLittleModules: the SGD fit needs validation sequences (options.validation)");
  const backend: GemmBackend = { gemm: rt.kernels.gemm, alloc: (n) => rt.heap.f32(n), release: (a) => rt.heap.release(a) };

  const littles: LittleModule[] = [];
  const report: FitReport[] = [];
  stack.layers.forEach((cell, l) => {
    const k = projectors[l].k, parts = train[l];
    // SGD starts from the projected big weights W·Pᵀ (rows, 2k): all of it for the LSTM's joint
    // fit, its x and h column halves for the GRU's parts.
    const init = method === "sgd" ? initialWeights(cell, projectors[l], parts.length) : null;
    const fits = parts.map((part, j) => {
      const val = valid ? valid[l][j] : null;
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
    littles.push(new LittleModule(rt, cell.rows, cell.input, cell.hidden, k, seed + l, bits, splitWeights(fits, cell.rows, k), cell.kind === "lstm"));
    report.push({
      layer: l, method, k, samples: samples(parts[0]),
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
function initialWeights(cell: Cell, projector: Projector, parts: number): { W: Float32Array; b: Float32Array }[] {
  const WP = projectWeights(projector.projection, cell.W, cell.rows), k = projector.k;
  if (parts === 1) return [{ W: WP, b: (cell as Lstm).b.slice() }];
  const gru = cell as Gru, [Wx, Wh] = splitRows(WP, cell.rows, k, k);
  return [{ W: Wx, b: gru.bIh.slice() }, { W: Wh, b: gru.bHh.slice() }];
}

/** Runs the dense stack over the sequences and records, per layer, each part's inputs and targets. */
function collect(stack: Stack, projectors: Projector[], sequences: Float32Array[][],
                 onProgress?: (done: number, total: number) => void): Part[][] {
  const steps = sequences.reduce((n, seq) => n + seq.length, 0);
  if (steps === 0) throw new Error("fitLittleModules: no steps in the calibration sequences");
  const parts = stack.layers.map((cell, l): Part[] => {
    const k = projectors[l].k, R = cell.rows;
    return cell.kind === "lstm"
      ? [{ d: 2 * k, m: R, Z: new Float32Array(steps * 2 * k), Y: new Float32Array(steps * R) }]
      : [0, 1].map(() => ({ d: k, m: R, Z: new Float32Array(steps * k), Y: new Float32Array(steps * R) }));
  });
  let t = 0;
  for (const seq of sequences) {
    stack.reset();
    for (const x of seq) {
      stack.layers.forEach((cell, l) => {
        stack.loadLayer(l, x);
        const p = projectors[l].project(cell.xh), k = projectors[l].k, [a, b] = parts[l];
        cell.compute();
        if (cell.kind === "lstm") {
          a.Z.set(p, t * 2 * k);
          a.Y.set(cell.pre, t * cell.rows);
        } else {
          a.Z.set(p.subarray(0, k), t * k); a.Y.set(cell.preX, t * cell.rows);
          b.Z.set(p.subarray(k), t * k); b.Y.set(cell.preH, t * cell.rows);
        }
        stack.finishLayer(l);
      });
      t++;
    }
    onProgress?.(t, steps);
  }
  stack.reset();
  return parts;
}

/** Little weights from the fitted parts: LSTM's joint (rows, 2k) splits by columns; GRU's are apart. */
function splitWeights(fits: { W: Float32Array; b: Float32Array }[], rows: number, k: number): LittleWeights {
  if (fits.length === 2) return { Wx: fits[0].W, bx: fits[0].b, Wh: fits[1].W, bh: fits[1].b };
  const [Wx, Wh] = splitRows(fits[0].W, rows, k, k);
  return { Wx, Wh, bx: fits[0].b, bh: new Float32Array(rows) };
}
