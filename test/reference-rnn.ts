// Independent float64 LSTM and GRU (PyTorch semantics) for tests, written from the equations
// rather than from the library's code; and ONNX's golden LSTM/GRU cases in PyTorch's layout.
import { Rng } from "../src/util/random.js";

export interface RnnWeights { weight_ih: Float32Array; weight_hh: Float32Array; bias_ih: Float32Array; bias_hh: Float32Array }

const sig = (v: number) => 1 / (1 + Math.exp(-v));

export function randomWeights(rng: Rng, gates: number, E: number, H: number, scale = 1 / Math.sqrt(H)): RnnWeights {
  const w = (n: number) => { const a = new Float32Array(n); rng.fillUniform(a, -scale, scale); return a; };
  return { weight_ih: w(gates * H * E), weight_hh: w(gates * H * H), bias_ih: w(gates * H), bias_hh: w(gates * H) };
}

function affine(W: Float32Array, b: Float32Array, v: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = b[r];
    for (let c = 0; c < cols; c++) s += W[r * cols + c] * v[c];
    y[r] = s;
  }
  return y;
}

/** One LSTM step: returns [h, c]. Gate order i, f, g, o. */
export function lstmStep(w: RnnWeights, E: number, H: number, x: ArrayLike<number>, h: ArrayLike<number>, c: ArrayLike<number>): [Float64Array, Float64Array] {
  const gx = affine(w.weight_ih, w.bias_ih, x, 4 * H, E), gh = affine(w.weight_hh, w.bias_hh, h, 4 * H, H);
  const h2 = new Float64Array(H), c2 = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const i = sig(gx[j] + gh[j]), f = sig(gx[H + j] + gh[H + j]);
    const g = Math.tanh(gx[2 * H + j] + gh[2 * H + j]), o = sig(gx[3 * H + j] + gh[3 * H + j]);
    c2[j] = f * c[j] + i * g;
    h2[j] = o * Math.tanh(c2[j]);
  }
  return [h2, c2];
}

/** One GRU step. Gate order r, z, n; n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)). */
export function gruStep(w: RnnWeights, E: number, H: number, x: ArrayLike<number>, h: ArrayLike<number>): Float64Array {
  const gx = affine(w.weight_ih, w.bias_ih, x, 3 * H, E), gh = affine(w.weight_hh, w.bias_hh, h, 3 * H, H);
  const h2 = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const r = sig(gx[j] + gh[j]), z = sig(gx[H + j] + gh[H + j]);
    const n = Math.tanh(gx[2 * H + j] + r * gh[2 * H + j]);
    h2[j] = (1 - z) * n + z * h[j];
  }
  return h2;
}

/**
 * Debian's libonnx-testdata cases that PyTorch's cells reproduce. The GRU case with a bias is left
 * out: ONNX's default linear_before_reset = 0 differs from PyTorch's GRU whenever the recurrent
 * bias is non-zero. Gate letters give each framework's block order.
 */
export const GOLDEN_RNN = [
  { name: "test_lstm_defaults", kind: "lstm", onnx: "iofc", torch: "ifco" },
  { name: "test_lstm_with_initial_bias", kind: "lstm", onnx: "iofc", torch: "ifco" },
  { name: "test_gru_defaults", kind: "gru", onnx: "zrh", torch: "rzh" },
] as const;

/** ONNX's W (G·H, E), R (G·H, H) and B (2·G·H) in PyTorch's names and gate order. */
export function torchFromOnnx(onnxGates: string, torchGates: string, W: Float32Array, R: Float32Array, B: Float32Array | null,
                              E: number, H: number): RnnWeights {
  const G = onnxGates.length;
  const move = (src: Float32Array, cols: number) => {
    const out = new Float32Array(G * H * cols);
    for (let t = 0; t < G; t++) {
      const o = onnxGates.indexOf(torchGates[t]);
      out.set(src.subarray(o * H * cols, (o + 1) * H * cols), t * H * cols);
    }
    return out;
  };
  const bias = B ?? new Float32Array(2 * G * H);
  return { weight_ih: move(W, E), weight_hh: move(R, H), bias_ih: move(bias.subarray(0, G * H), 1), bias_hh: move(bias.subarray(G * H), 1) };
}
