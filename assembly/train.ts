// Training kernels of the language model besides the matrix products and the loss: the gate updates
// of one step of B streams, forward (activations kept for backward) and backward, and the SGD step
// (the gradient's squared norm, then p ← p − step·g). Arithmetic is float64 in the order of the
// TypeScript twins (src/kernels/train.ts), rounded to float32 on store, so the results equal the
// twins' up to the last bit of an activation (σ and tanh are within 1e-11 of exact here).
import { shareStart } from "./common";
import { sigmoid64, tanh64, widen, narrow } from "./elementwise";

// @ts-ignore: decorator
@inline function one(): v128 { return f64x2.splat(1); }

// Every kernel below splits the B·H units of a step (row b, unit j) evenly over the threads; a
// thread's share may start and end mid-row. Units go two at a time (one f64x2) while both lie in
// the same row and share. (B, G·H) arrays hold row b's G gates one after another; `gate` is the
// byte distance between them.

// ---- LSTM (PyTorch gate order i, f, g, o) ----

// @ts-ignore: decorator
@inline function lstmForwardUnits(gates: usize, cPrev: usize, c: usize, h: usize, tanhC: usize, gate: usize, pair: bool): void {
  const i = sigmoid64(widen(gates, pair)), f = sigmoid64(widen(gates + gate, pair));
  const g = tanh64(widen(gates + 2 * gate, pair)), o = sigmoid64(widen(gates + 3 * gate, pair));
  narrow(gates, i, pair); narrow(gates + gate, f, pair); narrow(gates + 2 * gate, g, pair); narrow(gates + 3 * gate, o, pair);
  const cn = f64x2.add(f64x2.mul(f, widen(cPrev, pair)), f64x2.mul(i, g)), tc = tanh64(cn);
  narrow(c, cn, pair);
  narrow(tanhC, tc, pair);
  narrow(h, f64x2.mul(o, tc), pair);
}

// gates is (B, 4H): pre-activations in, activations i, f, g, o out; cPrev, c, h, tanhC are (B, H):
// c = f·cPrev + i·g, tanhC = tanh(c), h = o·tanhC.
export function lstm_train_forward_f32(gates: usize, cPrev: usize, c: usize, h: usize, tanhC: usize, B: i32, H: i32,
                                       tid: i32, nth: i32): void {
  const u1 = shareStart(B * H, tid + 1, nth);
  for (let u = shareStart(B * H, tid, nth); u < u1;) {
    const b = u / H, j = u - b * H, pair = j + 1 < H && u + 1 < u1, x = <usize>u << 2, g = <usize>(b * 4 * H + j) << 2;
    lstmForwardUnits(gates + g, cPrev + x, c + x, h + x, tanhC + x, <usize>H << 2, pair);
    u += pair ? 2 : 1;
  }
}

// @ts-ignore: decorator
@inline function lstmBackwardUnits(dG: usize, dh: usize, dc: usize, dy: usize, gates: usize, cPrev: usize, tanhC: usize,
                                   gate: usize, pair: bool): void {
  const i = widen(gates, pair), f = widen(gates + gate, pair), g = widen(gates + 2 * gate, pair), o = widen(gates + 3 * gate, pair);
  const tc = widen(tanhC, pair), dhj = f64x2.add(widen(dh, pair), widen(dy, pair));
  const dcj = f64x2.add(widen(dc, pair), f64x2.mul(f64x2.mul(dhj, o), f64x2.sub(one(), f64x2.mul(tc, tc))));
  narrow(dG, f64x2.mul(f64x2.mul(f64x2.mul(dcj, g), i), f64x2.sub(one(), i)), pair);
  narrow(dG + gate, f64x2.mul(f64x2.mul(f64x2.mul(dcj, widen(cPrev, pair)), f), f64x2.sub(one(), f)), pair);
  narrow(dG + 2 * gate, f64x2.mul(f64x2.mul(dcj, i), f64x2.sub(one(), f64x2.mul(g, g))), pair);
  narrow(dG + 3 * gate, f64x2.mul(f64x2.mul(f64x2.mul(dhj, tc), o), f64x2.sub(one(), o)), pair);
  narrow(dc, f64x2.mul(dcj, f), pair);
}

// dG is (B, 4H) out: the gradient of the pre-activations; dh, dy (B, H) in: the gradients of h from
// the next step and from the layer above; dc (B, H) in: of c from the next step, out: of cPrev;
// gates (B, 4H) the activations, cPrev, tanhC (B, H).
export function lstm_train_backward_f32(dG: usize, dh: usize, dc: usize, dy: usize, gates: usize, cPrev: usize, tanhC: usize,
                                        B: i32, H: i32, tid: i32, nth: i32): void {
  const u1 = shareStart(B * H, tid + 1, nth);
  for (let u = shareStart(B * H, tid, nth); u < u1;) {
    const b = u / H, j = u - b * H, pair = j + 1 < H && u + 1 < u1, x = <usize>u << 2, g = <usize>(b * 4 * H + j) << 2;
    lstmBackwardUnits(dG + g, dh + x, dc + x, dy + x, gates + g, cPrev + x, tanhC + x, <usize>H << 2, pair);
    u += pair ? 2 : 1;
  }
}

// ---- GRU (PyTorch gate order r, z, n) ----

// @ts-ignore: decorator
@inline function gruForwardUnits(gx: usize, gh: usize, hPrev: usize, h: usize, gate: usize, pair: bool): void {
  const r = sigmoid64(f64x2.add(widen(gx, pair), widen(gh, pair)));
  const z = sigmoid64(f64x2.add(widen(gx + gate, pair), widen(gh + gate, pair)));
  const n = tanh64(f64x2.add(widen(gx + 2 * gate, pair), f64x2.mul(r, widen(gh + 2 * gate, pair))));
  narrow(gx, r, pair); narrow(gx + gate, z, pair); narrow(gx + 2 * gate, n, pair);
  narrow(h, f64x2.add(f64x2.mul(f64x2.sub(one(), z), n), f64x2.mul(z, widen(hPrev, pair))), pair);
}

// gx is (B, 3H): W_ih x + b_ih in, activations r, z, n out; gh (B, 3H) = W_hh hPrev + b_hh;
// hPrev, h (B, H): r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r·gh_n), h = (1 − z)·n + z·hPrev.
export function gru_train_forward_f32(gx: usize, gh: usize, hPrev: usize, h: usize, B: i32, H: i32, tid: i32, nth: i32): void {
  const u1 = shareStart(B * H, tid + 1, nth);
  for (let u = shareStart(B * H, tid, nth); u < u1;) {
    const b = u / H, j = u - b * H, pair = j + 1 < H && u + 1 < u1, x = <usize>u << 2, g = <usize>(b * 3 * H + j) << 2;
    gruForwardUnits(gx + g, gh + g, hPrev + x, h + x, <usize>H << 2, pair);
    u += pair ? 2 : 1;
  }
}

// @ts-ignore: decorator
@inline function gruBackwardUnits(dGx: usize, dGh: usize, dh: usize, dy: usize, gates: usize, gh: usize, hPrev: usize,
                                  gate: usize, pair: bool): void {
  const r = widen(gates, pair), z = widen(gates + gate, pair), n = widen(gates + 2 * gate, pair);
  const dhj = f64x2.add(widen(dh, pair), widen(dy, pair));
  const dn = f64x2.mul(f64x2.mul(dhj, f64x2.sub(one(), z)), f64x2.sub(one(), f64x2.mul(n, n)));
  const dr = f64x2.mul(f64x2.mul(f64x2.mul(dn, widen(gh + 2 * gate, pair)), r), f64x2.sub(one(), r));
  const dz = f64x2.mul(f64x2.mul(f64x2.mul(dhj, f64x2.sub(widen(hPrev, pair), n)), z), f64x2.sub(one(), z));
  narrow(dGx, dr, pair); narrow(dGx + gate, dz, pair); narrow(dGx + 2 * gate, dn, pair);
  narrow(dGh, dr, pair); narrow(dGh + gate, dz, pair); narrow(dGh + 2 * gate, f64x2.mul(dn, r), pair);
  narrow(dh, f64x2.mul(dhj, z), pair);
}

// dGx, dGh (B, 3H) out: the gradients of the input and recurrent pre-activations; dh (B, H) in: the
// gradient of h from the next step, out: its direct part z·dh of d hPrev (the caller adds dGh·W_hh);
// dy (B, H) from the layer above; gates (B, 3H) the activations r, z, n; gh (B, 3H); hPrev (B, H).
export function gru_train_backward_f32(dGx: usize, dGh: usize, dh: usize, dy: usize, gates: usize, gh: usize, hPrev: usize,
                                       B: i32, H: i32, tid: i32, nth: i32): void {
  const u1 = shareStart(B * H, tid + 1, nth);
  for (let u = shareStart(B * H, tid, nth); u < u1;) {
    const b = u / H, j = u - b * H, pair = j + 1 < H && u + 1 < u1, x = <usize>u << 2, g = <usize>(b * 3 * H + j) << 2;
    gruBackwardUnits(dGx + g, dGh + g, dh + x, dy + x, gates + g, gh + g, hPrev + x, <usize>H << 2, pair);
    u += pair ? 2 : 1;
  }
}

// ---- SGD ----

// partials is (nth) float64, one per thread; x is (n). Σ x², each square exact in float64.
export function sumsq_f32(partials: usize, x: usize, n: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(n, tid, nth) << 2;
  const stop = <usize>shareStart(n, tid + 1, nth) << 2;
  let a0 = f64x2.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (; o + 32 <= stop; o += 32) {
    const p = x + o;
    const v0 = f64x2.promote_low_f32x4(v128.load64_zero(p)), v1 = f64x2.promote_low_f32x4(v128.load64_zero(p, 8));
    const v2 = f64x2.promote_low_f32x4(v128.load64_zero(p, 16)), v3 = f64x2.promote_low_f32x4(v128.load64_zero(p, 24));
    a0 = f64x2.add(a0, f64x2.mul(v0, v0)); a1 = f64x2.add(a1, f64x2.mul(v1, v1));
    a2 = f64x2.add(a2, f64x2.mul(v2, v2)); a3 = f64x2.add(a3, f64x2.mul(v3, v3));
  }
  const s = f64x2.add(f64x2.add(a0, a1), f64x2.add(a2, a3));
  let total = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; o < stop; o += 4) {
    const v = <f64>load<f32>(x + o);
    total += v * v;
  }
  store<f64>(partials + (<usize>tid << 3), total);
}

// p, g are (n): p ← p − step·g, computed in float64 and rounded once.
export function sgd_f32(p: usize, g: usize, step: f64, n: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(n, tid, nth) << 2;
  const stop = <usize>shareStart(n, tid + 1, nth) << 2, s = f64x2.splat(step);
  for (; o + 8 <= stop; o += 8) narrow(p + o, f64x2.sub(widen(p + o, true), f64x2.mul(s, widen(g + o, true))), true);
  if (o < stop) narrow(p + o, f64x2.sub(widen(p + o, false), f64x2.mul(s, widen(g + o, false))), false);
}
