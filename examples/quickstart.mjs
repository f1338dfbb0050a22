// dualmodule in one screen: fit a little module to an LSTM, calibrate it to 50 % insensitive
// neurons, run a sequence, read what it saved. Run with: node examples/quickstart.mjs
// The LSTM here has random weights and its inputs come from a 6-dimensional subspace, so that the
// example is self-contained; with a trained model, pass its PyTorch weights instead.
import { Runtime, Stack, DualModel, fitLittleModules } from "dualmodule";

const E = 64, H = 128;
let seed = 1;
const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647) * 2 - 1;
const array = (n, scale) => Float32Array.from({ length: n }, () => random() * scale);

// PyTorch's nn.LSTM parameters for one layer (gate order i, f, g, o).
const weights = {
  weight_ih: array(4 * H * E, 0.3), weight_hh: array(4 * H * H, 0.3),
  bias_ih: array(4 * H, 0.1), bias_hh: array(4 * H, 0.1),
};
const basis = Array.from({ length: 6 }, () => array(E, 1));
const sequence = (steps) => Array.from({ length: steps }, () => {
  const x = new Float32Array(E);
  for (const b of basis) { const z = random(); for (let i = 0; i < E; i++) x[i] += z * b[i]; }
  return x;
});
const sequences = (count) => Array.from({ length: count }, () => sequence(35));

const rt = await Runtime.create();                       // WebAssembly SIMD kernels, one thread per core
const lstm = new Stack(rt, { kind: "lstm", input: E, hidden: H, layers: 1, context: 0, residualFrom: 1 }, [weights]);

// Little module: sparse random projection (k from the Johnson–Lindenstrauss bound, at most the
// narrower of x and h), then INT8
// weights fitted by closed-form least squares to the LSTM's own pre-activations.
const { littles, report } = fitLittleModules(rt, lstm, sequences(40), { validation: sequences(5) });
console.log(`little module: k = ${report[0].k}, validation R² of its estimates = ${report[0].validationR2.toFixed(3)}`);

const dual = new DualModel(rt, lstm, littles);
dual.calibrate(sequences(10), 0.5);                      // thresholds for 50 % insensitive neurons
const achieved = dual.measure(sequences(10));            // run held-out sequences through the dual model
const { perStep, memoryReduction } = dual.accounting.report();
console.log(`insensitive ratio ${achieved.toFixed(3)}; per step the big module read ${perStep.bigRows.toFixed(0)} of ${4 * H} rows;`);
console.log(`bytes read per step: ${(perStep.bigBytes + perStep.littleBytes) / 1e3 | 0} kB instead of ${perStep.denseBytes / 1e3 | 0} kB (${memoryReduction.toFixed(2)}x fewer)`);
await rt.close();
