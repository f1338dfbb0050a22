// Convolution-network kernels and layers against float64 references and ONNX's golden data, and
// ResNet-18 (ours, fast and reference) against an independent float64 ResNet and onnxruntime.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { Runtime } from "../src/runtime/runtime.js";
import { type PatchGeometry, patchGeometry } from "../src/kernels/conv.js";
import { type Backend, Conv2d, type ConvSpec, foldBatchNorm, referenceBackend, runtimeBackend } from "../src/conv/layers.js";
import { NO_WATCH } from "../src/util/stopwatch.js";
import { ResNet, type ResNetConfig, type ResNetWeights, randomResNetWeights, resnet18Small, STAGES, BLOCKS_PER_STAGE } from "../src/conv/resnet.js";
import { resnetModel } from "../src/conv/onnx.js";
import { decodeResNet, encodeResNet } from "../src/conv/checkpoint.js";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { OrtPeer } from "../src/onnx/peer.js";
import { FETCH_HINT, loadOnnxTestCase } from "../src/onnx/testdata.js";
import { GEOMETRIES, assertClose, impls, label, testRuntimes, type Impl } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

function random(impl: Impl, rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  const a = impl.f32(n);
  rng.fillUniform(a, lo, hi);
  return a;
}

const noWatch = NO_WATCH;

// ---------------------------------------------------------------------------------------------
// float64 references, written independently of the kernels (direct loops, BN unfolded)

/** y (N, K, OH, OW) of a direct convolution with per-side padding; scale = Σ|terms| per element. */
function conv64(x: ArrayLike<number>, N: number, C: number, H: number, W: number, w: ArrayLike<number>, K: number,
                R: number, S: number, sh: number, sw: number, pt: number, pl: number, OH: number, OW: number) {
  const y = new Float64Array(N * K * OH * OW), scale = new Float64Array(y.length);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    let s = 0, m = 0;
    for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let q = 0; q < S; q++) {
      const ih = oh * sh - pt + r, iw = ow * sw - pl + q;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      const t = x[((n * C + c) * H + ih) * W + iw] * w[((k * C + c) * R + r) * S + q];
      s += t; m += Math.abs(t);
    }
    const i = ((n * K + k) * OH + oh) * OW + ow;
    y[i] = s; scale[i] = m;
  }
  return { y, scale };
}

// ---------------------------------------------------------------------------------------------
// Kernels: fast and reference against direct computations, on odd shapes


test("im2col matches the direct definition (every build, odd shapes, strides, padding)", async () => {
  const rng = new Rng(1);
  for (const impl of await impls()) {
    for (const g of GEOMETRIES) {
      const x = random(impl, rng, g.C * g.H * g.W);
      const cols = random(impl, rng, g.C * g.R * g.S * g.OH * g.OW); // garbage that must be overwritten
      impl.k.im2col(cols, x, g);
      let i = 0;
      for (let c = 0; c < g.C; c++) for (let r = 0; r < g.R; r++) for (let s = 0; s < g.S; s++) {
        for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++, i++) {
          const ih = oh * g.strideH - g.padTop + r, iw = ow * g.strideW - g.padLeft + s;
          const want = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[(c * g.H + ih) * g.W + iw] : 0;
          if (cols[i] !== want) assert.fail(`${impl.name} im2col ${JSON.stringify(g)}: element ${i} is ${cols[i]}, expected ${want}`);
        }
      }
    }
  }
});

test("maxpool and global average pooling match direct definitions; NaN propagates through max", async () => {
  const rng = new Rng(2);
  for (const impl of await impls()) {
    for (const g of GEOMETRIES) {
      const x = random(impl, rng, g.C * g.H * g.W), y = impl.f32(g.C * g.OH * g.OW);
      impl.k.maxpool(y, x, g);
      let i = 0;
      for (let c = 0; c < g.C; c++) for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++, i++) {
        let m = -Infinity;
        for (let r = 0; r < g.R; r++) for (let s = 0; s < g.S; s++) {
          const ih = oh * g.strideH - g.padTop + r, iw = ow * g.strideW - g.padLeft + s;
          if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) m = Math.max(m, x[(c * g.H + ih) * g.W + iw]);
        }
        if (y[i] !== m) assert.fail(`${impl.name} maxpool ${JSON.stringify(g)}: element ${i} is ${y[i]}, expected ${m}`);
      }
      const P = g.H * g.W, avg = impl.f32(g.C), want = new Float64Array(g.C);
      for (let c = 0; c < g.C; c++) { for (let p = 0; p < P; p++) want[c] += x[c * P + p]; want[c] /= P; }
      impl.k.avgpoolGlobal(avg, x, g.C, P);
      assertClose(avg, want, 1, 1e-6, `${impl.name} avgpoolGlobal C=${g.C} P=${P}`);
    }
    const g = patchGeometry(1, 3, 3, 2), x = impl.f32(9), y = impl.f32(4);
    x[4] = NaN;
    impl.k.maxpool(y, x, g);
    assert.ok(Array.from(y).every(Number.isNaN), `${impl.name}: a NaN in every window gives NaN everywhere`);
  }
});

test("biasAct adds the per-channel bias, the residual, and applies ReLU (batch of planes, odd P)", async () => {
  const rng = new Rng(3);
  for (const impl of await impls()) {
    for (const [N, K, P] of [[1, 1, 1], [2, 3, 7], [3, 5, 33], [2, 64, 200]]) {
      for (const withResidual of [false, true]) for (const relu of [false, true]) {
        const y = random(impl, rng, N * K * P), bias = random(impl, rng, K);
        const res = withResidual ? random(impl, rng, N * K * P) : null;
        const want = Array.from(y, (v, i) => {
          const s = v + bias[Math.floor(i / P) % K] + (res ? res[i] : 0);
          return relu ? Math.max(s, 0) : s;
        });
        impl.k.biasAct(y, bias, res, N, K, P, relu);
        assertClose(y, want, 1, 1e-6, `${impl.name} biasAct N=${N} K=${K} P=${P} residual=${withResidual} relu=${relu}`);
      }
    }
  }
});

test("im2row is im2col transposed (every build, every geometry)", async () => {
  const rng = new Rng(9);
  for (const impl of await impls()) {
    for (const g of GEOMETRIES) {
      const CRS = g.C * g.R * g.S, P = g.OH * g.OW;
      const x = random(impl, rng, g.C * g.H * g.W), cols = impl.f32(CRS * P), patches = random(impl, rng, CRS * P);
      impl.k.im2col(cols, x, g);
      impl.k.im2row(patches, x, g);
      for (let j = 0; j < CRS; j++) for (let p = 0; p < P; p++) {
        if (patches[p * CRS + j] !== cols[j * P + p]) assert.fail(`${impl.name} im2row ${JSON.stringify(g)}: patch ${p}, element ${j}`);
      }
    }
  }
});

test("convSensitive (grouped by channel or by position) computes exactly the listed outputs in float64 accuracy and leaves the others alone", async () => {
  const rng = new Rng(10);
  // [K, P, CRS]: tiny, odd, a ResNet stage-4 shape at 28×28 (P·CRS beyond the 256 KiB patch block),
  // and a stage-1 one (many positions per block).
  const shapes: [number, number, number][] = [[1, 1, 1], [3, 7, 5], [13, 17, 29], [32, 16, 4608], [16, 784, 144], [70, 4, 36]];
  for (const impl of await impls()) {
    for (const [K, P, CRS] of shapes) {
      for (const density of [0, 0.1, 0.5, 1]) for (const grouping of ["channel", "position"] as const) {
        const weight = random(impl, rng, K * CRS), patches = random(impl, rng, P * CRS), bias = random(impl, rng, K);
        const listed: number[] = [];
        for (let i = 0; i < K * P; i++) if (rng.uniform() < density) listed.push(i);
        const idx = impl.i32(listed.length + 3); // longer than count: the tail is ignored
        idx.set(listed);
        idx.fill(-7, listed.length);
        const y = impl.f32(K * P).fill(NaN);
        impl.k.convSensitive(y, weight, patches, density === 0.5 ? null : bias, idx, listed.length, K, P, CRS, grouping);
        const want = new Float64Array(K * P).fill(NaN), scale = new Float64Array(K * P).fill(1);
        for (const i of listed) {
          const k = Math.floor(i / P), p = i % P;
          let s = density === 0.5 ? 0 : bias[k], m = Math.abs(s);
          for (let j = 0; j < CRS; j++) { const t = weight[k * CRS + j] * patches[p * CRS + j]; s += t; m += Math.abs(t); }
          want[i] = s; scale[i] = m;
        }
        for (let i = 0; i < K * P; i++) {
          if (Number.isNaN(want[i])) { if (!Number.isNaN(y[i])) assert.fail(`${impl.name} ${grouping} ${K}×${P}×${CRS}: unlisted output ${i} was written`); }
          else if (!(Math.abs(y[i] - want[i]) <= 1e-6 * scale[i])) assert.fail(`${impl.name} ${grouping} ${K}×${P}×${CRS} density ${density}: output ${i} is ${y[i]}, expected ${want[i]}`);
        }
      }
    }
  }
});

test("conv kernels name bad arguments", async () => {
  for (const impl of await impls()) {
    const g = patchGeometry(2, 5, 5, 3, 1, 1);
    assert.throws(() => impl.k.im2col(impl.f32(10), impl.f32(50), g), /im2col: cols must have 450 elements, got 10/);
    assert.throws(() => impl.k.im2col(impl.f32(450), impl.f32(50), { ...g, padTop: 3 }), /im2col: padding \(3, 1\) must be smaller than the window 3×3/);
    assert.throws(() => impl.k.maxpool(impl.f32(2 * 9 * 5), impl.f32(50), { ...g, OH: 9 }), /maxpool: OH = 9 puts the last window below the image/);
    assert.throws(() => impl.k.biasAct(impl.f32(6), impl.f32(2), null, 1, 3, 2, false), /biasAct: bias must have 3 elements, got 2/);
    assert.throws(() => impl.k.avgpoolGlobal(impl.f32(2), impl.f32(3), 2, 2), /avgpoolGlobal: x must have 4 elements, got 3/);
    const idx = impl.i32(3);
    idx.set([0, 5, 5]);
    assert.throws(() => impl.k.convSensitive(impl.f32(6), impl.f32(4), impl.f32(6), null, idx, 3, 2, 3, 2),
      /convSensitive: idx\[2\] = 5 must be greater than idx\[1\] = 5 \(strictly ascending\) and below K·P = 6/);
    idx.set([0, 6, 7]);
    assert.throws(() => impl.k.convSensitive(impl.f32(6), impl.f32(4), impl.f32(6), null, idx, 2, 2, 3, 2), /idx\[1\] = 6 .* below K·P = 6/);
    assert.throws(() => impl.k.convSensitive(impl.f32(6), impl.f32(4), impl.f32(6), null, idx, 4, 2, 3, 2),
      /convSensitive: idx must have at least count = 4 elements, got 3/);
  }
});

// ---------------------------------------------------------------------------------------------
// Layers: convolution with BN folded, against float64 conv-then-BN

async function backends(): Promise<{ name: string; be: Backend }[]> {
  return [{ name: "reference", be: referenceBackend },
    ...(await testRuntimes()).map((rt) => ({ name: label(rt), be: runtimeBackend(rt) }))];
}

test("Conv2d with BatchNorm folded matches float64 conv → BN (+ residual, ReLU), batch 2, odd shapes", async () => {
  const rng = new Rng(4);
  const specs: [number, number, ConvSpec][] = [
    [7, 5, { inChannels: 3, outChannels: 5, kernel: 3, stride: 1, pad: 1 }],
    [9, 9, { inChannels: 4, outChannels: 6, kernel: 3, stride: 2, pad: 1 }],
    [8, 8, { inChannels: 5, outChannels: 3, kernel: 1, stride: 1, pad: 0 }],  // pointwise: no im2col
    [8, 8, { inChannels: 5, outChannels: 7, kernel: 1, stride: 2, pad: 0 }],  // ResNet's projection
    [13, 13, { inChannels: 3, outChannels: 4, kernel: 7, stride: 2, pad: 3 }], // ImageNet stem
  ];
  for (const { name, be } of await backends()) {
    for (const [H, W, spec] of specs) {
      const N = 2, { inChannels: C, outChannels: K, kernel: R, stride, pad } = spec;
      const g = patchGeometry(C, H, W, R, stride, pad);
      const x = be.f32(N * C * H * W), w = new Float32Array(K * C * R * R);
      rng.fillUniform(x, -1, 1); rng.fillUniform(w, -1, 1);
      const bn = { weight: new Float32Array(K), bias: new Float32Array(K), running_mean: new Float32Array(K), running_var: new Float32Array(K) };
      rng.fillUniform(bn.weight, 0.5, 1.5); rng.fillUniform(bn.bias, -0.5, 0.5);
      rng.fillUniform(bn.running_mean, -0.5, 0.5); rng.fillUniform(bn.running_var, 0.2, 2);
      const residual = be.f32(N * K * g.OH * g.OW);
      rng.fillUniform(residual, -1, 1);
      const { y: raw, scale } = conv64(x, N, C, H, W, w, K, R, R, stride, stride, pad, pad, g.OH, g.OW);
      const P = g.OH * g.OW, want = new Float64Array(raw.length), wantScale = new Float64Array(raw.length);
      for (let i = 0; i < raw.length; i++) {
        const k = Math.floor(i / P) % K, a = bn.weight[k] / Math.sqrt(bn.running_var[k] + 1e-5);
        want[i] = Math.max(a * (raw[i] - bn.running_mean[k]) + bn.bias[k] + residual[i], 0);
        wantScale[i] = Math.abs(a) * (scale[i] + Math.abs(bn.running_mean[k])) + Math.abs(bn.bias[k]) + Math.abs(residual[i]);
      }
      const f = foldBatchNorm(w, null, bn, K);
      const cols = be.f32(Conv2d.colsLength(H, W, spec));
      const conv = new Conv2d(be, N, H, W, spec, f.weight, f.bias, cols);
      const y = conv.forward(x, residual, true, noWatch);
      assertClose(y, want, wantScale, 1e-6, `${name} Conv2d ${H}×${W} ${JSON.stringify(spec)}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// ONNX's golden data (libonnx-testdata). The attributes are those of ONNX's test generators
// (onnx/backend/test/case/node/*.py); output sizes come from the expected tensors.

interface GoldenWindow { name: string; kernel: [number, number]; strides: [number, number]; padTop: number; padLeft: number }

const GOLDEN_CONV: GoldenWindow[] = [
  { name: "test_basic_conv_with_padding", kernel: [3, 3], strides: [1, 1], padTop: 1, padLeft: 1 },
  { name: "test_basic_conv_without_padding", kernel: [3, 3], strides: [1, 1], padTop: 0, padLeft: 0 },
  { name: "test_conv_with_strides_padding", kernel: [3, 3], strides: [2, 2], padTop: 1, padLeft: 1 },
  { name: "test_conv_with_strides_no_padding", kernel: [3, 3], strides: [2, 2], padTop: 0, padLeft: 0 },
  { name: "test_conv_with_strides_and_asymmetric_padding", kernel: [3, 3], strides: [2, 2], padTop: 1, padLeft: 0 },
  { name: "test_conv_with_autopad_same", kernel: [3, 3], strides: [2, 2], padTop: 1, padLeft: 1 }, // SAME_LOWER
];

const GOLDEN_MAXPOOL: GoldenWindow[] = [
  { name: "test_maxpool_2d_default", kernel: [2, 2], strides: [1, 1], padTop: 0, padLeft: 0 },
  { name: "test_maxpool_2d_pads", kernel: [3, 3], strides: [1, 1], padTop: 2, padLeft: 2 },
  { name: "test_maxpool_2d_strides", kernel: [5, 5], strides: [3, 3], padTop: 0, padLeft: 0 },
  { name: "test_maxpool_2d_ceil", kernel: [3, 3], strides: [2, 2], padTop: 0, padLeft: 0 },
  { name: "test_maxpool_2d_same_upper", kernel: [2, 2], strides: [1, 1], padTop: 0, padLeft: 0 },
  { name: "test_maxpool_2d_same_lower", kernel: [2, 2], strides: [1, 1], padTop: 1, padLeft: 1 },
  { name: "test_maxpool_2d_precomputed_pads", kernel: [5, 5], strides: [1, 1], padTop: 2, padLeft: 2 },
  { name: "test_maxpool_2d_precomputed_strides", kernel: [2, 2], strides: [2, 2], padTop: 0, padLeft: 0 },
  { name: "test_maxpool_2d_precomputed_same_upper", kernel: [3, 3], strides: [2, 2], padTop: 1, padLeft: 1 },
  { name: "test_MaxPool2d", kernel: [3, 3], strides: [2, 2], padTop: 1, padLeft: 1 }, // from its model.onnx
];

/** Reshapes a test tensor into a heap array of `impl`. */
function load(impl: Impl, data: Float32Array): Float32Array { const a = impl.f32(data.length); a.set(data); return a; }

function geometryOf(w: GoldenWindow, C: number, H: number, W: number, OH: number, OW: number): PatchGeometry {
  return { C, H, W, R: w.kernel[0], S: w.kernel[1], strideH: w.strides[0], strideW: w.strides[1], padTop: w.padTop, padLeft: w.padLeft, OH, OW };
}

for (const w of GOLDEN_CONV) {
  test(`golden ${w.name}: im2col + GEMM conv matches ONNX's output`, async (t) => {
    const c = loadOnnxTestCase(w.name);
    if (c === null) { t.skip(FETCH_HINT); return; }
    const [X, Wt] = c.inputs, [Y] = c.outputs;
    const [N, C, H, W] = X.dims, [K] = Wt.dims, [, , OH, OW] = Y.dims;
    assert.equal(N, 1);
    const g = geometryOf(w, C, H, W, OH, OW);
    for (const impl of await impls()) {
      const cols = impl.f32(C * g.R * g.S * OH * OW), y = impl.f32(K * OH * OW);
      impl.k.im2col(cols, load(impl, X.data), g);
      impl.k.gemm(y, load(impl, Wt.data), cols, K, OH * OW, C * g.R * g.S, false, false, false);
      assertClose(y, Y.data, 1, 1e-5, `${impl.name} ${w.name}`);
    }
  });
}

for (const w of GOLDEN_MAXPOOL) {
  test(`golden ${w.name}: maxpool matches ONNX's output`, async (t) => {
    const c = loadOnnxTestCase(w.name);
    if (c === null) { t.skip(FETCH_HINT); return; }
    const [X] = c.inputs, [Y] = c.outputs;
    const [N, C, H, W] = X.dims, [, , OH, OW] = Y.dims;
    for (const impl of await impls()) {
      const y = impl.f32(Y.data.length);
      impl.k.maxpool(y, load(impl, X.data), geometryOf(w, N * C, H, W, OH, OW));
      assert.deepEqual(Array.from(y), Array.from(Y.data), `${impl.name} ${w.name}`);
    }
  });
}

for (const name of ["test_globalaveragepool", "test_globalaveragepool_precomputed"]) {
  test(`golden ${name}: global average pooling matches ONNX's output`, async (t) => {
    const c = loadOnnxTestCase(name);
    if (c === null) { t.skip(FETCH_HINT); return; }
    const [X] = c.inputs, [Y] = c.outputs;
    const [N, C, H, W] = X.dims;
    for (const impl of await impls()) {
      const y = impl.f32(N * C);
      impl.k.avgpoolGlobal(y, load(impl, X.data), N * C, H * W);
      assertClose(y, Y.data, 1, 1e-6, `${impl.name} ${name}`);
    }
  });
}

for (const [name, eps] of [["test_batchnorm_example", 1e-5], ["test_batchnorm_epsilon", 1e-2]] as const) {
  test(`golden ${name}: BatchNorm folded into a 1×1 identity convolution matches ONNX's output`, async (t) => {
    const c = loadOnnxTestCase(name);
    if (c === null) { t.skip(FETCH_HINT); return; }
    const [X, scale, bias, mean, variance] = c.inputs, [Y] = c.outputs;
    const [N, C, H, W] = X.dims;
    const identity = new Float32Array(C * C);
    for (let i = 0; i < C; i++) identity[i * C + i] = 1;
    const f = foldBatchNorm(identity, null, { weight: scale.data, bias: bias.data, running_mean: mean.data, running_var: variance.data }, C, eps);
    for (const { name: bname, be } of await backends()) {
      const conv = new Conv2d(be, N, H, W, { inChannels: C, outChannels: C, kernel: 1, stride: 1, pad: 0 }, f.weight, f.bias, be.f32(0));
      const x = be.f32(X.data.length);
      x.set(X.data);
      assertClose(conv.forward(x, null, false, noWatch), Y.data, 1, 1e-5, `${bname} ${name}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// ResNet-18: ours against an independent float64 network and onnxruntime

/** torchvision's forward in float64: conv → BN (unfolded) → ReLU, blocks, average pool, fc. */
function resnet64(c: ResNetConfig, w: ResNetWeights, images: Float32Array, N: number): Float64Array {
  const t = w.tensors;
  let C = c.inChannels, H = c.imageSize;
  const convBn = (x: ArrayLike<number>, conv: string, bn: string, stride: number, pad: number, Cin: number, Hin: number) => {
    const wt = t[`${conv}.weight`], K = t[`${bn}.weight`].length, R = Math.round(Math.sqrt(wt.length / (K * Cin)));
    const OH = Math.floor((Hin + 2 * pad - R) / stride) + 1;
    const { y } = conv64(x, N, Cin, Hin, Hin, wt, K, R, R, stride, stride, pad, pad, OH, OH);
    for (let i = 0; i < y.length; i++) {
      const k = Math.floor(i / (OH * OH)) % K;
      y[i] = (y[i] - t[`${bn}.running_mean`][k]) / Math.sqrt(t[`${bn}.running_var`][k] + 1e-5) * t[`${bn}.weight`][k] + t[`${bn}.bias`][k];
    }
    return { y, K, OH };
  };
  const relu = (a: Float64Array) => { for (let i = 0; i < a.length; i++) a[i] = Math.max(a[i], 0); return a; };
  const stem = c.stem === "imagenet" ? convBn(images, "conv1", "bn1", 2, 3, C, H) : convBn(images, "conv1", "bn1", c.stem === "stride2" ? 2 : 1, 1, C, H);
  let x = relu(stem.y);
  C = stem.K; H = stem.OH;
  if (c.stem === "imagenet") {
    const OH = Math.floor((H + 2 - 3) / 2) + 1, y = new Float64Array(N * C * OH * OH);
    for (let p = 0; p < N * C; p++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OH; ow++) {
      let m = -Infinity;
      for (let r = 0; r < 3; r++) for (let s = 0; s < 3; s++) {
        const ih = oh * 2 - 1 + r, iw = ow * 2 - 1 + s;
        if (ih >= 0 && ih < H && iw >= 0 && iw < H) m = Math.max(m, x[(p * H + ih) * H + iw]);
      }
      y[(p * OH + oh) * OH + ow] = m;
    }
    x = y; H = OH;
  }
  for (let s = 0; s < STAGES; s++) for (let b = 0; b < BLOCKS_PER_STAGE; b++) {
    const p = `layer${s + 1}.${b}`, stride = s > 0 && b === 0 ? 2 : 1;
    const shortcut = t[`${p}.downsample.0.weight`] ? convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, stride, 0, C, H).y : x;
    const h = convBn(x, `${p}.conv1`, `${p}.bn1`, stride, 1, C, H);
    const out = convBn(relu(h.y), `${p}.conv2`, `${p}.bn2`, 1, 1, h.K, h.OH);
    for (let i = 0; i < out.y.length; i++) out.y[i] = Math.max(out.y[i] + shortcut[i], 0);
    x = out.y; C = out.K; H = out.OH;
  }
  const logits = new Float64Array(N * c.classes);
  for (let n = 0; n < N; n++) for (let j = 0; j < c.classes; j++) {
    let s = t["fc.bias"][j];
    for (let k = 0; k < C; k++) {
      let mean = 0;
      for (let i = 0; i < H * H; i++) mean += x[(n * C + k) * H * H + i];
      s += t["fc.weight"][j * C + k] * mean / (H * H);
    }
    logits[n * c.classes + j] = s;
  }
  return logits;
}

/** |a − b| ≤ tol · max|b| for every logit: a deep network's rounding scales with its largest values. */
function assertLogitsClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  let max = 0;
  for (let i = 0; i < b.length; i++) max = Math.max(max, Math.abs(b[i]));
  assert.ok(max > 0, `${what}: the expected logits are not all zero`);
  assertClose(a, b, max, tol, what);
}

const RESNET_CASES: { config: ResNetConfig; batch: number }[] = [
  { config: resnet18Small(4), batch: 1 },
  { config: { ...resnet18Small(3), inChannels: 2, imageSize: 13, classes: 5 }, batch: 2 },
  { config: { stem: "imagenet", inChannels: 3, imageSize: 40, width: 4, classes: 7 }, batch: 1 },
  { config: { ...resnet18Small(3, "stride2"), imageSize: 17 }, batch: 2 },
];

test("ResNet-18 (every stem, narrow): fast and reference forward passes match a float64 torchvision-style network", async () => {
  for (const { config, batch } of RESNET_CASES) {
    const w = randomResNetWeights(config, 5);
    const images = new Float32Array(batch * config.inChannels * config.imageSize ** 2);
    new Rng(6).fillUniform(images, 0, 1);
    const want = resnet64(config, w, images, batch);
    for (const { name, be } of await backends()) {
      const net = new ResNet(be, config, w, batch);
      assertLogitsClose(net.forward(images), want, 1e-5, `${name} ${JSON.stringify(config)} batch ${batch}`);
    }
  }
});

test("ResNet-18 (every stem, narrow): our forward pass agrees with onnxruntime's on the same weights", async () => {
  const [rt] = await testRuntimes();
  for (const { config, batch } of RESNET_CASES) {
    const w = randomResNetWeights(config, 7);
    const images = new Float32Array(batch * config.inChannels * config.imageSize ** 2);
    new Rng(8).fillUniform(images, 0, 1);
    const peer = await OrtPeer.create(resnetModel(config, w, batch), 1);
    const { logits } = await peer.run({ images });
    await peer.release();
    const ours = new ResNet(runtimeBackend(rt), config, w, batch).forward(images);
    assertLogitsClose(ours, logits, 1e-5, `ORT vs ours ${JSON.stringify(config)} batch ${batch}`);
  }
});

test("ResNet-18 rejects images of the wrong size and weights of another width, naming the problem", () => {
  const config = resnet18Small(4);
  const net = new ResNet(referenceBackend, config, randomResNetWeights(config, 1));
  assert.throws(() => net.forward(new Float32Array(3 * 28 * 28)),
    /ResNet\.forward: images must be a Float32Array of 1×1×28×28 = 784 floats \(batch × channels × height × width\), got 2352 floats/);
  assert.throws(() => new ResNet(referenceBackend, config, randomResNetWeights(resnet18Small(8), 1)),
    /ResNet: weight conv1\.weight must be \[4,1,3,3\] \(36 floats\), got 72 floats: the weights do not match ResNet-18 \(small stem, 1×28×28 input, width 4, 10 classes\)/);
  assert.throws(() => new ResNet(referenceBackend, { ...config, imageSize: 4 }, randomResNetWeights(config, 1)),
    /ResNet: imageSize must be at least 8 with the small stem, got 4/);
});

test("ResNet-18 at full width: topology, parameter count and multiply-adds of torchvision's resnet18", () => {
  const imagenet = { stem: "imagenet", inChannels: 3, imageSize: 224, width: 64, classes: 1000 } as const;
  const w = randomResNetWeights(imagenet, 1);
  // torchvision's resnet18 has 11 689 512 parameters; BN running statistics add 2 × 4 800.
  assert.equal(w.flat.length, 11_689_512 + 9_600);
  const net = new ResNet(referenceBackend, imagenet, w);
  assert.equal(net.blocks.length, 8);
  assert.equal(net.macs, 1_814_073_344); // 1.81 GMAC, the usual figure for ResNet-18 at 224×224
});

// ---------------------------------------------------------------------------------------------
// Checkpoints

test("ResNet checkpoint: F32 round trip is exact, F16 within half precision, notes kept", () => {
  const config = resnet18Small(4), w = randomResNetWeights(config, 11);
  const back = decodeResNet(encodeResNet(config, w, { notes: { command: "dmi train cnn ..." } }), "a.safetensors");
  assert.deepEqual(back.config, config);
  assert.deepEqual(back.notes, { command: "dmi train cnn ..." });
  assert.deepEqual(back.weights.flat, w.flat);
  const half = decodeResNet(encodeResNet(config, w, { dtype: "F16" }), "b.safetensors");
  // Half precision: 11 significant bits, subnormal below 2^-14 (steps of 2^-24).
  assertClose(half.weights.flat, w.flat, Array.from(w.flat, (v) => Math.max(Math.abs(v), 2 ** -13)), 2 ** -11, "F16 weights");
});

test("ResNet checkpoint: a different format, a config that does not match the tensors, or extra tensors are named", () => {
  const config = resnet18Small(4), w = randomResNetWeights(config, 12);
  const file = decodeSafetensors(encodeResNet(config, w), "c");
  const reencode = (metadata: Record<string, string>, extra: Record<string, Float32Array> = {}) => {
    const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of file.tensors) tensors[name] = { dtype: "F32", shape: t.shape, data: t.data as Float32Array };
    for (const [name, data] of Object.entries(extra)) tensors[name] = { dtype: "F32", shape: [data.length], data };
    return encodeSafetensors(tensors, metadata);
  };
  assert.throws(() => decodeResNet(reencode({ ...file.metadata, format: "dualmodule-rnn" }), "x.safetensors"),
    /checkpoint x\.safetensors: not a ResNet checkpoint \(metadata format is "dualmodule-rnn", expected "dualmodule-resnet"\)/);
  assert.throws(() => decodeResNet(reencode({ ...file.metadata, config: JSON.stringify(resnet18Small(8)) }), "y.safetensors"),
    /checkpoint y\.safetensors: tensor "conv1\.weight" has shape \[4, 1, 3, 3\], expected \[8, 1, 3, 3\]; the checkpoint was written for a different model/);
  assert.throws(() => decodeResNet(reencode({ ...file.metadata, config: "{}" }), "z.safetensors"),
    /checkpoint z\.safetensors: metadata config "\{\}" is not a valid ResNet config/);
  assert.throws(() => decodeResNet(reencode(file.metadata, { "fc2.weight": new Float32Array(3) }), "e.safetensors"),
    /tensors fc2\.weight are not parameters of ResNet-18 \(small stem/);
  assert.throws(() => encodeResNet(config, w, { notes: { config: "x" } }), /note "config" is reserved/);
});

test("the dual convolution's scratch is sized once, from the runtime's limits, and a larger shape is an error naming the limit", async () => {
  const rt = await Runtime.create({ simd: "simd", threads: 2, limits: { convChannels: 2, convPositions: 4 } });
  try {
    const f32 = (n: number) => rt.heap.f32(n), idx = rt.heap.i32(1);
    const y = f32(8), weight = f32(2), patches = f32(4), x = f32(4), inUse = rt.heap.bytesInUse;
    // Within the limits: K = 2 channels, P = 4 positions.
    rt.kernels.convSensitive(y, weight, patches, null, idx, 1, 2, 4, 1);
    rt.kernels.im2rowSensitive(patches, x, patchGeometry(1, 2, 2, 1), idx, 1, 2);
    assert.equal(rt.heap.bytesInUse, inUse, "no scratch allocated on the way");
    assert.throws(() => rt.kernels.convSensitive(f32(12), f32(3), f32(4), null, idx, 1, 3, 4, 1),
      /convSensitive: convChannels 3 exceeds 2, the limit its scratch was sized for: create the Runtime with \{ limits: \{ convChannels: 3 \} \}/);
    assert.throws(() => rt.kernels.im2rowSensitive(f32(9), f32(9), patchGeometry(1, 3, 3, 1), idx, 1, 1),
      /im2rowSensitive: convPositions 9 exceeds 4/);
  } finally {
    await rt.close();
  }
  await assert.rejects(Runtime.create({ limits: { convChannels: 0 } }), /limits\.convChannels must be an integer ≥ 1, got 0/);
});
