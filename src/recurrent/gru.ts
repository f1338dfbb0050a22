// A single GRU layer at batch 1, PyTorch semantics (gate order r, z, n; the candidate uses
// r ⊙ (W_hn h + b_hn)). Storage as in lstm.ts: row r of W is [weight_ih[r] | weight_hh[r]], input
// xh = [x | h]. The candidate needs the x part and the h part of each row apart, so every product
// here is the split one: preX = W_ih·x + b_ih and preH = W_hh·h + b_hh.
import type { Runtime } from "../runtime/runtime.js";
import * as check from "../kernels/check.js";
import { checkWeights, interleaveRows, splitRows } from "./lstm.js";

export interface GruWeights {
  weight_ih: Float32Array; // (3H, E)
  weight_hh: Float32Array; // (3H, H)
  bias_ih: Float32Array;   // (3H)
  bias_hh: Float32Array;   // (3H)
}

export class Gru {
  readonly kind = "gru";
  readonly gates = 3;
  readonly rows: number;          // 3H gate neurons
  readonly cols: number;          // E + H
  readonly W: Float32Array;       // (3H, E+H)
  readonly bIh: Float32Array;     // (3H)
  readonly bHh: Float32Array;     // (3H)
  readonly xh: Float32Array;      // (E+H) = [x | h]
  readonly h: Float32Array;       // (H) view of xh's tail
  readonly preX: Float32Array;    // (3H) x part of the gate pre-activations
  readonly preH: Float32Array;    // (3H) h part

  constructor(private readonly rt: Runtime, readonly input: number, readonly hidden: number, weights: GruWeights) {
    checkWeights("Gru", input, hidden, 3, weights);
    const E = input, H = hidden, R = 3 * H;
    this.rows = R;
    this.cols = E + H;
    this.W = interleaveRows(weights.weight_ih, weights.weight_hh, R, E, H, rt.heap.f32(R * (E + H)));
    this.bIh = rt.heap.copyF32(weights.bias_ih);
    this.bHh = rt.heap.copyF32(weights.bias_hh);
    this.xh = rt.heap.f32(E + H);
    this.h = this.xh.subarray(E);
    this.preX = rt.heap.f32(R);
    this.preH = rt.heap.f32(R);
  }

  reset(): void { this.h.fill(0); }

  /** One dense step on input x. Returns h (a view that the next step overwrites). */
  step(x: Float32Array): Float32Array {
    this.load(x);
    return this.compute();
  }

  /**
   * A dense step on the input already in xh (stacks write [below | context] there themselves).
   * `perturb`, for experiments, may change the x parts of the pre-activations before the state
   * updates: adding to them adds to every gate's pre-activation, the candidate's included.
   */
  compute(perturb?: (preX: Float32Array) => void): Float32Array {
    this.rt.kernels.matvecSplit(this.preX, this.preH, this.W, this.xh, this.bIh, this.bHh, this.rows, this.cols, this.input);
    perturb?.(this.preX);
    this.rt.kernels.gruGates(this.h, this.preX, this.preH, this.hidden);
    return this.h;
  }

  load(x: Float32Array): void {
    check.f32("Gru.step", "x", x, this.input);
    this.xh.set(x);
  }

  /** Big module of a dual-module step: preX/preH hold estimates; listed rows are recomputed exactly. */
  computeRows(rowIdx: Int32Array, count: number): Float32Array {
    this.rt.kernels.matvecRowsSplit(this.preX, this.preH, this.W, this.xh, this.bIh, this.bHh,
      rowIdx, count, this.rows, this.cols, this.input);
    this.rt.kernels.gruGates(this.h, this.preX, this.preH, this.hidden);
    return this.h;
  }

  /** The weights under PyTorch's names (copies). */
  weights(): GruWeights {
    const [weight_ih, weight_hh] = splitRows(this.W, this.rows, this.input, this.hidden);
    return { weight_ih, weight_hh, bias_ih: this.bIh.slice(), bias_hh: this.bHh.slice() };
  }

  bigBytes(count: number): number { return count * (this.cols + 2) * 4; }
}
