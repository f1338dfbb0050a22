// Convolution kernels for training on a whole batch at once. Training keeps activations
// channel-major, (C, N, H, W): then one GEMM per layer computes every image, Z (K, N·OH·OW) =
// W (K, C·R·S) · cols (C·R·S, N·OH·OW), its output is again channel-major, and each channel's values
// (what batch normalization reduces over) are contiguous. im2col_batch_f32 builds those columns;
// col2im_batch_f32 is its adjoint, which scatters the columns' gradient back onto the images,
// summing where windows overlap: dX = col2im(Wᵀ · dZ).
import { shareStart } from "./common";

/**
 * The output columns [ow0, ow1) whose input column ow·strideW − padLeft + s lies inside [0, W);
 * returned as ow0 | ow1 << 16 (both < 2^15 for any image the kernels accept).
 */
// @ts-ignore: decorator
@inline function validColumns(W: i32, s: i32, strideW: i32, padLeft: i32, OW: i32): i32 {
  const first = padLeft - s, last = W - 1 + padLeft - s;
  const ow0 = first <= 0 ? 0 : (first + strideW - 1) / strideW;
  const ow1 = last < 0 ? 0 : min(OW, last / strideW + 1);
  return ow0 >= ow1 ? 0 : ow0 | (ow1 << 16);
}

/** n floats of 0 from p. */
// @ts-ignore: decorator
@inline function zero(p: usize, n: i32): void {
  let i = 0;
  const z = f32x4.splat(0);
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), z);
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), 0);
}

/**
 * cols (C·R·S, N·OH·OW) from x (C, N, H, W): row (c·R + r)·S + s, column (n·OH + oh)·OW + ow holds
 * x[c, n, oh·strideH − padTop + r, ow·strideW − padLeft + s], or 0 outside the image.
 * Threads split the rows.
 */
export function im2col_batch_f32(cols: usize, x: usize, C: i32, H: i32, W: i32, R: i32, S: i32,
                                 strideH: i32, strideW: i32, padTop: i32, padLeft: i32, OH: i32, OW: i32,
                                 N: i32, tid: i32, nth: i32): void {
  const rows = C * R * S;
  const row0 = shareStart(rows, tid, nth), row1 = shareStart(rows, tid + 1, nth);
  const owBytes = <usize>OW << 2, planeBytes = <usize>H * W << 2, P = OH * OW;
  for (let row = row0; row < row1; row++) {
    const s = row % S, r = (row / S) % R, c = row / (R * S);
    const span = validColumns(W, s, strideW, padLeft, OW), ow0 = span & 0xffff, ow1 = span >>> 16;
    let d = cols + (<usize>row * N * P << 2);
    for (let n = 0; n < N; n++) {
      const plane = x + <usize>(c * N + n) * planeBytes;
      for (let oh = 0; oh < OH; oh++, d += owBytes) {
        const ih = oh * strideH - padTop + r;
        if (ih < 0 || ih >= H || ow0 == ow1) {
          zero(d, OW);
          continue;
        }
        // Rows are short (OW floats): plain loops beat memory.copy / memory.fill calls here.
        zero(d, ow0);
        zero(d + (<usize>ow1 << 2), OW - ow1);
        const src = plane + (<usize>(ih * W + ow0 * strideW - padLeft + s) << 2);
        if (strideW == 1) {
          const to = d + (<usize>ow0 << 2), n = ow1 - ow0;
          let i = 0;
          for (; i + 4 <= n; i += 4) v128.store(to + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
          for (; i < n; i++) store<f32>(to + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
        } else {
          const step = <usize>strideW << 2;
          let sp = src;
          for (let ow = ow0; ow < ow1; ow++, sp += step) store<f32>(d + (<usize>ow << 2), load<f32>(sp));
        }
      }
    }
  }
}

/**
 * x (C, N, H, W) ← (accumulate ? x : 0) + every entry of cols (C·R·S, N·OH·OW) added where
 * im2col_batch_f32 read it; entries on the padding are dropped. Threads split the channels, so each
 * writes only its own planes.
 */
export function col2im_batch_f32(x: usize, cols: usize, C: i32, H: i32, W: i32, R: i32, S: i32,
                                 strideH: i32, strideW: i32, padTop: i32, padLeft: i32, OH: i32, OW: i32,
                                 N: i32, accumulate: i32, tid: i32, nth: i32): void {
  const c0 = shareStart(C, tid, nth), c1 = shareStart(C, tid + 1, nth);
  const planeBytes = <usize>H * W << 2, P = OH * OW;
  for (let c = c0; c < c1; c++) {
    if (!accumulate) memory.fill(x + <usize>c * N * planeBytes, 0, <usize>N * planeBytes);
    for (let r = 0; r < R; r++) {
      for (let s = 0; s < S; s++) {
        const row = (c * R + r) * S + s;
        const span = validColumns(W, s, strideW, padLeft, OW), ow0 = span & 0xffff, ow1 = span >>> 16;
        if (ow0 == ow1) continue;
        const count = ow1 - ow0;
        for (let n = 0; n < N; n++) {
          const plane = x + <usize>(c * N + n) * planeBytes;
          let src = cols + (<usize>(row * N + n) * P << 2) + (<usize>ow0 << 2);
          for (let oh = 0; oh < OH; oh++, src += <usize>OW << 2) {
            const ih = oh * strideH - padTop + r;
            if (ih < 0 || ih >= H) continue;
            const dst = plane + (<usize>(ih * W + ow0 * strideW - padLeft + s) << 2);
            if (strideW == 1) {
              let i = 0;
              for (; i + 4 <= count; i += 4) {
                const o = <usize>i << 2;
                v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
              }
              for (; i < count; i++) {
                const o = <usize>i << 2;
                store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
              }
            } else {
              const step = <usize>strideW << 2;
              let d = dst;
              for (let i = 0; i < count; i++, d += step) store<f32>(d, load<f32>(d) + load<f32>(src + (<usize>i << 2)));
            }
          }
        }
      }
    }
  }
}

// ---- batch normalization in training, channel-major: channel k's M = N·OH·OW values are contiguous ----

/**
 * Sum of (x − m), or of (x − m)² when square, over n floats from p: f32x4 partial sums within blocks
 * of 1024, the blocks added in float64. Inlined with a constant `square`, so the branch folds away.
 */
// @ts-ignore: decorator
@inline function sumF64(p: usize, n: i32, m: f32, square: bool): f64 {
  let total: f64 = 0;
  const mv = f32x4.splat(m);
  for (let b = 0; b < n; b += 1024) {
    const e = min(n, b + 1024);
    let acc = f32x4.splat(0);
    let i = b;
    for (; i + 4 <= e; i += 4) {
      const d = f32x4.sub(v128.load(p + (<usize>i << 2)), mv);
      acc = f32x4.add(acc, square ? f32x4.mul(d, d) : d);
    }
    let s: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
    for (; i < e; i++) { const d = load<f32>(p + (<usize>i << 2)) - m; s += square ? d * d : d; }
    total += <f64>s;
  }
  return total;
}

/**
 * mean (K) and biased variance (K) of each channel of z (K, M), in two passes (the variance around
 * the mean, not E[z²] − mean²). Threads split the channels.
 */
export function channel_stats_f32(mean: usize, variance: usize, z: usize, K: i32, M: i32, tid: i32, nth: i32): void {
  const k0 = shareStart(K, tid, nth), k1 = shareStart(K, tid + 1, nth);
  for (let k = k0; k < k1; k++) {
    const p = z + (<usize>k * M << 2);
    const m = <f32>(sumF64(p, M, 0, false) / <f64>M);
    store<f32>(mean + (<usize>k << 2), m);
    store<f32>(variance + (<usize>k << 2), <f32>(sumF64(p, M, m, true) / <f64>M));
  }
}

/**
 * y (K, M) = scale[k]·z + shift[k], + residual (K, M) when residual ≠ 0, then max(·, 0) when relu:
 * batch normalization with its statistics folded into scale and shift. Threads split the channels.
 */
export function bn_apply_f32(y: usize, z: usize, scale: usize, shift: usize, residual: usize, K: i32, M: i32, relu: i32,
                             tid: i32, nth: i32): void {
  const k0 = shareStart(K, tid, nth), k1 = shareStart(K, tid + 1, nth);
  const zero = f32x4.splat(0);
  for (let k = k0; k < k1; k++) {
    const a = load<f32>(scale + (<usize>k << 2)), b = load<f32>(shift + (<usize>k << 2));
    const av = f32x4.splat(a), bv = f32x4.splat(b);
    const off = <usize>k * M << 2, d = y + off, s = z + off, rs = residual + off;
    let i = 0;
    for (; i + 4 <= M; i += 4) {
      const o = <usize>i << 2;
      let v = f32x4.add(f32x4.mul(v128.load(s + o), av), bv);
      if (residual) v = f32x4.add(v, v128.load(rs + o));
      if (relu) v = f32x4.max(v, zero);
      v128.store(d + o, v);
    }
    for (; i < M; i++) {
      const o = <usize>i << 2;
      let v = load<f32>(s + o) * a + b;
      if (residual) v += load<f32>(rs + o);
      if (relu) v = max(v, 0);
      store<f32>(d + o, v);
    }
  }
}

/**
 * Backward of y = [ReLU](γ·x̂ + β [+ residual]) with x̂ = (z − mean)·invstd and batch statistics,
 * per channel of dy (K, M), in place: first dy ← 0 where y ≤ 0 (when y ≠ 0: there was a ReLU) and
 * dResidual += dy (when dResidual ≠ 0); then sums[k] = Σ dy, sums[K + k] = Σ dy·x̂ (dβ, dγ), and
 * dy ← γ·invstd/M · (M·dy − Σ dy − x̂·Σ dy·x̂), the gradient of z. Threads split the channels.
 */
export function bn_backward_f32(dy: usize, z: usize, y: usize, dResidual: usize, mean: usize, invstd: usize, gamma: usize,
                                sums: usize, K: i32, M: i32, tid: i32, nth: i32): void {
  const k0 = shareStart(K, tid, nth), k1 = shareStart(K, tid + 1, nth);
  const zero = f32x4.splat(0);
  for (let k = k0; k < k1; k++) {
    const off = <usize>k * M << 2, d = dy + off, zs = z + off, ys = y + off, rs = dResidual + off;
    const m = load<f32>(mean + (<usize>k << 2)), is = load<f32>(invstd + (<usize>k << 2));
    if (y || dResidual) {
      let i = 0;
      for (; i + 4 <= M; i += 4) {
        const o = <usize>i << 2;
        let g = v128.load(d + o);
        if (y) g = v128.and(g, f32x4.gt(v128.load(ys + o), zero));
        v128.store(d + o, g);
        if (dResidual) v128.store(rs + o, f32x4.add(v128.load(rs + o), g));
      }
      for (; i < M; i++) {
        const o = <usize>i << 2;
        let g = load<f32>(d + o);
        if (y && !(load<f32>(ys + o) > 0)) g = 0;
        store<f32>(d + o, g);
        if (dResidual) store<f32>(rs + o, load<f32>(rs + o) + g);
      }
    }
    // Σ dy and Σ dy·(z − mean), blocks of 1024 in f32x4, added in float64.
    let sb: f64 = 0, sg: f64 = 0;
    const mv = f32x4.splat(m);
    for (let b = 0; b < M; b += 1024) {
      const e = min(M, b + 1024);
      let ab = f32x4.splat(0), ag = f32x4.splat(0);
      let i = b;
      for (; i + 4 <= e; i += 4) {
        const o = <usize>i << 2, g = v128.load(d + o);
        ab = f32x4.add(ab, g);
        ag = f32x4.add(ag, f32x4.mul(g, f32x4.sub(v128.load(zs + o), mv)));
      }
      let pb: f32 = f32x4.extract_lane(ab, 0) + f32x4.extract_lane(ab, 1) + f32x4.extract_lane(ab, 2) + f32x4.extract_lane(ab, 3);
      let pg: f32 = f32x4.extract_lane(ag, 0) + f32x4.extract_lane(ag, 1) + f32x4.extract_lane(ag, 2) + f32x4.extract_lane(ag, 3);
      for (; i < e; i++) {
        const o = <usize>i << 2, g = load<f32>(d + o);
        pb += g;
        pg += g * (load<f32>(zs + o) - m);
      }
      sb += <f64>pb;
      sg += <f64>pg;
    }
    const dBeta = <f32>sb, dGamma = <f32>(sg * <f64>is);
    store<f32>(sums + (<usize>k << 2), dBeta);
    store<f32>(sums + (<usize>(K + k) << 2), dGamma);
    // dz = a·(M·dy − dβ) − a·x̂·dγ = c1·dy + c0 − c2·(z − mean)
    const a = load<f32>(gamma + (<usize>k << 2)) * is / <f32>M;
    const c1 = a * <f32>M, c0 = -a * dBeta, c2 = a * is * dGamma;
    const c1v = f32x4.splat(c1), c0v = f32x4.splat(c0), c2v = f32x4.splat(c2);
    let i = 0;
    for (; i + 4 <= M; i += 4) {
      const o = <usize>i << 2;
      const v = f32x4.sub(f32x4.add(f32x4.mul(v128.load(d + o), c1v), c0v), f32x4.mul(f32x4.sub(v128.load(zs + o), mv), c2v));
      v128.store(d + o, v);
    }
    for (; i < M; i++) {
      const o = <usize>i << 2;
      store<f32>(d + o, load<f32>(d + o) * c1 + c0 - (load<f32>(zs + o) - m) * c2);
    }
  }
}
