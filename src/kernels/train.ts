// Training kernels of the language model (src/recurrent/train.ts) besides the matrix products and the
// loss: the gate updates of one step of B streams, forward (keeping what backward needs) and backward,
// and the SGD step with global-norm clipping (the squared norm, then the update). The plain TypeScript
// twins are the loops the trainer ran before these kernels existed; the WebAssembly versions compute
// in float64 in the same order, split over the pool, and differ only where σ or tanh does in its last bit.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";

export interface TrainKernels {
  /**
   * LSTM step forward. gates (B, 4H): pre-activations in, activations i, f, g, o out (PyTorch order);
   * cPrev, c, h, tanhC (B, H): c = f·cPrev + i·g, tanhC = tanh(c), h = o·tanhC. No overlaps.
   */
  lstmTrainForward(gates: Float32Array, cPrev: Float32Array, c: Float32Array, h: Float32Array, tanhC: Float32Array,
                   B: number, H: number): void;
  /**
   * LSTM step backward. In: dh (B, H) from the next step, dy (B, H) from the layer above, dc (B, H)
   * from the next step; gates (B, 4H) activations, cPrev, tanhC (B, H). Out: dG (B, 4H), the gradient
   * of the pre-activations; dc ← the gradient of cPrev. (dh ← dG·W_hh is the caller's GEMM.)
   */
  lstmTrainBackward(dG: Float32Array, dh: Float32Array, dc: Float32Array, dy: Float32Array, gates: Float32Array,
                    cPrev: Float32Array, tanhC: Float32Array, B: number, H: number): void;
  /**
   * GRU step forward. gx (B, 3H): W_ih x + b_ih in, activations r, z, n out; gh (B, 3H) = W_hh hPrev + b_hh;
   * r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r·gh_n), h (B, H) = (1 − z)·n + z·hPrev.
   */
  gruTrainForward(gx: Float32Array, gh: Float32Array, hPrev: Float32Array, h: Float32Array, B: number, H: number): void;
  /**
   * GRU step backward. In: dh (B, H) from the next step, dy (B, H) from the layer above; gates (B, 3H)
   * activations r, z, n; gh (B, 3H); hPrev (B, H). Out: dGx, dGh (B, 3H), the gradients of the input
   * and recurrent pre-activations; dh ← its direct part z·dh of d hPrev (the caller's GEMM adds dGh·W_hh).
   */
  gruTrainBackward(dGx: Float32Array, dGh: Float32Array, dh: Float32Array, dy: Float32Array, gates: Float32Array,
                   gh: Float32Array, hPrev: Float32Array, B: number, H: number): void;
  /** Σ x² over x (n), in float64 (each square is exact). */
  sumSquares(x: Float32Array, n: number): number;
  /** p (n) ← p − step·g (n), in float64, rounded once. */
  sgdUpdate(p: Float32Array, g: Float32Array, step: number, n: number): void;
}

// ---- argument checks, shared by both versions ----

function checkShapes(k: string, B: number, H: number, arrays: Record<string, [unknown, number]>): void {
  check.size(k, "B", B);
  check.size(k, "H", H);
  for (const [name, [a, gates]] of Object.entries(arrays)) check.f32(k, name, a, B * gates * H);
}

function checkVector(k: string, n: number, arrays: Record<string, unknown>): void {
  check.size(k, "n", n);
  for (const [name, a] of Object.entries(arrays)) check.f32(k, name, a, n);
}

function checkStep(k: string, step: number): void {
  if (!Number.isFinite(step)) throw new RangeError(`${k}: step must be finite, got ${step}`);
}

// ---- reference: plain TypeScript in float64, rounded on store ----

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

export const trainReference: TrainKernels = {
  lstmTrainForward(gates, cPrev, c, h, tanhC, B, H) {
    checkShapes("lstmTrainForward", B, H, { gates: [gates, 4], cPrev: [cPrev, 1], c: [c, 1], h: [h, 1], tanhC: [tanhC, 1] });
    for (let b = 0; b < B; b++) {
      const o4 = b * 4 * H, o1 = b * H;
      for (let j = 0; j < H; j++) {
        const i = sigmoid(gates[o4 + j]), f = sigmoid(gates[o4 + H + j]);
        const g = Math.tanh(gates[o4 + 2 * H + j]), o = sigmoid(gates[o4 + 3 * H + j]);
        gates[o4 + j] = i; gates[o4 + H + j] = f; gates[o4 + 2 * H + j] = g; gates[o4 + 3 * H + j] = o;
        const cn = f * cPrev[o1 + j] + i * g, tc = Math.tanh(cn);
        c[o1 + j] = cn;
        tanhC[o1 + j] = tc;
        h[o1 + j] = o * tc;
      }
    }
  },
  lstmTrainBackward(dG, dh, dc, dy, gates, cPrev, tanhC, B, H) {
    checkShapes("lstmTrainBackward", B, H,
      { dG: [dG, 4], dh: [dh, 1], dc: [dc, 1], dy: [dy, 1], gates: [gates, 4], cPrev: [cPrev, 1], tanhC: [tanhC, 1] });
    for (let b = 0; b < B; b++) {
      const o4 = b * 4 * H, o1 = b * H;
      for (let j = 0; j < H; j++) {
        const i = gates[o4 + j], f = gates[o4 + H + j], g = gates[o4 + 2 * H + j], o = gates[o4 + 3 * H + j];
        const tc = tanhC[o1 + j], dhj = dh[o1 + j] + dy[o1 + j];
        const dcj = dc[o1 + j] + dhj * o * (1 - tc * tc);
        dG[o4 + j] = dcj * g * i * (1 - i);
        dG[o4 + H + j] = dcj * cPrev[o1 + j] * f * (1 - f);
        dG[o4 + 2 * H + j] = dcj * i * (1 - g * g);
        dG[o4 + 3 * H + j] = dhj * tc * o * (1 - o);
        dc[o1 + j] = dcj * f;
      }
    }
  },
  gruTrainForward(gx, gh, hPrev, h, B, H) {
    checkShapes("gruTrainForward", B, H, { gx: [gx, 3], gh: [gh, 3], hPrev: [hPrev, 1], h: [h, 1] });
    for (let b = 0; b < B; b++) {
      const o3 = b * 3 * H, o1 = b * H;
      for (let j = 0; j < H; j++) {
        const r = sigmoid(gx[o3 + j] + gh[o3 + j]), z = sigmoid(gx[o3 + H + j] + gh[o3 + H + j]);
        const n = Math.tanh(gx[o3 + 2 * H + j] + r * gh[o3 + 2 * H + j]);
        gx[o3 + j] = r; gx[o3 + H + j] = z; gx[o3 + 2 * H + j] = n;
        h[o1 + j] = (1 - z) * n + z * hPrev[o1 + j];
      }
    }
  },
  gruTrainBackward(dGx, dGh, dh, dy, gates, gh, hPrev, B, H) {
    checkShapes("gruTrainBackward", B, H,
      { dGx: [dGx, 3], dGh: [dGh, 3], dh: [dh, 1], dy: [dy, 1], gates: [gates, 3], gh: [gh, 3], hPrev: [hPrev, 1] });
    for (let b = 0; b < B; b++) {
      const o3 = b * 3 * H, o1 = b * H;
      for (let j = 0; j < H; j++) {
        const r = gates[o3 + j], z = gates[o3 + H + j], n = gates[o3 + 2 * H + j];
        const dhj = dh[o1 + j] + dy[o1 + j];
        const dn = dhj * (1 - z) * (1 - n * n);               // through tanh
        const dr = dn * gh[o3 + 2 * H + j] * r * (1 - r);     // n's pre-activation holds r·gh_n
        const dz = dhj * (hPrev[o1 + j] - n) * z * (1 - z);
        dGx[o3 + j] = dr; dGx[o3 + H + j] = dz; dGx[o3 + 2 * H + j] = dn;
        dGh[o3 + j] = dr; dGh[o3 + H + j] = dz; dGh[o3 + 2 * H + j] = dn * r;
        dh[o1 + j] = dhj * z;
      }
    }
  },
  sumSquares(x, n) {
    checkVector("sumSquares", n, { x });
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * x[i];
    return s;
  },
  sgdUpdate(p, g, step, n) {
    checkVector("sgdUpdate", n, { p, g });
    checkStep("sgdUpdate", step);
    for (let i = 0; i < n; i++) p[i] -= step * g[i];
  },
};

// ---- WebAssembly ----

/** Work per unit in multiply-add units of ctx.threadsFor (rough): a float64 σ or tanh is about 8. */
const LSTM_FORWARD_WORK = 40, LSTM_BACKWARD_WORK = 16, GRU_FORWARD_WORK = 24, GRU_BACKWARD_WORK = 16;

export function trainWasm(ctx: WasmContext): TrainKernels {
  // One float64 partial sum per thread (heap arrays are 64-byte aligned).
  const partialsBlock = ctx.heap.f32(2 * ctx.pool.threads);
  const partials = new Float64Array(partialsBlock.buffer, partialsBlock.byteOffset, ctx.pool.threads);
  const p = (k: string, name: string, a: Float32Array) => ctx.ptr(k, name, a);
  return {
    lstmTrainForward(gates, cPrev, c, h, tanhC, B, H) {
      const k = "lstmTrainForward";
      checkShapes(k, B, H, { gates: [gates, 4], cPrev: [cPrev, 1], c: [c, 1], h: [h, 1], tanhC: [tanhC, 1] });
      ctx.pool.run("lstm_train_forward_f32", ctx.threadsFor(B * H * LSTM_FORWARD_WORK), p(k, "gates", gates), p(k, "cPrev", cPrev),
        p(k, "c", c), p(k, "h", h), p(k, "tanhC", tanhC), B, H);
    },
    lstmTrainBackward(dG, dh, dc, dy, gates, cPrev, tanhC, B, H) {
      const k = "lstmTrainBackward";
      checkShapes(k, B, H, { dG: [dG, 4], dh: [dh, 1], dc: [dc, 1], dy: [dy, 1], gates: [gates, 4], cPrev: [cPrev, 1], tanhC: [tanhC, 1] });
      ctx.pool.run("lstm_train_backward_f32", ctx.threadsFor(B * H * LSTM_BACKWARD_WORK), p(k, "dG", dG), p(k, "dh", dh),
        p(k, "dc", dc), p(k, "dy", dy), p(k, "gates", gates), p(k, "cPrev", cPrev), p(k, "tanhC", tanhC), B, H);
    },
    gruTrainForward(gx, gh, hPrev, h, B, H) {
      const k = "gruTrainForward";
      checkShapes(k, B, H, { gx: [gx, 3], gh: [gh, 3], hPrev: [hPrev, 1], h: [h, 1] });
      ctx.pool.run("gru_train_forward_f32", ctx.threadsFor(B * H * GRU_FORWARD_WORK), p(k, "gx", gx), p(k, "gh", gh),
        p(k, "hPrev", hPrev), p(k, "h", h), B, H);
    },
    gruTrainBackward(dGx, dGh, dh, dy, gates, gh, hPrev, B, H) {
      const k = "gruTrainBackward";
      checkShapes(k, B, H, { dGx: [dGx, 3], dGh: [dGh, 3], dh: [dh, 1], dy: [dy, 1], gates: [gates, 3], gh: [gh, 3], hPrev: [hPrev, 1] });
      ctx.pool.run("gru_train_backward_f32", ctx.threadsFor(B * H * GRU_BACKWARD_WORK), p(k, "dGx", dGx), p(k, "dGh", dGh),
        p(k, "dh", dh), p(k, "dy", dy), p(k, "gates", gates), p(k, "gh", gh), p(k, "hPrev", hPrev), B, H);
    },
    sumSquares(x, n) {
      const k = "sumSquares";
      checkVector(k, n, { x });
      partials.fill(0); // threads beyond the ones that run leave their slot at 0
      ctx.pool.run("sumsq_f32", ctx.threadsFor(n), ctx.ptr(k, "partials", partialsBlock), p(k, "x", x), n);
      let s = 0;
      for (let t = 0; t < partials.length; t++) s += partials[t];
      return s;
    },
    sgdUpdate(pa, g, step, n) {
      const k = "sgdUpdate";
      checkVector(k, n, { p: pa, g });
      checkStep(k, step);
      ctx.pool.run("sgd_f32", ctx.threadsFor(n), p(k, "p", pa), p(k, "g", g), step, n);
    },
  };
}
