// A word-level language model from ONNX (torch.onnx.export of PyTorch's word_language_model), as this
// project's LmConfig and flat parameters. The graph must hold its recurrent layers as ONNX LSTM or
// GRU operators, one node per layer:
//   Gather(encoder (V, E), input) → [LSTM|GRU → Squeeze] per layer → MatMul(·, decoder (H, V)) →
//   Add(decoder.bias (V)) → Reshape → LogSoftmax
// (Slice/Concat of the initial and final states, Constant, Identity, Dropout are allowed and ignored.)
// ONNX's gate blocks are reordered to PyTorch's: LSTM [i, o, f, c] → [i, f, g, o], GRU [z, r, h] →
// [r, z, n], and B = [Wb | Rb] split into bias_ih and bias_hh. Our GRU is PyTorch's, which is ONNX's
// linear_before_reset = 1; 0 is refused. Any other attribute value (direction, activations, clip,
// input_forget, layout), peepholes, sequence_lens, or a graph whose gates are spelled out in MatMul
// nodes is an error naming the node.
import type { CellKind } from "./stack.js";
import { checkConfig, paramCount, paramTable, type LmConfig } from "./lm.js";
import { checkAttributes, decodeOnnxGraph, floatsOf, nodeName, type AttributeValue, type NodeProto } from "../onnx/model.js";
import { oneLine } from "../util/one-line.js";

// PyTorch's gate block p is ONNX's block ONNX_BLOCK[cell][p].
const ONNX_BLOCK: Record<CellKind, number[]> = { lstm: [0, 2, 3, 1], gru: [1, 0, 2] };
const IGNORED = new Set(["Squeeze", "Unsqueeze", "Reshape", "LogSoftmax", "Softmax", "Slice", "Concat", "Constant", "Identity", "Dropout"]);

/** The language model in ONNX bytes; `path` names the file in errors. */
export function lmFromOnnx(bytes: Uint8Array, path: string): { config: LmConfig; params: Float32Array } {
  const g = decodeOnnxGraph(bytes, path);
  const fail = (msg: string): never => { throw new Error(oneLine(`ONNX model ${path}: ${msg}`)); };

  const rnns = g.nodes.filter((n) => n.opType === "LSTM" || n.opType === "GRU");
  if (rnns.length === 0) {
    fail("it has no ONNX LSTM or GRU node; a graph that spells the gates out in MatMul nodes is not supported: " +
      "export the PyTorch model with nn.LSTM/nn.GRU, or save its state_dict as safetensors");
  }
  for (const n of g.nodes) {
    if (n.opType !== "LSTM" && n.opType !== "GRU" && n.opType !== "Gather" && n.opType !== "MatMul" && n.opType !== "Add" && !IGNORED.has(n.opType ?? "")) {
      fail(`node ${nodeName(n)}: operator ${n.opType} is not supported in a language model (supported: Gather, LSTM, GRU, MatMul, Add, ${[...IGNORED].join(", ")})`);
    }
  }
  const cell: CellKind = rnns[0].opType === "LSTM" ? "lstm" : "gru";
  const mixed = rnns.find((n) => n.opType !== rnns[0].opType);
  if (mixed) fail(`node ${nodeName(mixed)} mixes ${mixed.opType} with ${rnns[0].opType} layers; one cell type per model`);

  // Embedding: the Gather whose data is an initializer.
  const gathers = g.nodes.filter((n) => n.opType === "Gather" && g.tensors.has(n.input?.[0] ?? ""));
  if (gathers.length !== 1) fail(`expected one Gather of an embedding initializer, found ${gathers.length}`);
  const enc = floatsOf(g, gathers[0].input![0], "embedding");
  if (enc.dims.length !== 2) fail(`embedding "${gathers[0].input![0]}" has dims [${enc.dims.join(", ")}], expected [vocab, emb]`);
  const [V, E] = enc.dims;

  // Recurrent layers.
  const G = cell === "lstm" ? 4 : 3;
  const layers = rnns.map((n) => readLayer(n, cell, G));
  const H = layers[0].H;

  // Decoder: MatMul by an initializer (H, V), then Add of an initializer (V).
  const matmuls = g.nodes.filter((n) => n.opType === "MatMul");
  if (matmuls.length !== 1) fail(`expected one MatMul (the decoder), found ${matmuls.length}${matmuls.length > 1 ? "; a graph that spells the gates out in MatMul nodes is not supported" : ""}`);
  const mm = matmuls[0];
  const weightName = mm.input?.find((i) => g.tensors.has(i ?? "")) ?? fail(`decoder ${nodeName(mm)} has no initializer operand`);
  const dec = floatsOf(g, weightName!, "decoder weight", [H, V]);
  const adds = g.nodes.filter((n) => n.opType === "Add");
  if (adds.length !== 1) fail(`expected one Add (the decoder bias), found ${adds.length}`);
  const biasName = adds[0].input?.find((i) => g.tensors.has(i ?? "")) ?? fail(`decoder bias ${nodeName(adds[0])} has no initializer operand`);
  const bias = floatsOf(g, biasName!, "decoder bias", [V]);

  // PyTorch exports the decoder as a separate, transposed initializer even when tied: tied iff equal.
  const decoderWeight = new Float32Array(V * H);
  for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) decoderWeight[v * H + h] = dec.data[h * V + v];
  const tied = E === H && sameBits(decoderWeight, enc.data);
  const config: LmConfig = { cell, vocab: V, emb: E, hidden: H, layers: layers.length, tied };
  try { checkConfig(config, "config"); } catch (e) { fail(`the graph gives an unusable model: ${(e as Error).message}`); }

  const params = new Float32Array(paramCount(config));
  const values = new Map<string, Float32Array>([["encoder.weight", enc.data], ["decoder.weight", decoderWeight], ["decoder.bias", bias.data]]);
  layers.forEach((L, l) => {
    if (L.H !== H) fail(`node ${nodeName(rnns[l])} has hidden_size ${L.H}, layer 0 ${H}; every layer must have the same`);
    const expectedIn = l === 0 ? E : H;
    if (L.input !== expectedIn) fail(`node ${nodeName(rnns[l])} (layer ${l}) takes inputs of ${L.input}, expected ${expectedIn}`);
    for (const [k, v] of Object.entries(L.weights)) values.set(`rnn.${k}_l${l}`, v);
  });
  for (const s of paramTable(config)) params.set(values.get(s.name)!, s.offset);
  return { config, params };

  function readLayer(n: NodeProto, kind: CellKind, gates: number) {
    const attr = (name: string, expected: string, ok: (v: AttributeValue) => boolean) => [name, (v: AttributeValue) => (ok(v) ? null : expected)] as const;
    const attrs = checkAttributes(g, n, Object.fromEntries([
      ["hidden_size", null],
      attr("direction", `"forward"`, (v) => v === "forward"),
      attr("layout", "0", (v) => v === 0),
      ...(kind === "gru"
        ? [attr("linear_before_reset", "1 (PyTorch's GRU: r ⊙ (R_h h + Rb_h)); re-export from PyTorch", (v) => v === 1)]
        : [attr("input_forget", "0", (v) => v === 0)]),
      attr("activations", kind === "lstm" ? "Sigmoid,Tanh,Tanh" : "Sigmoid,Tanh", (v) => v === (kind === "lstm" ? "Sigmoid,Tanh,Tanh" : "Sigmoid,Tanh")),
    ]));
    if (kind === "gru" && attrs.get("linear_before_reset") === undefined) {
      fail(`node ${nodeName(n)} has linear_before_reset = 0 (the default); only 1 (PyTorch's GRU) is supported`);
    }
    const inputs = n.input ?? [];
    if (inputs[4]) fail(`node ${nodeName(n)} has a sequence_lens input "${inputs[4]}", which is not supported`);
    if (inputs[7]) fail(`node ${nodeName(n)} has peephole weights P "${inputs[7]}", which PyTorch's LSTM does not have; not supported`);
    const W = floatsOf(g, inputs[1] ?? "", `${n.opType} W of node ${nodeName(n)}`);
    if (W.dims.length !== 3 || W.dims[0] !== 1) fail(`node ${nodeName(n)} W has dims [${W.dims.join(", ")}], expected [1, ${gates}·hidden, input]`);
    const h = W.dims[1] / gates, input = W.dims[2];
    const hs = attrs.get("hidden_size");
    if (hs !== undefined && hs !== h) fail(`node ${nodeName(n)} has hidden_size ${hs}, but W has ${W.dims[1]} rows (${gates} × ${h})`);
    if (!Number.isInteger(h)) fail(`node ${nodeName(n)} W has ${W.dims[1]} rows, not a multiple of ${gates}`);
    const R = floatsOf(g, inputs[2] ?? "", `${n.opType} R of node ${nodeName(n)}`, [1, gates * h, h]);
    const B = inputs[3] ? floatsOf(g, inputs[3], `${n.opType} B of node ${nodeName(n)}`, [1, 2 * gates * h]).data : new Float32Array(2 * gates * h);
    const order = ONNX_BLOCK[kind];
    const reorder = (src: Float32Array, cols: number) => {
      const out = new Float32Array(gates * h * cols), block = h * cols;
      order.forEach((from, to) => out.set(src.subarray(from * block, (from + 1) * block), to * block));
      return out;
    };
    return {
      H: h, input,
      weights: {
        weight_ih: reorder(W.data, input), weight_hh: reorder(R.data, h),
        bias_ih: reorder(B.subarray(0, gates * h), 1), bias_hh: reorder(B.subarray(gates * h), 1),
      },
    };
  }
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
