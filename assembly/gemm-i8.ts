// INT8 matrix-matrix product for the little module of a convolution: every output channel's estimate
// at every position in one product of small int8 matrices, Y (M, N) = W (M, K) · X (N, K)ᵀ, both
// operands stored with K contiguous (weights by channel, projected patches by position). Integer sums
// are exact in i32; only the final scaling rounds, in the order of the matvec_i8 kernel. Also the
// per-row quantization of the projected patches (one scale per position), their int8 patches, and
// the big module's f32 patches cut only where some output is sensitive.
import { shareStart } from "./common";
import { quantize_i8, hsumI32, dot16 } from "./quant";
import { im2row_f32 } from "./conv";

/** Exact Σ_k a[k]·b[k] over two int8 rows of length K (scalar tail). */
// @ts-ignore: decorator
@inline function dotI8(a: usize, b: usize, K: i32): i32 {
  let acc = i32x4.splat(0);
  let k = 0;
  for (; k + 16 <= K; k += 16) {
    const bv = v128.load(b + k);
    acc = i32x4.add(acc, dot16(v128.load(a + k), i16x8.extend_low_i8x16_s(bv), i16x8.extend_high_i8x16_s(bv)));
  }
  let s = hsumI32(acc);
  for (; k < K; k++) s += <i32>load<i8>(a + k) * <i32>load<i8>(b + k);
  return s;
}

/** y[m, n] = acc · (wScales[m] · xScale) + bias[m], rounded to f32 in that order (the reference's). */
// @ts-ignore: decorator
@inline function finish(y: usize, wScales: usize, xScale: f32, bias: usize, m: i32, N: i32, n: i32, acc: i32): void {
  let v = <f32>acc * (load<f32>(wScales + (<usize>m << 2)) * xScale);
  if (bias != 0) v += load<f32>(bias + (<usize>m << 2));
  store<f32>(y + ((<usize>m * N + n) << 2), v);
}

// @ts-ignore: decorator
@inline function scaleOf(xScales: usize, perColumn: i32, n: i32): f32 {
  return load<f32>(xScales + (perColumn ? <usize>n << 2 : 0));
}

/**
 * y (M, N) f32 = wScales (M) · xScales (N, or 1 when !perColumn) · (w (M, K) int8 · x (N, K) int8 ᵀ)
 * + bias (M, or 0 for none). Threads split the columns n. Blocks of 4 rows × 2 columns: each 16-byte
 * step widens two x rows once and streams four weight rows past them (eight i32x4 accumulators).
 */
export function gemm_i8(y: usize, w: usize, wScales: usize, x: usize, xScales: usize, perColumn: i32, bias: usize,
                        M: i32, N: i32, K: i32, tid: i32, nth: i32): void {
  const n0 = shareStart(N, tid, nth), n1 = shareStart(N, tid + 1, nth);
  const rowBytes = <usize>K;
  let n = n0;
  for (; n + 2 <= n1; n += 2) {
    const xa = x + <usize>n * rowBytes, xb = xa + rowBytes;
    const sa = scaleOf(xScales, perColumn, n), sb = scaleOf(xScales, perColumn, n + 1);
    let m = 0;
    for (; m + 4 <= M; m += 4) {
      const w0 = w + <usize>m * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
      let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
      let b0 = i32x4.splat(0), b1 = i32x4.splat(0), b2 = i32x4.splat(0), b3 = i32x4.splat(0);
      let k = 0;
      for (; k + 16 <= K; k += 16) {
        const va = v128.load(xa + k), vb = v128.load(xb + k);
        const al = i16x8.extend_low_i8x16_s(va), ah = i16x8.extend_high_i8x16_s(va);
        const bl = i16x8.extend_low_i8x16_s(vb), bh = i16x8.extend_high_i8x16_s(vb);
        const v0 = v128.load(w0 + k), v1 = v128.load(w1 + k), v2 = v128.load(w2 + k), v3 = v128.load(w3 + k);
        a0 = i32x4.add(a0, dot16(v0, al, ah)); b0 = i32x4.add(b0, dot16(v0, bl, bh));
        a1 = i32x4.add(a1, dot16(v1, al, ah)); b1 = i32x4.add(b1, dot16(v1, bl, bh));
        a2 = i32x4.add(a2, dot16(v2, al, ah)); b2 = i32x4.add(b2, dot16(v2, bl, bh));
        a3 = i32x4.add(a3, dot16(v3, al, ah)); b3 = i32x4.add(b3, dot16(v3, bl, bh));
      }
      let s0 = hsumI32(a0), s1 = hsumI32(a1), s2 = hsumI32(a2), s3 = hsumI32(a3);
      let t0 = hsumI32(b0), t1 = hsumI32(b1), t2 = hsumI32(b2), t3 = hsumI32(b3);
      for (; k < K; k++) {
        const p = <i32>load<i8>(xa + k), q = <i32>load<i8>(xb + k);
        const c0 = <i32>load<i8>(w0 + k), c1 = <i32>load<i8>(w1 + k), c2 = <i32>load<i8>(w2 + k), c3 = <i32>load<i8>(w3 + k);
        s0 += c0 * p; s1 += c1 * p; s2 += c2 * p; s3 += c3 * p;
        t0 += c0 * q; t1 += c1 * q; t2 += c2 * q; t3 += c3 * q;
      }
      finish(y, wScales, sa, bias, m, N, n, s0); finish(y, wScales, sb, bias, m, N, n + 1, t0);
      finish(y, wScales, sa, bias, m + 1, N, n, s1); finish(y, wScales, sb, bias, m + 1, N, n + 1, t1);
      finish(y, wScales, sa, bias, m + 2, N, n, s2); finish(y, wScales, sb, bias, m + 2, N, n + 1, t2);
      finish(y, wScales, sa, bias, m + 3, N, n, s3); finish(y, wScales, sb, bias, m + 3, N, n + 1, t3);
    }
    for (; m < M; m++) {
      const wm = w + <usize>m * rowBytes;
      finish(y, wScales, sa, bias, m, N, n, dotI8(wm, xa, K));
      finish(y, wScales, sb, bias, m, N, n + 1, dotI8(wm, xb, K));
    }
  }
  for (; n < n1; n++) {
    const xn = x + <usize>n * rowBytes, s = scaleOf(xScales, perColumn, n);
    for (let m = 0; m < M; m++) finish(y, wScales, s, bias, m, N, n, dotI8(w + <usize>m * rowBytes, xn, K));
  }
}

/** Each row of x (rows, cols) f32 quantized as quantize_i8 does to q (rows, cols), its scale to scales (rows). Threads split the rows. */
export function quantize_rows_i8(q: usize, scales: usize, x: usize, rows: i32, cols: i32, tid: i32, nth: i32): void {
  const r0 = shareStart(rows, tid, nth), r1 = shareStart(rows, tid + 1, nth);
  for (let r = r0; r < r1; r++) {
    store<f32>(scales + (<usize>r << 2), quantize_i8(q + <usize>r * cols, x + (<usize>r * cols << 2), cols));
  }
}

/**
 * patches (OH·OW, rowBytes ≥ C·R·S) int8 from x (C, H, W) int8: im2row_f32 on bytes (0 outside the
 * image), for an image quantized once (one scale for all its patches). Bytes C·R·S .. rowBytes of
 * each row are not written (zero padding that keeps a GEMM free of scalar tails). Threads split the
 * positions.
 */
export function im2row_i8(patches: usize, x: usize, C: i32, H: i32, W: i32, R: i32, S: i32,
                          strideH: i32, strideW: i32, padTop: i32, padLeft: i32, OH: i32, OW: i32, rowBytes: i32,
                          tid: i32, nth: i32): void {
  const P = OH * OW, plane = <usize>H * W;
  const p0 = shareStart(P, tid, nth), p1 = shareStart(P, tid + 1, nth);
  for (let p = p0; p < p1; p++) {
    const oh = p / OW, ow = p % OW;
    const h0 = oh * strideH - padTop, w0 = ow * strideW - padLeft;
    const s0 = max(0, -w0), s1 = min(S, W - w0);
    let d = patches + <usize>p * rowBytes;
    if ((S == 3 || S == 4) && h0 >= 0 && h0 + R <= H && s0 == 0 && s1 == S) {
      // The whole window lies in the image (most positions): each of its rows is one 4-byte copy; for
      // S = 3 the extra byte lands in the next row's slot, written next. The patch's last row is
      // copied exactly (its extra byte would land in the padding or the next patch, and read past x).
      let src = x + <usize>(h0 * W + w0);
      for (let c = 0; c < C; c++, src += plane) {
        let row = src;
        for (let r = 0; r < R; r++, row += <usize>W, d += <usize>S) {
          if (c == C - 1 && r == R - 1) {
            for (let q = 0; q < S; q++) store<i8>(d + q, load<i8>(row + q));
          } else {
            store<u32>(d, load<u32>(row));
          }
        }
      }
      continue;
    }
    for (let c = 0; c < C; c++) {
      const src = x + <usize>c * plane;
      for (let r = 0; r < R; r++, d += <usize>S) {
        const ih = h0 + r;
        if (ih < 0 || ih >= H) { memory.fill(d, 0, <usize>S); continue; }
        const row = src + <usize>(ih * W + w0);
        let q = 0;
        for (; q < s0; q++) store<i8>(d + q, 0);
        for (; q < s1; q++) store<i8>(d + q, load<i8>(row + q));
        for (; q < S; q++) store<i8>(d + q, 0);
      }
    }
  }
}

/**
 * The big module's patches (OH·OW, C·R·S) f32 from x (C, H, W), only at the positions p that some
 * listed output has: idx (count) holds strictly ascending flat indices k·P + p (as convSensitive
 * takes them). Other rows are not written. marks: P bytes per thread. Threads split the positions;
 * each walks the whole list (cheap next to cutting patches) and marks its own positions.
 */
export function im2row_sensitive_f32(patches: usize, x: usize, C: i32, H: i32, W: i32, R: i32, S: i32,
                                     strideH: i32, strideW: i32, padTop: i32, padLeft: i32, OH: i32, OW: i32,
                                     idx: usize, count: i32, marks: usize, tid: i32, nth: i32): void {
  const P = OH * OW;
  const p0 = shareStart(P, tid, nth), p1 = shareStart(P, tid + 1, nth);
  const mark = marks + <usize>tid * P;
  memory.fill(mark, 0, <usize>P);
  // The list ascends, so each entry's channel base k·P only moves forward: no division per entry.
  let base = 0;
  for (let e = 0; e < count; e++) {
    const i = load<i32>(idx + (<usize>e << 2));
    while (i - base >= P) base += P;
    const p = i - base;
    if (p >= p0 && p < p1) store<u8>(mark + p, 1);
  }
  for (let p = p0; p < p1; p++) {
    // One position: im2row_f32's share of position p out of P equal shares.
    if (load<u8>(mark + p)) im2row_f32(patches, x, C, H, W, R, S, strideH, strideW, padTop, padLeft, OH, OW, p, P);
  }
}
