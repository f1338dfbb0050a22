// Stacked recurrent layers at batch 1, as in GNMT's decoder: layer l reads [output of layer l−1 |
// context] (context: e.g. the attention vector, the same for every layer; size 0 for a plain
// stack), and from layer `residualFrom` on, a layer's output is its h plus its input from below.
// A step's input is one vector [x | context]. A single-layer model is a stack of one.
import type { Runtime } from "../runtime/runtime.js";
import * as check from "../kernels/check.js";
import { Lstm, type BigBits, type LstmWeights } from "./lstm.js";
import { Gru, type GruWeights } from "./gru.js";

export type CellKind = "lstm" | "gru";
export type Cell = Lstm | Gru;

export interface StackConfig {
  kind: CellKind;
  input: number;        // size of x fed to layer 0
  hidden: number;
  layers: number;
  context: number;      // size of the context appended to every layer's input; 0 for none
  residualFrom: number; // first layer (≥ 1) with a residual connection; ≥ layers for none
  bigBits?: BigBits;    // precision of the big weights: 32 (default) or 8 (LSTM only)
  sparseBig?: boolean;  // LSTM, fp32: big weights in compressed rows, only their nonzeros stored and read (a pruned model)
}

/** PyTorch parameter names per layer: weight_ih, weight_hh, bias_ih, bias_hh. */
export type LayerWeights = LstmWeights | GruWeights;

export function gateCount(kind: CellKind): number { return kind === "lstm" ? 4 : 3; }

/** Input size of layer l. */
export function layerInput(config: StackConfig, l: number): number {
  return (l === 0 ? config.input : config.hidden) + config.context;
}

export class Stack {
  readonly layers: Cell[];
  private readonly outputs: Float32Array[]; // per layer: h, or h + input for residual layers

  constructor(rt: Runtime, readonly config: StackConfig, weights: LayerWeights[]) {
    const k = "Stack";
    check.size(k, "layers", config.layers, 1);
    check.size(k, "context", config.context, 0);
    if (config.kind !== "lstm" && config.kind !== "gru") throw new Error(`${k}: kind must be "lstm" or "gru", got ${JSON.stringify(config.kind)}`);
    if (weights.length !== config.layers) throw new Error(`${k}: ${config.layers} layers need ${config.layers} weight sets, got ${weights.length}`);
    if (config.residualFrom < 1) throw new Error(`${k}: residualFrom must be ≥ 1 (layer 0's input is not hidden-sized)`);
    const bits = config.bigBits ?? 32;
    if (bits !== 32 && !(bits === 8 && config.kind === "lstm")) {
      throw new Error(`${k}: bigBits must be 32, or 8 for an LSTM (a GRU's candidate gate would need a split INT8 product), got ${bits} for ${config.kind}`);
    }
    if (config.sparseBig && !(config.kind === "lstm" && bits === 32)) {
      throw new Error(`${k}: sparseBig needs an LSTM with fp32 big weights, got ${config.kind} with bigBits ${bits}`);
    }
    this.layers = weights.map((w, l) => config.kind === "lstm"
      ? new Lstm(rt, layerInput(config, l), config.hidden, w, bits, config.sparseBig ?? false)
      : new Gru(rt, layerInput(config, l), config.hidden, w));
    this.outputs = this.layers.map((cell, l) => this.residual(l) ? rt.heap.f32(config.hidden) : cell.h);
  }

  reset(): void { for (const cell of this.layers) cell.reset(); }

  /** The output of the top layer after the last step. */
  get output(): Float32Array { return this.outputs[this.outputs.length - 1]; }

  /** Size of one step's input vector: [x | context]. */
  get stepSize(): number { return this.config.input + this.config.context; }

  /** One dense step through every layer; x is [x | context] (stepSize values). */
  step(x: Float32Array): Float32Array {
    for (let l = 0; l < this.layers.length; l++) {
      this.loadLayer(l, x);
      this.layers[l].compute();
      this.finishLayer(l);
    }
    return this.output;
  }

  /** Writes layer l's input [below | context] into its xh; for layer 0 that is x itself. */
  loadLayer(l: number, x: Float32Array): void {
    const xh = this.layers[l].xh;
    if (l === 0) {
      check.f32("Stack.step", "x", x, this.stepSize);
      xh.set(x, 0);
      return;
    }
    const below = this.outputs[l - 1], H = below.length, C = this.config.context, from = this.config.input;
    xh.set(below, 0);
    for (let i = 0; i < C; i++) xh[H + i] = x[from + i];
  }

  /** After layer l computed h: add the residual where configured. */
  finishLayer(l: number): void {
    if (!this.residual(l)) return;
    const out = this.outputs[l], h = this.layers[l].h, below = this.outputs[l - 1];
    for (let i = 0; i < out.length; i++) out[i] = h[i] + below[i];
  }

  private residual(l: number): boolean { return l >= this.config.residualFrom && l > 0; }
}
