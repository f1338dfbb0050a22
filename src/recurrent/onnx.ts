// ONNX graphs of one recurrent step at batch 1 from PyTorch-layout weights, for the onnxruntime peer:
// the LSTM and GRU operators, the same cells as Gemm plus gate math, the same cells dynamically
// quantized (INT8 weights, the input quantized per step: onnxruntime's INT8 dense baseline), and a
// GNMT-style stack of LSTM operators or of quantized cells. Fixed shapes, so the peer sees exactly
// the work our cells do. Not here: the generic single-op graphs (src/onnx/graphs.ts).
import type { GraphSpec, NodeSpec, TensorData, ValueInfo } from "../onnx/proto.js";
import type { OnnxModel } from "../onnx/peer.js";
import { checkLength, model } from "../onnx/graphs.js";
import { quantizeRows } from "../dual/quantize.js";
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

/** ONNX's B (2·G·H) = [Wb | Rb] of the LSTM/GRU operators, gates in ONNX order. */
function onnxBias(w: CellWeights, order: readonly number[], H: number): Float32Array {
  const GH = order.length * H, B = new Float32Array(2 * GH);
  B.set(reorderGates(w.bias_ih, order, H, 1), 0);
  B.set(reorderGates(w.bias_hh, order, H, 1), GH);
  return B;
}

function cellModel(op: "LSTM" | "GRU", E: number, H: number, w: CellWeights): OnnxModel {
  const lstm = op === "LSTM", G = lstm ? 4 : 3, order = lstm ? LSTM_ORDER : GRU_ORDER;
  checkCell(`${op.toLowerCase()}Model`, G, E, H, w);
  const B = onnxBias(w, order, H);
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

/**
 * An LSTM's gate math on its pre-activations `pre` (PyTorch's gate order i, f, g, o along `axis`):
 * c1 = σ(f)·c0 + σ(i)·tanh(g), h1 = σ(o)·tanh(c1). Node names start with `p`.
 */
function lstmGateNodes(p: string, pre: string, c0: string, h1: string, c1: string, axis: number): NodeSpec[] {
  const n = (s: string) => p + s;
  return [
    { opType: "Split", inputs: [pre], outputs: [n("ai"), n("af"), n("ag"), n("ao")], attributes: [{ name: "axis", int: axis }] },
    { opType: "Sigmoid", inputs: [n("ai")], outputs: [n("i")] },
    { opType: "Sigmoid", inputs: [n("af")], outputs: [n("f")] },
    { opType: "Tanh", inputs: [n("ag")], outputs: [n("g")] },
    { opType: "Sigmoid", inputs: [n("ao")], outputs: [n("o")] },
    { opType: "Mul", inputs: [n("f"), c0], outputs: [n("fc")] },
    { opType: "Mul", inputs: [n("i"), n("g")], outputs: [n("ig")] },
    { opType: "Add", inputs: [n("fc"), n("ig")], outputs: [c1] },
    { opType: "Tanh", inputs: [c1], outputs: [n("tc")] },
    { opType: "Mul", inputs: [n("o"), n("tc")], outputs: [h1] },
  ];
}

/**
 * A GRU's gate math on the x part gx and the h part gh of its pre-activations (gate order r, z, n
 * along `axis`): n = tanh(gx_n + r ⊙ gh_n), h1 = (1 − z)·n + z·h0.
 */
function gruGateNodes(gx: string, gh: string, h0: string, h1: string, axis: number): NodeSpec[] {
  return [
    { opType: "Split", inputs: [gx], outputs: ["xr", "xz", "xn"], attributes: [{ name: "axis", int: axis }] },
    { opType: "Split", inputs: [gh], outputs: ["hr", "hz", "hn"], attributes: [{ name: "axis", int: axis }] },
    { opType: "Add", inputs: ["xr", "hr"], outputs: ["ar"] },
    { opType: "Sigmoid", inputs: ["ar"], outputs: ["r"] },
    { opType: "Add", inputs: ["xz", "hz"], outputs: ["az"] },
    { opType: "Sigmoid", inputs: ["az"], outputs: ["z"] },
    { opType: "Mul", inputs: ["r", "hn"], outputs: ["rhn"] },
    { opType: "Add", inputs: ["xn", "rhn"], outputs: ["an"] },
    { opType: "Tanh", inputs: ["an"], outputs: ["n"] },
    // h1 = (1 − z)·n + z·h0 = n + z·(h0 − n)
    { opType: "Sub", inputs: [h0, "n"], outputs: ["d"] },
    { opType: "Mul", inputs: ["z", "d"], outputs: ["zd"] },
    { opType: "Add", inputs: ["n", "zd"], outputs: [h1] },
  ];
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
      ...lstmGateNodes("", "pre", "c0", "h1", "c1", 1),
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
      ...gruGateNodes("gx", "gh", "h0", "h1", 1),
    ],
    initializers: [
      { name: "Wi", dims: [3 * H, E], data: w.weight_ih }, { name: "bi", dims: [3 * H], data: w.bias_ih },
      { name: "Wh", dims: [3 * H, H], data: w.weight_hh }, { name: "bh", dims: [3 * H], data: w.bias_hh },
    ],
    inputs: [{ name: "x", dims: [1, E] }, { name: "h0", dims: [1, H] }],
    outputs: [{ name: "h1", dims: [1, H] }],
  });
}

// ---------------------------------------------------------------------------------------------
// Dynamically quantized cells: onnxruntime's INT8 dense step

/**
 * y (1,1,rows) = a (1,1,cols) · Wᵀ + b with W (rows, cols) at 8 bits, symmetric per row (scale
 * max|W_r|/127, as our INT8 cells), and a quantized per step by DynamicQuantizeLinear (uint8, one
 * scale and zero point): the graph onnxruntime's quantize_dynamic writes (DynamicQuantizeLinear,
 * MatMulInteger, Cast, the product of the scales, Mul, Add), which its optimizer fuses. Node and
 * initializer names start with `p`.
 * The weights are stored as uint8 q + 128 with zero point 128 (the same 255 levels): onnxruntime's
 * uint8 × int8 product on AVX2 without VNNI adds pairs of products in saturating 16 bits and was
 * measured 0.02 off on an LSTM-7 step; uint8 × uint8 has no such overflow.
 */
function quantizedLinear(p: string, a: string, y: string, W: Float32Array, b: Float32Array, rows: number, cols: number):
    { nodes: NodeSpec[]; initializers: TensorData[] } {
  const q = quantizeRows(W, rows, cols, 8), Bq = new Uint8Array(cols * rows); // B = Wᵀ (cols, rows)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) Bq[c * rows + r] = q.q![r * cols + c] + 128;
  const n = (s: string) => p + s;
  return {
    nodes: [
      { opType: "DynamicQuantizeLinear", inputs: [a], outputs: [n("aq"), n("as"), n("az")] },
      { opType: "MatMulInteger", inputs: [n("aq"), n("Wq"), n("az"), n("wz")], outputs: [n("acc")] },
      { opType: "Cast", inputs: [n("acc")], outputs: [n("accf")], attributes: [{ name: "to", int: 1 }] },
      { opType: "Mul", inputs: [n("as"), n("ws")], outputs: [n("scale")] },
      { opType: "Mul", inputs: [n("accf"), n("scale")], outputs: [n("ab")] },
      { opType: "Add", inputs: [n("ab"), n("b")], outputs: [y] },
    ],
    initializers: [
      { name: n("Wq"), dims: [cols, rows], data: Bq },
      { name: n("wz"), dims: [], data: Uint8Array.of(128) },
      { name: n("ws"), dims: [rows], data: q.scales },
      { name: n("b"), dims: [rows], data: b },
    ],
  };
}

/** The nodes of one dynamically quantized LSTM step on (1,1,·) tensors: [x | h0] in one product. */
function quantizedLstmNodes(p: string, x: string, h0: string, c0: string, h1: string, c1: string, E: number, H: number, w: CellWeights):
    { nodes: NodeSpec[]; initializers: TensorData[] } {
  const W = interleaveRows(w.weight_ih, w.weight_hh, 4 * H, E, H), b = w.bias_ih.map((v, r) => v + w.bias_hh[r]);
  const lin = quantizedLinear(p, p + "xh", p + "pre", W, b, 4 * H, E + H);
  return {
    nodes: [
      { opType: "Concat", inputs: [x, h0], outputs: [p + "xh"], attributes: [{ name: "axis", int: 2 }] },
      ...lin.nodes,
      ...lstmGateNodes(p, p + "pre", c0, h1, c1, 2),
    ],
    initializers: lin.initializers,
  };
}

/** One LSTM step, dynamically quantized: inputs x (1,1,E), h0, c0 (1,1,H); outputs h1, c1 (1,1,H). */
export function lstmQuantizedModel(E: number, H: number, w: CellWeights): OnnxModel {
  checkCell("lstmQuantizedModel", 4, E, H, w);
  const { nodes, initializers } = quantizedLstmNodes("", "x", "h0", "c0", "h1", "c1", E, H, w);
  return model({
    name: "lstm_int8", nodes, initializers,
    inputs: [{ name: "x", dims: [1, 1, E] }, { name: "h0", dims: [1, 1, H] }, { name: "c0", dims: [1, 1, H] }],
    outputs: [{ name: "h1", dims: [1, 1, H] }, { name: "c1", dims: [1, 1, H] }],
  });
}

/** One GRU step, dynamically quantized (x and h0 in two products): inputs x (1,1,E), h0 (1,1,H); output h1 (1,1,H). */
export function gruQuantizedModel(E: number, H: number, w: CellWeights): OnnxModel {
  checkCell("gruQuantizedModel", 3, E, H, w);
  const x = quantizedLinear("x_", "x", "gx", w.weight_ih, w.bias_ih, 3 * H, E);
  const h = quantizedLinear("h_", "h0", "gh", w.weight_hh, w.bias_hh, 3 * H, H);
  return model({
    name: "gru_int8",
    nodes: [...x.nodes, ...h.nodes, ...gruGateNodes("gx", "gh", "h0", "h1", 2)],
    initializers: [...x.initializers, ...h.initializers],
    inputs: [{ name: "x", dims: [1, 1, E] }, { name: "h0", dims: [1, 1, H] }],
    outputs: [{ name: "h1", dims: [1, 1, H] }],
  });
}

/**
 * One step of GNMT's stacked LSTM decoder: layer l reads Concat(below, ctx) (below = x for layer 0),
 * and from layer `residualFrom` on its output is Y_h + below. Inputs x (1,1,X), ctx (1,1,C), and
 * h0_l, c0_l (1,1,H) per layer; output "y" (1,1,H), the top layer's output. `quantized`: each layer
 * is the dynamically quantized cell (lstmQuantizedModel's) instead of the LSTM operator.
 */
export function gnmtStackModel(X: number, H: number, C: number, residualFrom: number, layers: CellWeights[],
                               quantized = false): OnnxModel {
  const G = 4, nodes: GraphSpec["nodes"] = [], initializers: TensorData[] = [];
  const state: ValueInfo[] = [];
  let below = "x", belowSize = X;
  layers.forEach((w, l) => {
    const E = belowSize + C;
    checkCell(`gnmtStackModel layer ${l}`, G, E, H, w);
    state.push({ name: `h0_${l}`, dims: [1, 1, H] }, { name: `c0_${l}`, dims: [1, 1, H] });
    nodes.push({ opType: "Concat", inputs: [below, "ctx"], outputs: [`in${l}`], attributes: [{ name: "axis", int: 2 }] });
    if (quantized) {
      const q = quantizedLstmNodes(`L${l}_`, `in${l}`, `h0_${l}`, `c0_${l}`, `h${l}`, `c${l}`, E, H, w);
      nodes.push(...q.nodes);
      initializers.push(...q.initializers);
    } else {
      lstmOpLayer(l, w, E, H, nodes, initializers);
    }
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
    name: quantized ? "gnmt_stack_int8" : "gnmt_stack", nodes, initializers,
    inputs: [{ name: "x", dims: [1, 1, X] }, { name: "ctx", dims: [1, 1, C] }, ...state],
    outputs: [{ name: "y", dims: [1, 1, H] }],
  });
}

/** Layer l of the stack as ONNX's LSTM operator on in_l, reading h0_l, c0_l and writing h_l, c_l. */
function lstmOpLayer(l: number, w: CellWeights, E: number, H: number, nodes: NodeSpec[], initializers: TensorData[]): void {
  const G = 4, B = onnxBias(w, LSTM_ORDER, H);
  initializers.push(
    { name: `W${l}`, dims: [1, G * H, E], data: reorderGates(w.weight_ih, LSTM_ORDER, H, E) },
    { name: `R${l}`, dims: [1, G * H, H], data: reorderGates(w.weight_hh, LSTM_ORDER, H, H) },
    { name: `B${l}`, dims: [1, 2 * G * H], data: B },
  );
  nodes.push({
    opType: "LSTM", inputs: [`in${l}`, `W${l}`, `R${l}`, `B${l}`, "", `h0_${l}`, `c0_${l}`],
    outputs: ["", `h${l}`, `c${l}`], attributes: [{ name: "hidden_size", int: H }],
  });
}
