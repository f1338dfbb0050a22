// Convolution-network kernels besides the matrix product: im2col (patches of an image as the columns
// of a matrix, so that a convolution becomes one GEMM), the per-channel bias with an optional
// residual and ReLU that ends each convolution, max pooling and global average pooling; for the
// dual-module convolution, im2row (one patch per row) and the big module computing only listed outputs.
// Images are planar (NCHW): channel c's plane is H·W floats, row by row.
import { shareStart, madd, hsum } from "./common";

/**
 * cols (C·R·S, OH·OW) from x (C, H, W): row (c·R + r)·S + s, column oh·OW + ow holds
 * x[c, oh·strideH − padTop + r, ow·strideW − padLeft + s], or 0 outside the image.
 * Threads split the rows.
 */
export function im2col_f32(cols: usize, x: usize, C: i32, H: i32, W: i32, R: i32, S: i32,
                           strideH: i32, strideW: i32, padTop: i32, padLeft: i32, OH: i32, OW: i32,
                           tid: i32, nth: i32): void {
  const rows = C * R * S;
  const row0 = shareStart(rows, tid, nth), row1 = shareStart(rows, tid + 1, nth);
  const owBytes = <usize>OW << 2;
  for (let row = row0; row < row1; row++) {
    const s = row % S, r = (row / S) % R, c = row / (R * S);
    const plane = x + (<usize>c * H * W << 2);
    // Output columns whose input column lies inside the image: ow·strideW − padLeft + s ∈ [0, W).
    let ow0 = 0, ow1 = 0;
    const first = padLeft - s; // ow·strideW ≥ first
    ow0 = first <= 0 ? 0 : (first + strideW - 1) / strideW;
    const last = W - 1 + padLeft - s; // ow·strideW ≤ last
    ow1 = last < 0 ? 0 : min(OW, last / strideW + 1);
    if (ow0 > ow1) ow0 = ow1;
    let d = cols + (<usize>row * OH * OW << 2);
    for (let oh = 0; oh < OH; oh++, d += owBytes) {
      const ih = oh * strideH - padTop + r;
      if (ih < 0 || ih >= H || ow0 == ow1) {
        memory.fill(d, 0, owBytes);
        continue;
      }
      if (ow0 > 0) memory.fill(d, 0, <usize>ow0 << 2);
      if (ow1 < OW) memory.fill(d + (<usize>ow1 << 2), 0, <usize>(OW - ow1) << 2);
      const src = plane + (<usize>(ih * W + ow0 * strideW - padLeft + s) << 2);
      if (strideW == 1) {
        memory.copy(d + (<usize>ow0 << 2), src, <usize>(ow1 - ow0) << 2);
      } else {
        const step = <usize>strideW << 2;
        let sp = src;
        for (let ow = ow0; ow < ow1; ow++, sp += step) store<f32>(d + (<usize>ow << 2), load<f32>(sp));
      }
    }
  }
}

/**
 * y (N, K, P) ← y + bias[k] (+ residual (N, K, P) when residual ≠ 0), then max(·, 0) when relu.
 * Threads split the N·K planes.
 */
export function bias_act_f32(y: usize, bias: usize, residual: usize, N: i32, K: i32, P: i32, relu: i32,
                             tid: i32, nth: i32): void {
  const planes = N * K;
  const p0 = shareStart(planes, tid, nth), p1 = shareStart(planes, tid + 1, nth);
  const zero = f32x4.splat(0);
  for (let plane = p0; plane < p1; plane++) {
    const b = load<f32>(bias + (<usize>(plane % K) << 2));
    const bv = f32x4.splat(b);
    const off = <usize>plane * P << 2;
    const d = y + off, rs = residual + off;
    let i = 0;
    for (; i + 4 <= P; i += 4) {
      const o = <usize>i << 2;
      let v = f32x4.add(v128.load(d + o), bv);
      if (residual) v = f32x4.add(v, v128.load(rs + o));
      if (relu) v = f32x4.max(v, zero);
      v128.store(d + o, v);
    }
    for (; i < P; i++) {
      const o = <usize>i << 2;
      let v = load<f32>(d + o) + b;
      if (residual) v += load<f32>(rs + o);
      if (relu) v = max(v, 0);
      store<f32>(d + o, v);
    }
  }
}

/**
 * y (C, OH, OW) = the maximum of x (C, H, W) over each R×S window at (oh·strideH − padTop,
 * ow·strideW − padLeft); positions outside the image are ignored (−∞ padding). C may be N·C.
 * Threads split the planes.
 */
export function maxpool_f32(y: usize, x: usize, C: i32, H: i32, W: i32, R: i32, S: i32,
                            strideH: i32, strideW: i32, padTop: i32, padLeft: i32, OH: i32, OW: i32,
                            tid: i32, nth: i32): void {
  const c0 = shareStart(C, tid, nth), c1 = shareStart(C, tid + 1, nth);
  for (let c = c0; c < c1; c++) {
    const plane = x + (<usize>c * H * W << 2);
    let d = y + (<usize>c * OH * OW << 2);
    for (let oh = 0; oh < OH; oh++) {
      const h0 = oh * strideH - padTop;
      const r0 = max(0, -h0), r1 = min(R, H - h0);
      for (let ow = 0; ow < OW; ow++, d += 4) {
        const w0 = ow * strideW - padLeft;
        const s0 = max(0, -w0), s1 = min(S, W - w0);
        let m: f32 = <f32>-Infinity;
        for (let r = r0; r < r1; r++) {
          const src = plane + (<usize>((h0 + r) * W + w0) << 2);
          for (let s = s0; s < s1; s++) m = max(m, load<f32>(src + (<usize>s << 2)));
        }
        store<f32>(d, m);
      }
    }
  }
}

/** y (C) = the mean of each plane of x (C, P). C may be N·C. Threads split the planes. */
export function avgpool_global_f32(y: usize, x: usize, C: i32, P: i32, tid: i32, nth: i32): void {
  const c0 = shareStart(C, tid, nth), c1 = shareStart(C, tid + 1, nth);
  for (let c = c0; c < c1; c++) {
    const src = x + (<usize>c * P << 2);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= P; i += 4) acc = f32x4.add(acc, v128.load(src + (<usize>i << 2)));
    let s: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
    for (; i < P; i++) s += load<f32>(src + (<usize>i << 2));
    store<f32>(y + (<usize>c << 2), s / <f32>P);
  }
}

/**
 * patches (OH·OW, C·R·S) from x (C, H, W): im2col's matrix transposed, one patch per row, so that an
 * output (k, p) is one contiguous dot product W[k] · patches[p] (the sensitive-output kernel below).
 * Threads split the positions.
 */
export function im2row_f32(patches: usize, x: usize, C: i32, H: i32, W: i32, R: i32, S: i32,
                           strideH: i32, strideW: i32, padTop: i32, padLeft: i32, OH: i32, OW: i32,
                           tid: i32, nth: i32): void {
  const P = OH * OW, CRS = C * R * S;
  const p0 = shareStart(P, tid, nth), p1 = shareStart(P, tid + 1, nth);
  for (let p = p0; p < p1; p++) {
    const oh = p / OW, ow = p % OW;
    const h0 = oh * strideH - padTop, w0 = ow * strideW - padLeft;
    const s0 = max(0, -w0), s1 = min(S, W - w0);
    let d = patches + (<usize>p * CRS << 2);
    if ((S == 3 || S == 4) && h0 >= 0 && h0 + R <= H && s0 == 0 && s1 == S) {
      // The whole window lies in the image (most positions): each of its rows is one f32x4 copy; for
      // S = 3 the extra lane reads the image's next float and lands in the next row's slot, written
      // next. The patch's last row is copied exactly: its extra lane would land in the next patch
      // (another thread's), and for the last channel read past x.
      const rowStep = <usize>S << 2, planeBytes = <usize>H * W << 2, lineBytes = <usize>W << 2;
      let plane = x + (<usize>(h0 * W + w0) << 2);
      for (let c = 0; c < C; c++, plane += planeBytes) {
        let src = plane;
        for (let r = 0; r < R; r++, src += lineBytes, d += rowStep) {
          if (c == C - 1 && r == R - 1) {
            for (let q = 0; q < S; q++) store<f32>(d + (<usize>q << 2), load<f32>(src + (<usize>q << 2)));
          } else {
            v128.store(d, v128.load(src));
          }
        }
      }
      continue;
    }
    for (let c = 0; c < C; c++) {
      const plane = x + (<usize>c * H * W << 2);
      for (let r = 0; r < R; r++, d += <usize>S << 2) {
        const ih = h0 + r;
        if (ih < 0 || ih >= H) {
          for (let q = 0; q < S; q++) store<f32>(d + (<usize>q << 2), 0);
          continue;
        }
        const src = plane + (<usize>(ih * W + w0) << 2);
        let q = 0;
        for (; q < s0; q++) store<f32>(d + (<usize>q << 2), 0);
        for (; q < s1; q++) store<f32>(d + (<usize>q << 2), load<f32>(src + (<usize>q << 2)));
        for (; q < S; q++) store<f32>(d + (<usize>q << 2), 0);
      }
    }
  }
}

/** Bytes of patches per block of positions: they stay in L2 while every channel of the block reads them. */
const L2_PATCH_BYTES = 256 * 1024;

/**
 * Four dot products of one weight row with four patches: one load of w serves four streams. Two
 * accumulators per stream (even and odd quads) so that eight multiply-add chains run at once: one
 * chain per stream would wait on the previous multiply-add's latency.
 */
// @ts-ignore: decorator
@inline function dot4(w: usize, a: usize, b: usize, c: usize, d: usize, n: i32, out: usize): void {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let t0 = f32x4.splat(0), t1 = f32x4.splat(0), t2 = f32x4.splat(0), t3 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    const wv = v128.load(w + o), wu = v128.load(w + o, 16);
    s0 = madd(wv, v128.load(a + o), s0); t0 = madd(wu, v128.load(a + o, 16), t0);
    s1 = madd(wv, v128.load(b + o), s1); t1 = madd(wu, v128.load(b + o, 16), t1);
    s2 = madd(wv, v128.load(c + o), s2); t2 = madd(wu, v128.load(c + o, 16), t2);
    s3 = madd(wv, v128.load(d + o), s3); t3 = madd(wu, v128.load(d + o, 16), t3);
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const wv = v128.load(w + o);
    s0 = madd(wv, v128.load(a + o), s0);
    s1 = madd(wv, v128.load(b + o), s1);
    s2 = madd(wv, v128.load(c + o), s2);
    s3 = madd(wv, v128.load(d + o), s3);
  }
  let r0 = hsum(f32x4.add(s0, t0)), r1 = hsum(f32x4.add(s1, t1)), r2 = hsum(f32x4.add(s2, t2)), r3 = hsum(f32x4.add(s3, t3));
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const wv = load<f32>(w + o);
    r0 += wv * load<f32>(a + o); r1 += wv * load<f32>(b + o);
    r2 += wv * load<f32>(c + o); r3 += wv * load<f32>(d + o);
  }
  store<f32>(out, r0); store<f32>(out, r1, 4); store<f32>(out, r2, 8); store<f32>(out, r3, 12);
}

/** Eight dot products of one weight row with eight patches (addresses at p[0..7]): one load of w serves eight streams. */
// @ts-ignore: decorator
@inline function dot8(w: usize, p: usize, n: i32, out: usize): void {
  const a0 = load<usize>(p), a1 = load<usize>(p, 4), a2 = load<usize>(p, 8), a3 = load<usize>(p, 12);
  const a4 = load<usize>(p, 16), a5 = load<usize>(p, 20), a6 = load<usize>(p, 24), a7 = load<usize>(p, 28);
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let s4 = f32x4.splat(0), s5 = f32x4.splat(0), s6 = f32x4.splat(0), s7 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const wv = v128.load(w + o);
    s0 = madd(wv, v128.load(a0 + o), s0);
    s1 = madd(wv, v128.load(a1 + o), s1);
    s2 = madd(wv, v128.load(a2 + o), s2);
    s3 = madd(wv, v128.load(a3 + o), s3);
    s4 = madd(wv, v128.load(a4 + o), s4);
    s5 = madd(wv, v128.load(a5 + o), s5);
    s6 = madd(wv, v128.load(a6 + o), s6);
    s7 = madd(wv, v128.load(a7 + o), s7);
  }
  let r0 = hsum(s0), r1 = hsum(s1), r2 = hsum(s2), r3 = hsum(s3), r4 = hsum(s4), r5 = hsum(s5), r6 = hsum(s6), r7 = hsum(s7);
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const wv = load<f32>(w + o);
    r0 += wv * load<f32>(a0 + o); r1 += wv * load<f32>(a1 + o); r2 += wv * load<f32>(a2 + o); r3 += wv * load<f32>(a3 + o);
    r4 += wv * load<f32>(a4 + o); r5 += wv * load<f32>(a5 + o); r6 += wv * load<f32>(a6 + o); r7 += wv * load<f32>(a7 + o);
  }
  store<f32>(out, r0); store<f32>(out, r1, 4); store<f32>(out, r2, 8); store<f32>(out, r3, 12);
  store<f32>(out, r4, 16); store<f32>(out, r5, 20); store<f32>(out, r6, 24); store<f32>(out, r7, 28);
}

/** One dot product, on four accumulators (four independent multiply-add chains). */
// @ts-ignore: decorator
@inline function dot1(w: usize, a: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    s0 = madd(v128.load(w + o), v128.load(a + o), s0);
    s1 = madd(v128.load(w + o, 16), v128.load(a + o, 16), s1);
    s2 = madd(v128.load(w + o, 32), v128.load(a + o, 32), s2);
    s3 = madd(v128.load(w + o, 48), v128.load(a + o, 48), s3);
  }
  for (; i + 4 <= n; i += 4) s0 = madd(v128.load(w + (<usize>i << 2)), v128.load(a + (<usize>i << 2)), s0);
  let r = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) r += load<f32>(w + (<usize>i << 2)) * load<f32>(a + (<usize>i << 2));
  return r;
}

/**
 * The big module of a dual-module convolution: only the listed outputs. For each entry e of idx
 * (count, ascending flat indices k·P + p into y (K, P)): y[e] = bias[k] + weight[k] · patches[p],
 * with weight (K, CRS) and patches (P, CRS); nothing else in y is written (bias may be 0: none).
 * Threads split the list into equal parts. Each part runs channel by channel inside blocks of
 * positions, so that a block's patches stay in L2 while every channel's weight row streams from L1;
 * eight (or four) positions of a channel share each weight load. scratch: conv_sensitive_scratch(K) bytes per thread.
 */
export function conv_sensitive_f32(y: usize, weight: usize, patches: usize, bias: usize, idx: usize, count: i32,
                                   K: i32, P: i32, CRS: i32, scratch: usize, tid: i32, nth: i32): void {
  const e0 = shareStart(count, tid, nth), e1 = shareStart(count, tid + 1, nth);
  if (e0 >= e1) return;
  const kFirst = load<i32>(idx + (<usize>e0 << 2)) / P, kLast = load<i32>(idx + (<usize>(e1 - 1) << 2)) / P;
  // cursor[k − kFirst] and end[k − kFirst]: this part's entries of channel k not yet computed.
  const cursor = scratch + <usize>tid * conv_sensitive_scratch(K), end = cursor + (<usize>K << 2);
  const tmp = end + (<usize>K << 2); // eight dot products
  const addr = tmp + 32;             // eight patch addresses
  for (let k = kFirst; k <= kLast; k++) { store<i32>(cursor + (<usize>(k - kFirst) << 2), e1); store<i32>(end + (<usize>(k - kFirst) << 2), e1); }
  for (let e = e0; e < e1; e++) {
    const k = load<i32>(idx + (<usize>e << 2)) / P - kFirst;
    const ck = cursor + (<usize>k << 2);
    if (load<i32>(ck) == e1) store<i32>(ck, e);
    if (e + 1 == e1 || load<i32>(idx + (<usize>(e + 1) << 2)) / P - kFirst != k) store<i32>(end + (<usize>k << 2), e + 1);
  }
  const rowBytes = <usize>CRS << 2;
  const block = max(4, L2_PATCH_BYTES / (CRS << 2));
  for (let pBlock = 0; pBlock < P; pBlock += block) {
    const pEnd = pBlock + block;
    for (let k = kFirst; k <= kLast; k++) {
      const ck = cursor + (<usize>(k - kFirst) << 2);
      let e = load<i32>(ck);
      const stop = load<i32>(end + (<usize>(k - kFirst) << 2));
      const base = k * P, w = weight + <usize>k * rowBytes;
      const b: f32 = bias ? load<f32>(bias + (<usize>k << 2)) : 0;
      // Eight entries at a time, then four, while they lie in this block of positions.
      for (; e + 8 <= stop; e += 8) {
        if (load<i32>(idx + (<usize>(e + 7) << 2)) - base >= pEnd) break;
        for (let q = 0; q < 8; q++) store<usize>(addr + (<usize>q << 2), patches + <usize>(load<i32>(idx + (<usize>(e + q) << 2)) - base) * rowBytes);
        dot8(w, addr, CRS, tmp);
        for (let q = 0; q < 8; q++) store<f32>(y + (<usize>load<i32>(idx + (<usize>(e + q) << 2)) << 2), load<f32>(tmp + (<usize>q << 2)) + b);
      }
      for (; e + 4 <= stop; e += 4) {
        const i0 = load<i32>(idx + (<usize>e << 2)), i3 = load<i32>(idx + (<usize>(e + 3) << 2));
        if (i3 - base >= pEnd) break;
        const i1 = load<i32>(idx + (<usize>(e + 1) << 2)), i2 = load<i32>(idx + (<usize>(e + 2) << 2));
        dot4(w, patches + <usize>(i0 - base) * rowBytes, patches + <usize>(i1 - base) * rowBytes,
          patches + <usize>(i2 - base) * rowBytes, patches + <usize>(i3 - base) * rowBytes, CRS, tmp);
        store<f32>(y + (<usize>i0 << 2), load<f32>(tmp) + b);
        store<f32>(y + (<usize>i1 << 2), load<f32>(tmp, 4) + b);
        store<f32>(y + (<usize>i2 << 2), load<f32>(tmp, 8) + b);
        store<f32>(y + (<usize>i3 << 2), load<f32>(tmp, 12) + b);
      }
      for (; e < stop; e++) {
        const i = load<i32>(idx + (<usize>e << 2));
        if (i - base >= pEnd) break;
        store<f32>(y + (<usize>i << 2), dot1(w, patches + <usize>(i - base) * rowBytes, CRS) + b);
      }
      store<i32>(ck, e);
    }
  }
}

/**
 * Bytes of scratch conv_sensitive_f32 and conv_sensitive_pos_f32 need per thread for K channels:
 * two ints per channel (cursors and ends, or cursors and one position's channels), eight results,
 * eight addresses.
 */
export function conv_sensitive_scratch(K: i32): i32 {
  return 8 * K + 64;
}

/**
 * conv_sensitive_f32's outputs grouped the other way: position by position, the channels sensitive
 * at that position in groups of eight (then four, then one) share each load of the position's patch,
 * while their weight rows stream. Threads split the positions; each finds its channels' first entries
 * with one pass over idx, then walks positions keeping a cursor per channel (O(K) per position).
 * Same result, same scratch (conv_sensitive_scratch(K) bytes per thread).
 */
export function conv_sensitive_pos_f32(y: usize, weight: usize, patches: usize, bias: usize, idx: usize, count: i32,
                                       K: i32, P: i32, CRS: i32, scratch: usize, tid: i32, nth: i32): void {
  const p0 = shareStart(P, tid, nth), p1 = shareStart(P, tid + 1, nth);
  if (p0 >= p1 || count == 0) return;
  // cursor[k]: channel k's next entry (−1: none left in this part); list: the channels of one position.
  const cursor = scratch + <usize>tid * conv_sensitive_scratch(K), list = cursor + (<usize>K << 2);
  const tmp = scratch + <usize>tid * conv_sensitive_scratch(K) + (<usize>K << 3), addr = tmp + 32;
  for (let k = 0; k < K; k++) store<i32>(cursor + (<usize>k << 2), -1);
  for (let e = 0; e < count; e++) {
    const i = load<i32>(idx + (<usize>e << 2)), k = i / P, p = i - k * P;
    const ck = cursor + (<usize>k << 2);
    if (p >= p0 && p < p1 && load<i32>(ck) < 0) store<i32>(ck, e);
  }
  const rowBytes = <usize>CRS << 2;
  for (let p = p0; p < p1; p++) {
    let n = 0;
    for (let k = 0; k < K; k++) {
      const ck = cursor + (<usize>k << 2), e = load<i32>(ck);
      if (e < 0 || load<i32>(idx + (<usize>e << 2)) != k * P + p) continue;
      store<i32>(list + (<usize>n << 2), k);
      n++;
      // The channel's next entry, unless it belongs to the next channel or another thread's positions.
      const next = e + 1 < count ? load<i32>(idx + (<usize>(e + 1) << 2)) : -1;
      store<i32>(ck, next >= 0 && next / P == k && next - k * P < p1 ? e + 1 : -1);
    }
    const x = patches + <usize>p * rowBytes;
    let j = 0;
    for (; j + 8 <= n; j += 8) {
      for (let q = 0; q < 8; q++) store<usize>(addr + (<usize>q << 2), weight + <usize>load<i32>(list + (<usize>(j + q) << 2)) * rowBytes);
      dot8(x, addr, CRS, tmp);
      for (let q = 0; q < 8; q++) {
        const k = load<i32>(list + (<usize>(j + q) << 2));
        store<f32>(y + (<usize>(k * P + p) << 2), load<f32>(tmp + (<usize>q << 2)) + (bias ? load<f32>(bias + (<usize>k << 2)) : 0));
      }
    }
    for (; j + 4 <= n; j += 4) {
      const k0 = load<i32>(list + (<usize>j << 2)), k1 = load<i32>(list + (<usize>(j + 1) << 2));
      const k2 = load<i32>(list + (<usize>(j + 2) << 2)), k3 = load<i32>(list + (<usize>(j + 3) << 2));
      dot4(x, weight + <usize>k0 * rowBytes, weight + <usize>k1 * rowBytes, weight + <usize>k2 * rowBytes, weight + <usize>k3 * rowBytes, CRS, tmp);
      store<f32>(y + (<usize>(k0 * P + p) << 2), load<f32>(tmp) + (bias ? load<f32>(bias + (<usize>k0 << 2)) : 0));
      store<f32>(y + (<usize>(k1 * P + p) << 2), load<f32>(tmp, 4) + (bias ? load<f32>(bias + (<usize>k1 << 2)) : 0));
      store<f32>(y + (<usize>(k2 * P + p) << 2), load<f32>(tmp, 8) + (bias ? load<f32>(bias + (<usize>k2 << 2)) : 0));
      store<f32>(y + (<usize>(k3 * P + p) << 2), load<f32>(tmp, 12) + (bias ? load<f32>(bias + (<usize>k3 << 2)) : 0));
    }
    for (; j < n; j++) {
      const k = load<i32>(list + (<usize>j << 2));
      store<f32>(y + (<usize>(k * P + p) << 2), dot1(weight + <usize>k * rowBytes, x, CRS) + (bias ? load<f32>(bias + (<usize>k << 2)) : 0));
    }
  }
}
