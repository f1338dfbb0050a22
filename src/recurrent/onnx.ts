// ONNX graphs of one recurrent step at batch 1 from PyTorch-layout weights, for the onnxruntime peer:
// the LSTM and GRU operators, the same cells as Gemm plus gate math, and a GNMT-style stack. Fixed
// shapes, so the peer sees exactly the work our cells do. Not here: the generic single-op graphs
// (src/onnx/graphs.ts).
import type { GraphSpec, TensorData, ValueInfo } from "../onnx/proto.js";
import type { OnnxModel } from "../onnx/peer.js";
import { checkLength, model } from "../onnx/graphs.js";
import { interleaveRows } from "./lstm.js";

// ---------------------------------------------------------------------------------------------
// Recurrent cells, one time step at batch 1

/** PyTorch's parameters of nn.LSTM / nn.GRU layer 0 (gate rows G·H: 4H for LSTM, 3H for GRU). */
export interface CellWeights {
  weight_ih: Float32Array; // (G·H, E)
  weight_hh: Float32Array; // (G·H, H)
  bias_ih: Float32Array;   // (G·H)
  bias_hh: Float32Array;   // (G·H)
}

/**
 * Gate blocks of `src` (gates·H rows of `cols`) in ONNX order: block g of the result is PyTorch's
 * block order[g].
 */
function reorderGates(src: Float32Array, order: readonly number[], H: number, cols: number): Float32Array {
  const out = new Float32Array(src.length), block = H * cols;
  order.forEach((from, to) => out.set(src.subarray(from * block, (from + 1) * block), to * block));
  return out;
}

// ONNX LSTM gates are i, o, f, c; PyTorch's are i, f, g(=c), o.
const LSTM_ORDER = [0, 3, 1, 2];
// ONNX GRU gates are z, r, h; PyTorch's are r, z, n(=h).
const GRU_ORDER = [1, 0, 2];

function cellModel(op: "LSTM" | "GRU", E: number, H: number, w: CellWeights): OnnxModel {
  const lstm = op === "LSTM", G = lstm ? 4 : 3, order = lstm ? LSTM_ORDER : GRU_ORDER;
  checkCell(`${op.toLowerCase()}Model`, G, E, H, w);
  const B = new Float32Array(2 * G * H); // ONNX B is [Wb | Rb]
  B.set(reorderGates(w.bias_ih, order, H, 1), 0);
  B.set(reorderGates(w.bias_hh, order, H, 1), G * H);
  const state: ValueInfo[] = lstm ? [{ name: "h0", dims: [1, 1, H] }, { name: "c0", dims: [1, 1, H] }] : [{ name: "h0", dims: [1, 1, H] }];
  const outputs: ValueInfo[] = lstm ? [{ name: "h1", dims: [1, 1, H] }, { name: "c1", dims: [1, 1, H] }] : [{ name: "h1", dims: [1, 1, H] }];
  return model({
    name: op.toLowerCase(),
    nodes: [{
      opType: op,
      // X, W, R, B, sequence_lens (none), initial_h[, initial_c]; outputs Y (unused), Y_h[, Y_c].
      inputs: ["x", "W", "R", "B", "", ...state.map((v) => v.name)],
      outputs: ["", ...outputs.map((v) => v.name)],
      attributes: [
        { name: "hidden_size", int: H },
        // PyTorch's GRU applies r after the recurrent product and its bias: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)).
        ...(lstm ? [] : [{ name: "linear_before_reset", int: 1 }]),
      ],
    }],
    initializers: [
      { name: "W", dims: [1, G * H, E], data: reorderGates(w.weight_ih, order, H, E) },
      { name: "R", dims: [1, G * H, H], data: reorderGates(w.weight_hh, order, H, H) },
      { name: "B", dims: [1, 2 * G * H], data: B },
    ],
    inputs: [{ name: "x", dims: [1, 1, E] }, ...state],
    outputs,
  });
}

/** One LSTM step: inputs x (1,1,E), h0 (1,1,H), c0 (1,1,H); outputs h1, c1 (1,1,H). PyTorch semantics. */
export function lstmModel(inputSize: number, hiddenSize: number, weights: CellWeights): OnnxModel {
  return cellModel("LSTM", inputSize, hiddenSize, weights);
}

/** One GRU step: inputs x (1,1,E), h0 (1,1,H); output h1 (1,1,H). PyTorch semantics. */
export function gruModel(inputSize: number, hiddenSize: number, weights: CellWeights): OnnxModel {
  return cellModel("GRU", inputSize, hiddenSize, weights);
}

// The same cells as a Gemm on the concatenated input plus elementwise gate math: the other way to run
// a cell in onnxruntime (MLAS's Gemm against its LSTM/GRU kernels); benchmarks time both.

function checkCell(what: string, G: number, E: number, H: number, w: CellWeights): void {
  checkLength(what, "weight_ih", w.weight_ih, G * H * E);
  checkLength(what, "weight_hh", w.weight_hh, G * H * H);
  checkLength(what, "bias_ih", w.bias_ih, G * H);
  checkLength(what, "bias_hh", w.bias_hh, G * H);
}

/** One LSTM step as Gemm([x | h0], [W_ih | W_hh]ᵀ) and gate math: inputs x (1,E), h0, c0 (1,H); outputs h1, c1 (1,H). */
export function lstmGemmModel(E: number, H: number, w: CellWeights): OnnxModel {
  checkCell("lstmGemmModel", 4, E, H, w);
  const W = interleaveRows(w.weight_ih, w.weight_hh, 4 * H, E, H), b = w.bias_ih.map((v, r) => v + w.bias_hh[r]);
  return model({
    name: "lstm_gemm",
    nodes: [
      { opType: "Concat", inputs: ["x", "h0"], outputs: ["xh"], attributes: [{ name: "axis", int: 1 }] },
      { opType: "Gemm", inputs: ["xh", "W", "b"], outputs: ["pre"], attributes: [{ name: "transB", int: 1 }] },
      { opType: "Split", inputs: ["pre"], outputs: ["ai", "af", "ag", "ao"], attributes: [{ name: "axis", int: 1 }] },
      { opType: "Sigmoid", inputs: ["ai"], outputs: ["i"] },
      { opType: "Sigmoid", inputs: ["af"], outputs: ["f"] },
      { opType: "Tanh", inputs: ["ag"], outputs: ["g"] },
      { opType: "Sigmoid", inputs: ["ao"], outputs: ["o"] },
      { opType: "Mul", inputs: ["f", "c0"], outputs: ["fc"] },
      { opType: "Mul", inputs: ["i", "g"], outputs: ["ig"] },
      { opType: "Add", inputs: ["fc", "ig"], outputs: ["c1"] },
      { opType: "Tanh", inputs: ["c1"], outputs: ["tc"] },
      { opType: "Mul", inputs: ["o", "tc"], outputs: ["h1"] },
    ],
    initializers: [{ name: "W", dims: [4 * H, E + H], data: W }, { name: "b", dims: [4 * H], data: b }],
    inputs: [{ name: "x", dims: [1, E] }, { name: "h0", dims: [1, H] }, { name: "c0", dims: [1, H] }],
    outputs: [{ name: "h1", dims: [1, H] }, { name: "c1", dims: [1, H] }],
  });
}

/** One GRU step as two Gemms (x and h0 apart: the candidate needs them apart) and gate math: inputs x (1,E), h0 (1,H); output h1 (1,H). */
export function gruGemmModel(E: number, H: number, w: CellWeights): OnnxModel {
  checkCell("gruGemmModel", 3, E, H, w);
  return model({
    name: "gru_gemm",
    nodes: [
      { opType: "Gemm", inputs: ["x", "Wi", "bi"], outputs: ["gx"], attributes: [{ name: "transB", int: 1 }] },
      { opType: "Gemm", inputs: ["h0", "Wh", "bh"], outputs: ["gh"], attributes: [{ name: "transB", int: 1 }] },
      { opType: "Split", inputs: ["gx"], outputs: ["xr", "xz", "xn"], attributes: [{ name: "axis", int: 1 }] },
      { opType: "Split", inputs: ["gh"], outputs: ["hr", "hz", "hn"], attributes: [{ name: "axis", int: 1 }] },
      { opType: "Add", inputs: ["xr", "hr"], outputs: ["ar"] },
      { opType: "Sigmoid", inputs: ["ar"], outputs: ["r"] },
      { opType: "Add", inputs: ["xz", "hz"], outputs: ["az"] },
      { opType: "Sigmoid", inputs: ["az"], outputs: ["z"] },
      { opType: "Mul", inputs: ["r", "hn"], outputs: ["rhn"] },
      { opType: "Add", inputs: ["xn", "rhn"], outputs: ["an"] },
      { opType: "Tanh", inputs: ["an"], outputs: ["n"] },
      // h1 = (1 − z)·n + z·h0 = n + z·(h0 − n)
      { opType: "Sub", inputs: ["h0", "n"], outputs: ["d"] },
      { opType: "Mul", inputs: ["z", "d"], outputs: ["zd"] },
      { opType: "Add", inputs: ["n", "zd"], outputs: ["h1"] },
    ],
    initializers: [
      { name: "Wi", dims: [3 * H, E], data: w.weight_ih }, { name: "bi", dims: [3 * H], data: w.bias_ih },
      { name: "Wh", dims: [3 * H, H], data: w.weight_hh }, { name: "bh", dims: [3 * H], data: w.bias_hh },
    ],
    inputs: [{ name: "x", dims: [1, E] }, { name: "h0", dims: [1, H] }],
    outputs: [{ name: "h1", dims: [1, H] }],
  });
}

/**
 * One step of GNMT's stacked LSTM decoder: layer l reads Concat(below, ctx) (below = x for layer 0),
 * and from layer `residualFrom` on its output is Y_h + below. Inputs x (1,1,X), ctx (1,1,C), and
 * h0_l, c0_l (1,1,H) per layer; output "y" (1,1,H), the top layer's output.
 */
export function gnmtStackModel(X: number, H: number, C: number, residualFrom: number, layers: CellWeights[]): OnnxModel {
  const G = 4, nodes: GraphSpec["nodes"] = [], initializers: TensorData[] = [];
  const state: ValueInfo[] = [];
  let below = "x", belowSize = X;
  layers.forEach((w, l) => {
    const E = belowSize + C;
    checkCell(`gnmtStackModel layer ${l}`, G, E, H, w);
    const B = new Float32Array(2 * G * H);
    B.set(reorderGates(w.bias_ih, LSTM_ORDER, H, 1), 0);
    B.set(reorderGates(w.bias_hh, LSTM_ORDER, H, 1), G * H);
    initializers.push(
      { name: `W${l}`, dims: [1, G * H, E], data: reorderGates(w.weight_ih, LSTM_ORDER, H, E) },
      { name: `R${l}`, dims: [1, G * H, H], data: reorderGates(w.weight_hh, LSTM_ORDER, H, H) },
      { name: `B${l}`, dims: [1, 2 * G * H], data: B },
    );
    state.push({ name: `h0_${l}`, dims: [1, 1, H] }, { name: `c0_${l}`, dims: [1, 1, H] });
    nodes.push(
      { opType: "Concat", inputs: [below, "ctx"], outputs: [`in${l}`], attributes: [{ name: "axis", int: 2 }] },
      {
        opType: "LSTM", inputs: [`in${l}`, `W${l}`, `R${l}`, `B${l}`, "", `h0_${l}`, `c0_${l}`],
        outputs: ["", `h${l}`, `c${l}`], attributes: [{ name: "hidden_size", int: H }],
      },
    );
    let out = `h${l}`;
    if (l >= residualFrom && l > 0) {
      nodes.push({ opType: "Add", inputs: [out, below], outputs: [`out${l}`] });
      out = `out${l}`;
    }
    below = out;
    belowSize = H;
  });
  nodes.push({ opType: "Identity", inputs: [below], outputs: ["y"] });
  return model({
    name: "gnmt_stack", nodes, initializers,
    inputs: [{ name: "x", dims: [1, 1, X] }, { name: "ctx", dims: [1, 1, C] }, ...state],
    outputs: [{ name: "y", dims: [1, 1, H] }],
  });
}
