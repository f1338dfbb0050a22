// The paper's fit of the little module, as an option beside the closed form (ridge.ts): minibatch
// SGD on the squared error between little and big pre-activations, starting from the projected big
// weights (projectWeights in projection.ts), the learning rate divided by 4 whenever the validation
// error stops improving, for a fixed number of epochs. The best weights by validation error win.
//
// Step size. The loss per minibatch is L = (1/B) Σ_samples Σ_outputs (ŷ − y)² (the paper's: summed
// over outputs, averaged over samples). Its curvature is 2·E[z̃ z̃ᵀ] with z̃ = [z, 1], which depends
// on the scale of the projected inputs, so a raw learning rate (the paper's 5, for its own unstated
// scaling) does not transfer. Here the step is normalised by τ = E‖z̃‖² (measured on the training
// set): W ← W − (lr / 2τ)·∇L. Since τ is the trace of E[z̃ z̃ᵀ], every eigenvalue of the step's
// linear map is at most lr, so any lr < 2 is stable whatever the input scale (normalised LMS);
// lr = 1 is the default. A raw learning rate η on ∇L corresponds to lr = 2τη.
import * as check from "../kernels/check.js";
import { Rng } from "../util/random.js";
import { type FitOptions, plainBackend, predict } from "./ridge.js";

export interface SgdEpoch {
  epoch: number;     // 0 = the initial weights (not trained yet)
  lr: number;        // normalised learning rate used in this epoch
  trainMse: number;  // mean over the epoch's minibatches, per sample and output (NaN for epoch 0)
  valMse: number;    // validation error after the epoch, per sample and output
}

export interface SgdOptions extends Pick<FitOptions, "backend"> {
  Z: Float32Array;      // (samples, d) projected inputs
  Y: Float32Array;      // (samples, m) big-module pre-activations
  samples: number;
  d: number;
  m: number;
  init: { W: Float32Array; b: Float32Array };  // (m, d), (m): e.g. projected big weights and bias
  valZ: Float32Array;   // (valSamples, d)
  valY: Float32Array;   // (valSamples, m)
  valSamples: number;
  epochs: number;
  lr?: number;          // normalised, in (0, 2); default 1
  batch?: number;       // default 64
  seed?: number;        // shuffling; default 1
  onEpoch?: (e: SgdEpoch) => void;
}

/** Minibatch SGD; returns the weights with the lowest validation error and the per-epoch history. */
export function fitSgd(o: SgdOptions): { W: Float32Array; b: Float32Array; history: SgdEpoch[] } {
  const f = "fitSgd";
  const { d, m, samples, valSamples } = o;
  const batch = o.batch ?? 64, seed = o.seed ?? 1;
  let lr = o.lr ?? 1;
  check.size(f, "d", d, 1);
  check.size(f, "m", m, 1);
  check.size(f, "samples", samples, 1);
  check.size(f, "valSamples", valSamples, 1);
  check.size(f, "epochs", o.epochs, 1);
  check.size(f, "batch", batch, 1);
  if (!Number.isInteger(seed)) throw new RangeError(`${f}: seed must be an integer, got ${seed}`);
  if (!(lr > 0 && lr < 2)) throw new RangeError(`${f}: lr must be in (0, 2) (it is normalised, see sgd.ts), got ${lr}`);
  check.f32(f, "Z", o.Z, samples * d);
  check.f32(f, "Y", o.Y, samples * m);
  check.f32(f, "valZ", o.valZ, valSamples * d);
  check.f32(f, "valY", o.valY, valSamples * m);
  check.f32(f, "init.W", o.init.W, m * d);
  check.f32(f, "init.b", o.init.b, m);

  let tau = 0;
  for (let i = 0; i < samples * d; i++) tau += o.Z[i] * o.Z[i];
  tau = tau / samples + 1;

  const backend = o.backend ?? plainBackend;
  const W = backend.alloc(m * d), b = backend.alloc(m), G = backend.alloc(m * d);
  const Zb = backend.alloc(batch * d), E = backend.alloc(batch * m);
  try {
    W.set(o.init.W); b.set(o.init.b);

    /** Σ (ŷ − y)² over rows `order[start .. start + c)` of (Zs, Ys); leaves the residuals in E. */
    const residuals = (Zs: Float32Array, Ys: Float32Array, order: Uint32Array | null, start: number, c: number): number => {
      for (let s = 0; s < c; s++) {
        const r = order ? order[start + s] : start + s;
        Zb.set(Zs.subarray(r * d, (r + 1) * d), s * d);
      }
      predict(backend.gemm, E.subarray(0, c * m), Zb.subarray(0, c * d), W, b, c, d, m);
      let sse = 0;
      for (let s = 0; s < c; s++) {
        const r = order ? order[start + s] : start + s;
        for (let j = 0; j < m; j++) {
          const e = E[s * m + j] - Ys[r * m + j];
          E[s * m + j] = e;
          sse += e * e;
        }
      }
      return sse;
    };
    const validate = (): number => {
      let sse = 0;
      for (let start = 0; start < valSamples; start += batch) {
        sse += residuals(o.valZ, o.valY, null, start, Math.min(batch, valSamples - start));
      }
      return sse / (valSamples * m);
    };

    const history: SgdEpoch[] = [{ epoch: 0, lr, trainMse: NaN, valMse: validate() }];
    o.onEpoch?.(history[0]);
    let best = history[0].valMse;
    const bestW = Float32Array.from(W), bestB = Float32Array.from(b);
    const rng = new Rng(seed);
    const order = new Uint32Array(samples).map((_, i) => i);

    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      for (let i = samples - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = order[i]; order[i] = order[j]; order[j] = t;
      }
      let sse = 0;
      for (let start = 0; start < samples; start += batch) {
        const c = Math.min(batch, samples - start);
        sse += residuals(o.Z, o.Y, order, start, c);
        // ∇L/2 = (1/c) Eᵀ [Zb 1]: G (m, d) = Eᵀ (m, c) · Zb (c, d).
        backend.gemm(G, E.subarray(0, c * m), Zb.subarray(0, c * d), m, d, c, true, false, false);
        const step = lr / (tau * c);
        for (let i = 0; i < m * d; i++) W[i] -= step * G[i];
        for (let s = 0; s < c; s++) for (let j = 0; j < m; j++) b[j] -= step * E[s * m + j];
      }
      const entry: SgdEpoch = { epoch, lr, trainMse: sse / (samples * m), valMse: validate() };
      history.push(entry);
      o.onEpoch?.(entry);
      if (entry.valMse < best) {
        best = entry.valMse;
        bestW.set(W); bestB.set(b);
      } else {
        lr /= 4;
      }
    }
    return { W: bestW, b: bestB, history };
  } finally {
    if (backend.release) for (const a of [W, b, G, Zb, E]) backend.release(a);
  }
}
