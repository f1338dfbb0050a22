import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { Stack, type StackConfig } from "../src/recurrent/stack.js";
import { Lstm } from "../src/recurrent/lstm.js";
import { testRuntimes, label, assertClose } from "./helpers.js";
import { GOLDEN_RNN, gruStep, lstmStep, randomWeights, torchFromOnnx } from "./reference-rnn.js";
import { FETCH_HINT, loadOnnxTestCase } from "../src/onnx/testdata.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const SHAPES: [number, number][] = [[1, 1], [7, 5], [33, 17], [130, 257]];

function inputs(rng: Rng, steps: number, n: number): Float32Array[] {
  return Array.from({ length: steps }, () => { const x = new Float32Array(n); rng.fillUniform(x, -2, 2); return x; });
}

test("LSTM and GRU layers match float64 PyTorch-semantics cells over a sequence", async () => {
  for (const rt of await testRuntimes()) {
    for (const kind of ["lstm", "gru"] as const) {
      for (const [E, H] of SHAPES) {
        const rng = new Rng(E * 1000 + H);
        const w = randomWeights(rng, kind === "lstm" ? 4 : 3, E, H, 2 / Math.sqrt(H));
        const config: StackConfig = { kind, input: E, hidden: H, layers: 1, context: 0, residualFrom: 1 };
        const stack = new Stack(rt, config, [w]);
        let h: Float64Array = new Float64Array(H), c: Float64Array = new Float64Array(H);
        for (const x of inputs(rng, 6, E)) {
          const got = stack.step(x);
          if (kind === "lstm") [h, c] = lstmStep(w, E, H, x, h, c); else h = gruStep(w, E, H, x, h);
          assertClose(got, h, 1, 1e-5, `${label(rt)} ${kind} ${E}→${H}`);
        }
      }
    }
  }
});

test("a stack feeds [below | context] to each layer and adds residuals from residualFrom on", async () => {
  const [rt] = await testRuntimes();
  for (const kind of ["lstm", "gru"] as const) {
    const rng = new Rng(7), E = 6, H = 9, C = 4, L = 4, gates = kind === "lstm" ? 4 : 3;
    const ws = Array.from({ length: L }, (_, l) => randomWeights(rng, gates, (l === 0 ? E : H) + C, H));
    const stack = new Stack(rt, { kind, input: E, hidden: H, layers: L, context: C, residualFrom: 2 }, ws);
    const hs: Float64Array[] = ws.map(() => new Float64Array(H)), cs: Float64Array[] = ws.map(() => new Float64Array(H));
    for (const xc of inputs(rng, 5, E + C)) {
      const context = Array.from(xc.subarray(E));
      let below: number[] = Array.from(xc.subarray(0, E));
      for (let l = 0; l < L; l++) {
        const inp = [...below, ...context];
        if (kind === "lstm") [hs[l], cs[l]] = lstmStep(ws[l], inp.length, H, inp, hs[l], cs[l]);
        else hs[l] = gruStep(ws[l], inp.length, H, inp, hs[l]);
        below = Array.from(hs[l], (v, i) => (l >= 2 ? v + below[i] : v));
      }
      assertClose(stack.step(xc), below, 1, 1e-5, `${kind} stack`);
    }
  }
});

test("layers reject mismatched weights and inputs with the argument's name", async () => {
  const [rt] = await testRuntimes();
  const w = randomWeights(new Rng(1), 4, 3, 2);
  assert.throws(() => new Lstm(rt, 4, 2, w), /Lstm: weight_ih must have 32 elements, got 24/);
  const stack = new Stack(rt, { kind: "lstm", input: 3, hidden: 2, layers: 1, context: 0, residualFrom: 1 }, [w]);
  assert.throws(() => stack.step(new Float32Array(4)), /Stack.step: x must have 3 elements, got 4/);
  assert.throws(() => new Stack(rt, { kind: "lstm", input: 3, hidden: 2, layers: 2, context: 0, residualFrom: 1 }, [w]),
    /2 layers need 2 weight sets, got 1/);
});

// Debian's libonnx-testdata: our layers on ONNX's own LSTM/GRU cases, run one batch element at a time.
for (const g of GOLDEN_RNN) {
  const data = loadOnnxTestCase(g.name);
  test(`ONNX test data: ${g.name}`, { skip: data ? false : FETCH_HINT }, async () => {
    const [rt] = await testRuntimes();
    const [X, W, R, B] = data!.inputs, Yh = data!.outputs.find((o) => o.name === "Y_h")!;
    const [steps, batch, E] = X.dims, H = R.dims[2];
    const weights = torchFromOnnx(g.onnx, g.torch, W.data, R.data, B?.data ?? null, E, H);
    const stack = new Stack(rt, { kind: g.kind, input: E, hidden: H, layers: 1, context: 0, residualFrom: 1 }, [weights]);
    assert.deepEqual(Yh.dims, [1, batch, H]);
    for (let b = 0; b < batch; b++) {
      stack.reset();
      let h: Float32Array = new Float32Array(0);
      for (let t = 0; t < steps; t++) h = stack.step(X.data.slice((t * batch + b) * E, (t * batch + b + 1) * E));
      assertClose(h, Yh.data.subarray(b * H, (b + 1) * H), 1, 1e-5, `${g.name} batch ${b}`);
    }
  });
}
