// The onnxruntime peer and our ONNX writer/reader: models we build run in onnxruntime and agree
// with float64 references; LSTM/GRU cells from PyTorch-layout weights agree with a PyTorch-semantics
// cell (which proves the gate-order mapping); the reference cell agrees with ONNX's golden data.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { reference } from "../src/kernels/index.js";
import { decodeTensor, encodeTensor } from "../src/onnx/proto.js";
import { ORT_MISSING, OrtPeer, loadOrt, ortAvailable } from "../src/onnx/peer.js";
import { gemmModel, matmulModel } from "../src/onnx/graphs.js";
import { gruGemmModel, gruModel, lstmGemmModel, lstmModel } from "../src/recurrent/onnx.js";
import { FETCH_HINT, loadOnnxTestCase } from "../src/onnx/testdata.js";
import { assertClose } from "./helpers.js";
import { GOLDEN_RNN, gruStep, lstmStep, randomWeights, torchFromOnnx } from "./reference-rnn.js";

function random(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  rng.fillUniform(a, -scale, scale);
  return a;
}

// ---------------------------------------------------------------------------------------------
// Writer and reader

test("TensorProto: what we write reads back; packed int64 (negative) and float_data fields read", () => {
  const t = { name: "weights", dims: [3, 1, 5], data: random(new Rng(3), 15) };
  const back = decodeTensor(encodeTensor(t));
  assert.equal(back.name, "weights");
  assert.deepEqual(back.dims, [3, 1, 5]);
  assert.deepEqual(back.data, t.data);
  // dims [2] (field 1), data_type INT64 (field 2 = 7), int64_data packed [-1, 300] (field 7).
  const ints = Uint8Array.of(0x08, 2, 0x10, 7, 0x3a, 12, ...new Array(9).fill(0xff), 0x01, 0xac, 0x02);
  assert.deepEqual(Array.from(decodeTensor(ints).data), [-1, 300]);
  // dims [1], data_type FLOAT, float_data packed [1.5] (field 4).
  const floats = Uint8Array.of(0x08, 1, 0x10, 1, 0x22, 4, 0, 0, 0xc0, 0x3f);
  assert.deepEqual(Array.from(decodeTensor(floats).data), [1.5]);
  assert.throws(() => decodeTensor(Uint8Array.of(0x08, 2, 0x10, 1, 0x4a, 4, 0, 0, 0, 0), "x.pb"), /x\.pb: tensor "" has 4 data bytes, but dims \[2\] of 4-byte elements need 8/);
  assert.throws(() => decodeTensor(Uint8Array.of(0x08, 0x80), "y.pb"), /y\.pb: malformed protobuf: index out of range/);
});

// ---------------------------------------------------------------------------------------------
// Matrix products in onnxruntime

test("ORT matmulModel (y = W·x) matches our reference matvec", async () => {
  const rng = new Rng(11);
  for (const [rows, cols, threads] of [[1, 1, 1], [7, 13, 1], [65, 130, 2], [300, 257, 2]]) {
    const W = random(rng, rows * cols), x = random(rng, cols);
    const peer = await OrtPeer.create(matmulModel(rows, cols, W), threads);
    const { Y } = await peer.run({ A: x });
    await peer.release();
    const want = new Float32Array(rows), scale = new Float64Array(rows);
    reference.matvec(want, W, x, null, rows, cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) scale[r] += Math.abs(W[r * cols + c] * x[c]);
    assertClose(Y, want, scale, 1e-5, `matmulModel ${rows}×${cols}, ${threads} thread(s)`);
  }
});

test("ORT gemmModel matches a float64 product with every transpose and a constant or fed B", async () => {
  const rng = new Rng(12);
  const [m, n, k] = [5, 9, 7];
  for (const transA of [false, true]) for (const transB of [false, true]) for (const constant of [false, true]) {
    const A = random(rng, m * k), B = random(rng, k * n);
    const a = (i: number, p: number) => transA ? A[p * m + i] : A[i * k + p];
    const b = (p: number, j: number) => transB ? B[j * k + p] : B[p * n + j];
    const want = new Float64Array(m * n), scale = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) {
      want[i * n + j] += a(i, p) * b(p, j);
      scale[i * n + j] += Math.abs(a(i, p) * b(p, j));
    }
    const peer = await OrtPeer.create(gemmModel(m, n, k, { transA, transB, B: constant ? B : undefined }), 1);
    const { Y } = await peer.run(constant ? { A } : { A, B });
    await peer.release();
    assertClose(Y, want, scale, 1e-5, `gemmModel transA=${transA} transB=${transB} constant B=${constant}`);
  }
});

test("OrtPeer.run names a missing feed", async () => {
  const peer = await OrtPeer.create(matmulModel(2, 3, new Float32Array(6)), 1);
  await assert.rejects(peer.run({}), /OrtPeer\.run: feed A must be a Float32Array/);
  await peer.release();
});

// ---------------------------------------------------------------------------------------------
// Recurrent cells in onnxruntime, from PyTorch-layout weights

const CELL_SIZES: [number, number][] = [[5, 7], [13, 4], [1, 1]];

test("ORT LSTM step from PyTorch weights, as the LSTM op and as Gemm plus gates, matches a float64 PyTorch LSTM cell", async () => {
  const rng = new Rng(21);
  for (const [E, H] of CELL_SIZES) {
    const w = randomWeights(rng, 4, E, H, 1);
    const x = random(rng, E, 2), h0 = random(rng, H), c0 = random(rng, H, 2);
    const [wantH, wantC] = lstmStep(w, E, H, x, h0, c0);
    for (const [op, graph] of [["LSTM op", lstmModel], ["Gemm + gates", lstmGemmModel]] as const) {
      const peer = await OrtPeer.create(graph(E, H, w), 1);
      const { h1, c1 } = await peer.run({ x, h0, c0 });
      await peer.release();
      assertClose(h1, wantH, 1, 1e-5, `${op} h1 E=${E} H=${H}`);
      assertClose(c1, wantC, 1, 1e-5, `${op} c1 E=${E} H=${H}`);
    }
  }
});

test("ORT GRU step from PyTorch weights, as the GRU op and as Gemms plus gates, matches a float64 PyTorch GRU cell", async () => {
  const rng = new Rng(22);
  for (const [E, H] of CELL_SIZES) {
    const w = randomWeights(rng, 3, E, H, 1);
    const x = random(rng, E, 2), h0 = random(rng, H);
    for (const [op, graph] of [["GRU op", gruModel], ["Gemm + gates", gruGemmModel]] as const) {
      const peer = await OrtPeer.create(graph(E, H, w), 1);
      const { h1 } = await peer.run({ x, h0 });
      await peer.release();
      assertClose(h1, gruStep(w, E, H, x, h0), 1, 1e-5, `${op} h1 E=${E} H=${H}`);
    }
  }
});

test("lstmModel/gruModel reject weights of the wrong size", () => {
  const w = randomWeights(new Rng(1), 4, 3, 2, 1);
  assert.throws(() => lstmModel(3, 3, w), /lstmModel: weight_ih must have 36 elements, got 24/);
  assert.throws(() => gruModel(3, 2, w), /gruModel: weight_ih must have 18 elements, got 24/);
  assert.throws(() => lstmGemmModel(3, 2, randomWeights(new Rng(1), 3, 3, 2, 1)), /lstmGemmModel: weight_ih must have 24 elements, got 18/);
});

// ---------------------------------------------------------------------------------------------
// ONNX's golden data (libonnx-testdata): one time step, batch 3, zero initial state

/**
 * PyTorch-layout weights from an ONNX test's W (1, G·H, E), R (1, G·H, H), B (1, 2·G·H) or none,
 * moving gate blocks by name: an independent statement of the mapping graphs.ts encodes.
 */
for (const g of GOLDEN_RNN) {
  test(`golden ${g.name}: float64 cell and ORT cell from PyTorch weights match ONNX's output`, async (t) => {
    const c = loadOnnxTestCase(g.name);
    if (c === null) { t.skip(FETCH_HINT); return; }
    const [X, W, R, B] = c.inputs;
    const [, batch, E] = X.dims;
    const H = R.dims[2];
    const want = c.outputs.find((o) => o.name === "Y_h");
    assert.ok(want, `${g.name} has a Y_h output`);
    const w = torchFromOnnx(g.onnx, g.torch, W.data, R.data, B?.data ?? null, E, H);
    const lstm = g.kind === "lstm";
    const peer = await OrtPeer.create(lstm ? lstmModel(E, H, w) : gruModel(E, H, w), 1);
    const zero = new Float32Array(H);
    for (let b = 0; b < batch; b++) {
      const x = X.data.slice(b * E, (b + 1) * E), expected = want.data.subarray(b * H, (b + 1) * H);
      const h64 = lstm ? lstmStep(w, E, H, x, zero, zero)[0] : gruStep(w, E, H, x, zero);
      assertClose(h64, expected, 1, 1e-6, `${g.name} float64 cell, batch ${b}`);
      const { h1 } = await peer.run(lstm ? { x, h0: zero, c0: zero } : { x, h0: zero });
      assertClose(h1, expected, 1, 1e-5, `${g.name} ORT cell, batch ${b}`);
    }
    await peer.release();
  });
}

test("onnxruntime-node is an optional peer: an absent package is null and a one-line note, not a crash", async () => {
  assert.equal(await loadOrt("onnxruntime-node-that-is-not-installed"), null);
  assert.equal(await ortAvailable(), true); // a development dependency, so installed here
  assert.match(ORT_MISSING, /^onnxruntime-node is not installed \(npm install onnxruntime-node\)[^\n]*$/);
});
