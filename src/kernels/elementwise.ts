// Elementwise kernels of one RNN cell step besides the matrix products: activations, the fused LSTM
// and GRU gate updates, the little module's sparse ternary input projection, and a sum that runs at
// memory speed (it measures read bandwidth and flushes the caches between benchmark steps).
// Each kernel has a plain TypeScript twin (the reference) and a WebAssembly SIMD version.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";
import type { KernelName } from "../runtime/pool.js";

export interface ElementwiseKernels {
  /**
   * y (n) = σ(x (n)) = 1/(1 + e^−x). y may be x itself (in place) but must not partly overlap it.
   * Within ~1e-7 relative of the exact value (half an ulp in the fast build) for every float32,
   * σ(−∞) = 0, σ(+∞) = 1; NaN stays NaN. The same holds for tanh.
   */
  sigmoid(y: Float32Array, x: Float32Array, n: number): void;
  /** y (n) = tanh(x (n)); tanh(±∞) = ±1. In place allowed, as for sigmoid. */
  tanh(y: Float32Array, x: Float32Array, n: number): void;
  /** y (n) = max(x (n), 0); NaN stays NaN. In place allowed, as for sigmoid. */
  relu(y: Float32Array, x: Float32Array, n: number): void;
  /**
   * One LSTM step after the matrix products. h (H), c (H) in place, gates (4H) pre-activations
   * in PyTorch order i, f, g, o: c ← σ(f)·c + σ(i)·tanh(g); h ← σ(o)·tanh(c). No overlaps.
   */
  lstmGates(h: Float32Array, c: Float32Array, gates: Float32Array, H: number): void;
  /**
   * One GRU step after the matrix products. h (H) in place; gx (3H) = W_ih·x + b_ih and
   * gh (3H) = W_hh·h + b_hh in PyTorch order r, z, n: r = σ(gx_r + gh_r), z = σ(gx_z + gh_z),
   * n = tanh(gx_n + r·gh_n), h ← (1 − z)·n + z·h. No overlaps.
   */
  gruGates(h: Float32Array, gx: Float32Array, gh: Float32Array, H: number): void;
  /**
   * y (k) = scale · P x (n) for a ternary P stored compactly: row i's +1 columns are
   * indices[offsets[2i] .. offsets[2i+1]), its −1 columns indices[offsets[2i+1] .. offsets[2i+2]).
   * offsets is (2k+1), non-decreasing, from 0 to indices.length; every index in [0, n), n ≤ 65536.
   */
  project(y: Float32Array, x: Float32Array, offsets: Int32Array, indices: Uint16Array, scale: number, k: number, n: number): void;
  /** The sum of x (n), accumulated in float64 (the fast version: in float32 blocks of 1024). */
  sum(x: Float32Array, n: number): number;
}

// ---- argument checks, shared by both versions ----

function checkUnary(k: string, y: unknown, x: unknown, n: number): void {
  check.size(k, "n", n);
  check.f32(k, "y", y, n);
  check.f32(k, "x", x, n);
}

function checkLstm(k: string, h: unknown, c: unknown, gates: unknown, H: number): void {
  check.size(k, "H", H);
  check.f32(k, "h", h, H);
  check.f32(k, "c", c, H);
  check.f32(k, "gates", gates, 4 * H);
}

function checkGru(k: string, h: unknown, gx: unknown, gh: unknown, H: number): void {
  check.size(k, "H", H);
  check.f32(k, "h", h, H);
  check.f32(k, "gx", gx, 3 * H);
  check.f32(k, "gh", gh, 3 * H);
}

/**
 * Widest input a projection reads: its column indices are 16-bit, which halves the bytes a step
 * streams (the indices are most of the projection's memory traffic).
 */
export const MAX_PROJECT_INPUT = 65536;

/** The layout of the compact ternary matrix, in one O(nnz) pass. */
function checkProject(kn: string, y: unknown, x: unknown, offsets: unknown, indices: unknown, scale: number,
                      k: number, n: number): void {
  check.size(kn, "k", k);
  check.size(kn, "n", n);
  if (n > MAX_PROJECT_INPUT) throw new RangeError(`${kn}: n = ${n} columns exceed the ${MAX_PROJECT_INPUT} that 16-bit indices address`);
  check.f32(kn, "y", y, k);
  check.f32(kn, "x", x, n);
  check.i32(kn, "offsets", offsets, 2 * k + 1);
  if (!(indices instanceof Uint16Array)) check.u16(kn, "indices", indices, 0); // throws the shared type error
  if (!Number.isFinite(scale)) throw new RangeError(`${kn}: scale must be finite, got ${scale}`);
  const layout = offsets as Int32Array, idx = indices as Uint16Array;
  check.constant(layout, `project offsets ${k} ${idx.length}`, () => {
    if (layout[0] !== 0) throw new RangeError(`${kn}: offsets[0] must be 0, got ${layout[0]}`);
    for (let i = 1; i <= 2 * k; i++) {
      if (layout[i] < layout[i - 1]) {
        throw new RangeError(`${kn}: offsets must be non-decreasing, but offsets[${i}] = ${layout[i]} < offsets[${i - 1}] = ${layout[i - 1]}`);
      }
    }
    if (layout[2 * k] !== idx.length) {
      throw new RangeError(`${kn}: offsets[${2 * k}] must equal indices.length = ${idx.length}, got ${layout[2 * k]}`);
    }
  });
  check.constant(idx, `project indices ${n}`, () => check.indices(kn, "indices", idx, n));
}

function checkSum(k: string, x: unknown, n: number): void {
  check.size(k, "n", n);
  check.f32(k, "x", x, n);
}

// ---- reference: plain TypeScript in float64, rounded on store ----

function sigmoid64(v: number): number { return 1 / (1 + Math.exp(-v)); }

export const elementwiseReference: ElementwiseKernels = {
  sigmoid(y, x, n) {
    checkUnary("sigmoid", y, x, n);
    for (let i = 0; i < n; i++) y[i] = sigmoid64(x[i]);
  },
  tanh(y, x, n) {
    checkUnary("tanh", y, x, n);
    for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]);
  },
  relu(y, x, n) {
    checkUnary("relu", y, x, n);
    for (let i = 0; i < n; i++) y[i] = Math.max(x[i], 0);
  },
  lstmGates(h, c, gates, H) {
    checkLstm("lstmGates", h, c, gates, H);
    for (let j = 0; j < H; j++) {
      const cNew = sigmoid64(gates[H + j]) * c[j] + sigmoid64(gates[j]) * Math.tanh(gates[2 * H + j]);
      c[j] = cNew;
      h[j] = sigmoid64(gates[3 * H + j]) * Math.tanh(cNew);
    }
  },
  gruGates(h, gx, gh, H) {
    checkGru("gruGates", h, gx, gh, H);
    for (let j = 0; j < H; j++) {
      const r = sigmoid64(gx[j] + gh[j]), z = sigmoid64(gx[H + j] + gh[H + j]);
      const nj = Math.tanh(gx[2 * H + j] + r * gh[2 * H + j]);
      h[j] = (1 - z) * nj + z * h[j];
    }
  },
  project(y, x, offsets, indices, scale, k, n) {
    checkProject("project", y, x, offsets, indices, scale, k, n);
    for (let i = 0; i < k; i++) {
      let s = 0;
      for (let p = offsets[2 * i]; p < offsets[2 * i + 1]; p++) s += x[indices[p]];
      for (let p = offsets[2 * i + 1]; p < offsets[2 * i + 2]; p++) s -= x[indices[p]];
      y[i] = scale * s;
    }
  },
  sum(x, n) {
    checkSum("sum", x, n);
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i];
    return s;
  },
};

// ---- WebAssembly ----

/**
 * Work per element in multiply-add units of ctx.threadsFor (rough estimates): one float64 exp is
 * about 8, an LSTM unit takes five activations, a GRU unit three.
 */
const EXP_WORK = 8, LSTM_WORK = 5 * EXP_WORK, GRU_WORK = 3 * EXP_WORK;

export function elementwiseWasm(ctx: WasmContext): ElementwiseKernels {
  // One float64 partial sum per thread, written by sum_f32 (heap arrays are 64-byte aligned).
  const partialsBlock = ctx.heap.f32(2 * ctx.pool.threads);
  const partials = new Float64Array(partialsBlock.buffer, partialsBlock.byteOffset, ctx.pool.threads);

  const unary = (k: string, name: KernelName, work: number) => (y: Float32Array, x: Float32Array, n: number): void => {
    checkUnary(k, y, x, n);
    ctx.pool.run(name, ctx.threadsFor(n * work), ctx.ptr(k, "y", y), ctx.ptr(k, "x", x), n);
  };

  return {
    sigmoid: unary("sigmoid", "sigmoid_f32", EXP_WORK),
    tanh: unary("tanh", "tanh_f32", EXP_WORK),
    relu: unary("relu", "relu_f32", 1),
    lstmGates(h, c, gates, H) {
      const k = "lstmGates";
      checkLstm(k, h, c, gates, H);
      ctx.pool.run("lstm_gates_f32", ctx.threadsFor(H * LSTM_WORK),
        ctx.ptr(k, "h", h), ctx.ptr(k, "c", c), ctx.ptr(k, "gates", gates), H);
    },
    gruGates(h, gx, gh, H) {
      const k = "gruGates";
      checkGru(k, h, gx, gh, H);
      ctx.pool.run("gru_gates_f32", ctx.threadsFor(H * GRU_WORK),
        ctx.ptr(k, "h", h), ctx.ptr(k, "gx", gx), ctx.ptr(k, "gh", gh), H);
    },
    project(y, x, offsets, indices, scale, k, n) {
      const kn = "project";
      checkProject(kn, y, x, offsets, indices, scale, k, n);
      ctx.pool.run("project_ternary_f32", ctx.threadsFor(indices.length),
        ctx.ptr(kn, "y", y), ctx.ptr(kn, "x", x), ctx.ptr(kn, "offsets", offsets), ctx.ptr(kn, "indices", indices), scale, k);
    },
    sum(x, n) {
      const k = "sum";
      checkSum(k, x, n);
      partials.fill(0); // threads beyond the ones that run leave their slot at 0
      ctx.pool.run("sum_f32", ctx.threadsFor(n), ctx.ptr(k, "partials", partialsBlock), ctx.ptr(k, "x", x), n);
      let s = 0;
      for (let t = 0; t < partials.length; t++) s += partials[t];
      return s;
    },
  };
}
