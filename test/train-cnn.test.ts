// Training of the CNN: col2im against the adjoint of im2col, every gradient of the training-mode
// ResNet-18 (both stems) against central finite differences of an independent float64 forward,
// running statistics, evaluation mode against the folded inference network of src/conv/resnet.ts,
// the optimiser, a tiny MNIST run that learns, determinism, checkpoint/resume and the CLI's errors.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../src/util/random.js";
import { patchGeometry } from "../src/kernels/conv.js";
import { BN_EPS, runtimeBackend } from "../src/conv/layers.js";
import { type ResNetConfig, ResNet, allocateResNetWeights, blockSpecs, resnet18Small, resnetParameters, stemSpec } from "../src/conv/resnet.js";
import { BN_MOMENTUM, ResNetGraph, type TrainBackend, initResNetParams, parameterRole, referenceTrainBackend, trainBackend } from "../src/conv/grad.js";
import {
  CNN_TRAIN_DEFAULTS, type CnnTrainOptions, MAX_SHIFT, augmentedBatch, cnnResumePath, cosineLr, epochOrder, inferenceAccuracy,
  loadCnnResumable, sgdMomentumStep, trainCnn,
} from "../src/conv/train.js";
import { main as trainCnnCli } from "../src/cli/train-cnn.js";
import { loadResNet } from "../src/conv/checkpoint.js";
import { type ImageSet, loadImageSet } from "../src/data/images.js";
import { GEOMETRIES, assertClose, impls, label, testRuntimes } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-train-cnn-"));
after(() => rm(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// col2im


test("im2colBatch puts each image's im2col side by side; col2imBatch is its adjoint and accumulates on request (every build)", async () => {
  const rng = new Rng(11);
  for (const impl of await impls()) {
    for (const g of GEOMETRIES) for (const N of [1, 3]) {
      const what = `${impl.name} N=${N} ${JSON.stringify(g)}`;
      const HW = g.H * g.W, P = g.OH * g.OW, CRS = g.C * g.R * g.S, n = g.C * N * HW, m = CRS * N * P;
      const x = impl.f32(n), c = impl.f32(m), cols = impl.f32(m), back = impl.f32(n);
      rng.fillUniform(x, -1, 1);
      rng.fillUniform(c, -1, 1);
      rng.fillUniform(cols, -1, 1); // garbage that must be overwritten
      rng.fillUniform(back, -1, 1);
      impl.k.im2colBatch(cols, x, g, N);
      // Image i's columns are im2col of its (C, H, W) planes, gathered from the channel-major batch.
      for (let i = 0; i < N; i++) {
        const xi = impl.f32(g.C * HW), ci = impl.f32(CRS * P);
        for (let ch = 0; ch < g.C; ch++) xi.set(x.subarray((ch * N + i) * HW, (ch * N + i + 1) * HW), ch * HW);
        impl.k.im2col(ci, xi, g);
        for (let j = 0; j < CRS; j++) for (let p = 0; p < P; p++) {
          if (cols[(j * N + i) * P + p] !== ci[j * P + p]) assert.fail(`${what}: image ${i}, column row ${j}, position ${p}`);
        }
      }
      impl.k.col2imBatch(back, c, g, N, false);
      let lhs = 0, rhs = 0, scale = 0;
      for (let i = 0; i < n; i++) { lhs += back[i] * x[i]; scale += Math.abs(back[i] * x[i]); }
      for (let i = 0; i < m; i++) rhs += c[i] * cols[i];
      assert.ok(Math.abs(lhs - rhs) <= 1e-5 * scale + 1e-6, `${what}: ⟨col2im(c), x⟩ = ${lhs}, ⟨c, im2col(x)⟩ = ${rhs}`);
      const again = impl.f32(n);
      again.set(back);
      impl.k.col2imBatch(again, c, g, N, true);
      assertClose(again, Array.from(back, (v) => 2 * v), 1, 1e-5, `${what}: accumulate`);
    }
    assert.throws(() => impl.k.col2imBatch(impl.f32(3), impl.f32(81), patchGeometry(1, 3, 3, 3, 1, 1), 1, false), /col2imBatch: x must have 9 elements/);
  }
});

test("batch-norm kernels (channelStats, bnApply, bnBackward) match float64 definitions (every build, odd sizes)", async () => {
  const rng = new Rng(12);
  for (const impl of await impls()) {
    for (const [K, M] of [[1, 2], [3, 7], [5, 1029], [64, 2100]]) for (const relu of [false, true]) for (const withRes of [false, true]) {
      const what = `${impl.name} K=${K} M=${M} relu=${relu} residual=${withRes}`;
      const rand = (n: number, lo = -1, hi = 1) => { const a = impl.f32(n); rng.fillUniform(a, lo, hi); return a; };
      const z = rand(K * M, 0.5, 2.5), mean = impl.f32(K), variance = impl.f32(K);
      impl.k.channelStats(mean, variance, z, K, M);
      const m64 = Array.from({ length: K }, (_, k) => { let s = 0; for (let i = k * M; i < (k + 1) * M; i++) s += z[i]; return s / M; });
      const v64 = m64.map((m, k) => { let s = 0; for (let i = k * M; i < (k + 1) * M; i++) s += (z[i] - m) ** 2; return s / M; });
      assertClose(mean, m64, 1, 1e-6, `${what}: mean`);
      assertClose(variance, v64, 1, 1e-5, `${what}: variance`);

      const scale = rand(K), shift = rand(K), res = withRes ? rand(K * M) : null, y = rand(K * M);
      impl.k.bnApply(y, z, scale, shift, res, K, M, relu);
      const y64 = Array.from(z, (v, i) => { const k = Math.floor(i / M), t = scale[k] * v + shift[k] + (res ? res[i] : 0); return relu ? Math.max(t, 0) : t; });
      assertClose(y, y64, 1, 1e-6, `${what}: bnApply`);

      const dy = rand(K * M), dy0 = Float64Array.from(dy), dRes = withRes ? rand(K * M) : null, dRes0 = dRes && Float64Array.from(dRes);
      const invstd = rand(K, 0.5, 2), gamma = rand(K), sums = impl.f32(2 * K);
      impl.k.bnBackward(dy, z, relu ? y : null, dRes, mean, invstd, gamma, sums, K, M);
      for (let k = 0; k < K; k++) {
        const g = Array.from({ length: M }, (_, j) => { const i = k * M + j; return relu && !(y[i] > 0) ? 0 : dy0[i]; });
        const xhat = Array.from({ length: M }, (_, j) => (z[k * M + j] - mean[k]) * invstd[k]);
        const sb = g.reduce((a, b) => a + b, 0), sg = g.reduce((a, b, j) => a + b * xhat[j], 0);
        const scaleOf = g.reduce((a, b) => a + Math.abs(b), 0);
        assertClose([sums[k], sums[K + k]], [sb, sg], [scaleOf, 3 * scaleOf], 1e-5, `${what}: channel ${k} sums`);
        const dz = g.map((v, j) => gamma[k] * invstd[k] / M * (M * v - sb - xhat[j] * sg));
        assertClose(dy.subarray(k * M, (k + 1) * M), dz, Math.abs(gamma[k] * invstd[k]) * (1 + scaleOf / M) + 1e-3, 1e-4, `${what}: channel ${k} dz`);
        if (dRes) assertClose(dRes.subarray(k * M, (k + 1) * M), g.map((v, j) => v + dRes0![k * M + j]), 1, 1e-6, `${what}: channel ${k} dResidual`);
      }
    }
    assert.throws(() => impl.k.bnApply(impl.f32(6), impl.f32(6), impl.f32(2), impl.f32(3), null, 2, 3, true), /bnApply: shift must have 2 elements/);
  }
});

// ---------------------------------------------------------------------------------------------
// float64 reference: ResNet-18 in training mode, written from PyTorch's definition (direct loops)

interface Act { d: Float64Array; C: number; H: number }

function conv64(a: Act, w: Float64Array, K: number, R: number, stride: number, pad: number, N: number): Act {
  const { C, H } = a, OH = Math.floor((H + 2 * pad - R) / stride) + 1, d = new Float64Array(N * K * OH * OH);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OH; ow++) {
    let s = 0;
    for (let c = 0; c < C; c++) for (let r = 0; r < R; r++) for (let q = 0; q < R; q++) {
      const ih = oh * stride - pad + r, iw = ow * stride - pad + q;
      if (ih >= 0 && ih < H && iw >= 0 && iw < H) s += a.d[((n * C + c) * H + ih) * H + iw] * w[((k * C + c) * R + r) * R + q];
    }
    d[((n * K + k) * OH + oh) * OH + ow] = s;
  }
  return { d, C: K, H: OH };
}

/** Batch norm with the batch's statistics (biased variance), as BatchNorm2d in train(). */
function bnTrain64(a: Act, gamma: Float64Array, beta: Float64Array, N: number): { out: Act; mean: number[]; varUnbiased: number[] } {
  const P = a.H * a.H, M = N * P, out = new Float64Array(a.d.length), mean: number[] = [], varU: number[] = [];
  for (let c = 0; c < a.C; c++) {
    let s = 0, v = 0;
    for (let n = 0; n < N; n++) for (let p = 0; p < P; p++) s += a.d[(n * a.C + c) * P + p];
    const m = s / M;
    for (let n = 0; n < N; n++) for (let p = 0; p < P; p++) v += (a.d[(n * a.C + c) * P + p] - m) ** 2;
    for (let n = 0; n < N; n++) for (let p = 0; p < P; p++) {
      const i = (n * a.C + c) * P + p;
      out[i] = gamma[c] * (a.d[i] - m) / Math.sqrt(v / M + BN_EPS) + beta[c];
    }
    mean.push(m);
    varU.push(v / (M - 1));
  }
  return { out: { d: out, C: a.C, H: a.H }, mean, varUnbiased: varU };
}

const relu64 = (a: Act): Act => ({ ...a, d: a.d.map((v) => Math.max(v, 0)) });

function maxpool64(a: Act, N: number): Act {
  const OH = Math.floor((a.H + 2 - 3) / 2) + 1, d = new Float64Array(N * a.C * OH * OH);
  for (let nc = 0; nc < N * a.C; nc++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OH; ow++) {
    let m = -Infinity;
    for (let r = 0; r < 3; r++) for (let q = 0; q < 3; q++) {
      const ih = oh * 2 - 1 + r, iw = ow * 2 - 1 + q;
      if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.H) m = Math.max(m, a.d[(nc * a.H + ih) * a.H + iw]);
    }
    d[(nc * OH + oh) * OH + ow] = m;
  }
  return { d, C: a.C, H: OH };
}

/** Mean cross-entropy of the batch, and each batch norm's statistics (by its name). */
function referenceForward(c: ResNetConfig, t: Record<string, Float64Array>, images: ArrayLike<number>, labels: ArrayLike<number>, N: number) {
  const stats: Record<string, { mean: number[]; varUnbiased: number[] }> = {};
  const convBn = (a: Act, spec: { outChannels: number; kernel: number; stride: number; pad: number }, conv: string, bn: string): Act => {
    const z = conv64(a, t[`${conv}.weight`], spec.outChannels, spec.kernel, spec.stride, spec.pad, N);
    const r = bnTrain64(z, t[`${bn}.weight`], t[`${bn}.bias`], N);
    stats[bn] = r;
    return r.out;
  };
  let x: Act = { d: Float64Array.from(images), C: c.inChannels, H: c.imageSize };
  x = relu64(convBn(x, stemSpec(c), "conv1", "bn1"));
  if (c.stem === "imagenet") x = maxpool64(x, N);
  for (const b of blockSpecs(c)) {
    const shortcut = b.downsample ? convBn(x, b.downsample, `${b.prefix}.downsample.0`, `${b.prefix}.downsample.1`) : x;
    const h = relu64(convBn(x, b.conv1, `${b.prefix}.conv1`, `${b.prefix}.bn1`));
    const o = convBn(h, b.conv2, `${b.prefix}.conv2`, `${b.prefix}.bn2`);
    x = relu64({ ...o, d: o.d.map((v, i) => v + shortcut.d[i]) });
  }
  const P = x.H * x.H, C = x.C, W = t["fc.weight"], B = t["fc.bias"];
  let loss = 0;
  for (let n = 0; n < N; n++) {
    const f = Array.from({ length: C }, (_, ch) => { let s = 0; for (let p = 0; p < P; p++) s += x.d[(n * C + ch) * P + p]; return s / P; });
    const z = Array.from({ length: c.classes }, (_, j) => B[j] + f.reduce((s, v, ch) => s + v * W[j * C + ch], 0));
    const m = Math.max(...z);
    loss += m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[labels[n]];
  }
  return { loss: loss / N, stats };
}

// ---------------------------------------------------------------------------------------------
// Gradients

/** (C, N, H, W) → (N, C, H, W). */
function toImageMajor(x: Float32Array, C: number, N: number): Float64Array {
  const P = x.length / (C * N), out = new Float64Array(x.length);
  for (let c = 0; c < C; c++) for (let n = 0; n < N; n++) for (let p = 0; p < P; p++) out[(n * C + c) * P + p] = x[(c * N + n) * P + p];
  return out;
}

const TINY: ResNetConfig[] = [
  { stem: "small", inChannels: 1, imageSize: 12, width: 2, classes: 5 },
  { stem: "imagenet", inChannels: 2, imageSize: 29, width: 2, classes: 3 },
  { stem: "stride2", inChannels: 1, imageSize: 16, width: 2, classes: 4 },
];

function graphWith(be: TrainBackend, c: ResNetConfig, N: number, seed: number) {
  const count = resnetParameters(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const params = be.f32(count), grads = be.f32(count);
  initResNetParams(c, params, seed);
  // Non-trivial batch-norm affine parameters, so that their gradients are exercised.
  const rng = new Rng(seed + 1), w = allocateResNetWeights(c, params);
  for (const p of resnetParameters(c)) {
    if (p.shape.length === 1 && !p.name.startsWith("fc")) {
      if (p.name.endsWith(".weight")) rng.fillUniform(w.tensors[p.name], 0.5, 1.5);
      if (p.name.endsWith(".bias")) rng.fillUniform(w.tensors[p.name], -0.3, 0.3);
    }
  }
  const graph = new ResNetGraph(be, c, params, grads, N);
  rng.fillUniform(graph.input, 0, 1);
  for (let n = 0; n < N; n++) graph.labels[n] = rng.int(c.classes);
  return { params, grads, graph };
}

test("every gradient of ResNet-18 in training mode matches central differences of a float64 forward (every stem, reference and wasm)", async () => {
  const backends: [string, TrainBackend][] = [["reference", referenceTrainBackend],
    ...(await testRuntimes()).slice(1, 2).map((rt): [string, TrainBackend] => [label(rt), trainBackend(rt)])];
  for (const c of TINY) for (const [name, be] of backends) {
    const N = 3, { params, grads, graph } = graphWith(be, c, N, 5);
    const before = Float64Array.from(params);
    const { loss } = graph.forward(true);
    grads.fill(0);
    graph.backward();

    const tensors64 = (flat: Float64Array) => Object.fromEntries(Object.entries(allocateResNetWeights(c, new Float32Array(flat.length)).tensors)
      .map(([k, v]) => [k, flat.subarray(v.byteOffset / 4, v.byteOffset / 4 + v.length)]));
    const flat = Float64Array.from(before), t = tensors64(flat);
    const labels = Array.from(graph.labels), images = toImageMajor(graph.input, c.inChannels, N), ref = referenceForward(c, t, images, labels, N);
    assert.ok(Math.abs(loss / N - ref.loss) < 1e-5 * Math.max(1, ref.loss), `${name} ${c.stem}: loss ${loss / N} vs float64 ${ref.loss}`);

    const g = allocateResNetWeights(c, grads).tensors, rng = new Rng(9);
    let checked = 0, maxAbs = 0;
    const rows: { what: string; got: number; want: number }[] = [];
    for (const p of resnetParameters(c)) {
      if (!parameterRole(p.name).trained) { assert.ok(g[p.name].every((v) => v === 0), `${p.name} has no gradient`); continue; }
      const n = g[p.name].length, picks = n <= 4 ? [...Array(n).keys()] : [0, n - 1, rng.int(n), rng.int(n)];
      for (const i of picks) {
        const h = 1e-6, old = t[p.name][i];
        t[p.name][i] = old + h;
        const up = referenceForward(c, t, images, labels, N).loss;
        t[p.name][i] = old - h;
        const down = referenceForward(c, t, images, labels, N).loss;
        t[p.name][i] = old;
        const want = (up - down) / (2 * h);
        rows.push({ what: `${p.name}[${i}]`, got: g[p.name][i], want });
        maxAbs = Math.max(maxAbs, Math.abs(want));
        checked++;
      }
    }
    for (const r of rows) {
      const err = Math.abs(r.got - r.want);
      assert.ok(err <= 2e-3 * Math.abs(r.want) + 2e-4 * maxAbs,
        `${name} ${c.stem}: d loss / d ${r.what} = ${r.got}, finite differences ${r.want} (max |gradient| ${maxAbs.toExponential(2)})`);
    }
    assert.ok(checked > 100, `checked ${checked} gradients`);
  }
});

test("a training forward updates the running statistics as PyTorch (momentum 0.1, unbiased variance); evaluation leaves them", async () => {
  const c = TINY[0], N = 4, { params, graph } = graphWith(referenceTrainBackend, c, N, 8);
  const t = allocateResNetWeights(c, params).tensors;
  const t64 = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, Float64Array.from(v)]));
  const ref = referenceForward(c, t64, graph.input, Array.from(graph.labels), N);
  graph.forward(true);
  for (const [bn, s] of Object.entries(ref.stats)) {
    const K = s.mean.length;
    assertClose(t[`${bn}.running_mean`], s.mean.map((m, k) => (1 - BN_MOMENTUM) * t64[`${bn}.running_mean`][k] + BN_MOMENTUM * m), 1, 1e-5, `${bn}.running_mean`);
    assertClose(t[`${bn}.running_var`], s.varUnbiased.map((v, k) => (1 - BN_MOMENTUM) * t64[`${bn}.running_var`][k] + BN_MOMENTUM * v),
      Array.from({ length: K }, (_, k) => 1 + s.varUnbiased[k]), 1e-5, `${bn}.running_var`);
  }
  const saved = Float32Array.from(params);
  graph.forward(false);
  assert.deepEqual(params, saved, "an evaluation forward must not change any parameter or statistic");
});

test("evaluation mode agrees with the BN-folded inference network of src/conv/resnet.ts after training steps", async () => {
  const rt = (await testRuntimes())[1], be = trainBackend(rt);
  for (const c of [TINY[0], { ...TINY[0], imageSize: 28, width: 4, classes: 10 }]) {
    const N = 5, { params, grads, graph } = graphWith(be, c, N, 3);
    for (let step = 0; step < 3; step++) {  // running statistics move away from their initial values
      graph.forward(true);
      grads.fill(0);
      graph.backward();
      for (let i = 0; i < params.length; i++) params[i] -= 0.05 * grads[i];
    }
    const { loss, correct } = graph.forward(false);
    const logitsEval = Float32Array.from(graph.logits);
    const net = new ResNet(runtimeBackend(rt), c, allocateResNetWeights(c, Float32Array.from(params)), N);
    const logits = net.forward(graph.input);
    assertClose(logits, logitsEval, 1, 1e-4, `${c.width}-wide ${c.imageSize}×${c.imageSize}: folded inference vs evaluation mode`);
    let folded = 0;
    for (let n = 0; n < N; n++) {
      const row = Array.from(logits.subarray(n * c.classes, (n + 1) * c.classes));
      if (row.indexOf(Math.max(...row)) === graph.labels[n]) folded++;
    }
    assert.equal(folded, correct);
    assert.ok(Number.isFinite(loss));
  }
});

// ---------------------------------------------------------------------------------------------
// Optimiser and schedule

test("SGD step: PyTorch's momentum and weight decay on conv and classifier weights only; running statistics untouched", () => {
  const c: ResNetConfig = { stem: "small", inChannels: 1, imageSize: 8, width: 1, classes: 2 };
  const n = resnetParameters(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const rng = new Rng(4), params = new Float32Array(n), grads = new Float32Array(n), mom = new Float32Array(n);
  rng.fillUniform(params, -1, 1);
  rng.fillUniform(grads, -1, 1);
  rng.fillUniform(mom, -1, 1);
  const p0 = Float32Array.from(params), m0 = Float32Array.from(mom);
  sgdMomentumStep(c, params, grads, mom, 0.1, 0.9, 0.01);
  let at = 0;
  for (const p of resnetParameters(c)) {
    const size = p.shape.reduce((a, b) => a * b, 1), role = parameterRole(p.name);
    assert.equal(role.decayed, p.shape.length === 4 || p.name === "fc.weight", `${p.name} decayed`);
    for (let i = at; i < at + size; i++) {
      if (!role.trained) { assert.equal(params[i], p0[i]); assert.equal(mom[i], m0[i]); continue; }
      const b = 0.9 * m0[i] + grads[i] + (role.decayed ? 0.01 * p0[i] : 0);
      assert.ok(Math.abs(mom[i] - b) < 1e-6 && Math.abs(params[i] - (p0[i] - 0.1 * b)) < 1e-6, `${p.name}[${i - at}]`);
    }
    at += size;
  }
  assert.equal(cosineLr(0.1, 0, 100), 0.1);
  assert.ok(Math.abs(cosineLr(0.1, 50, 100) - 0.05) < 1e-12);
  assert.equal(cosineLr(0.1, 100, 100), 0);
});

test("augmentation shifts by at most 2 pixels with zeros shifted in, flips only when asked; epoch orders are permutations", () => {
  const set: ImageSet = { dataset: "mnist", split: "train", count: 2, images: new Uint8Array(2 * 784), labels: new Uint8Array(2) };
  set.images[14 * 28 + 10] = 255; // one bright pixel in image 0, left of centre
  const out = new Float32Array(784), rng = new Rng(1), seen = new Set<string>();
  for (let t = 0; t < 200; t++) {
    augmentedBatch(out, set, [0], rng, false);
    const at = out.findIndex((v) => v === 1), y = Math.floor(at / 28), x = at % 28;
    assert.equal(out.reduce((s, v) => s + v, 0), 1, "exactly the one pixel survives");
    assert.ok(Math.abs(y - 14) <= MAX_SHIFT && Math.abs(x - 10) <= MAX_SHIFT, `shifted to (${y}, ${x})`);
    seen.add(`${y},${x}`);
  }
  assert.equal(seen.size, 25, "every shift in [−2, 2]² occurs");
  let flipped = 0;
  for (let t = 0; t < 200; t++) {
    augmentedBatch(out, set, [0], rng, true);
    if (out.findIndex((v) => v === 1) % 28 > 14) flipped++;
  }
  assert.ok(flipped > 60 && flipped < 140, `${flipped} of 200 mirrored`);
  const order = epochOrder(1000, 1, 0);
  assert.deepEqual(Array.from(order).sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  assert.notDeepEqual(order, epochOrder(1000, 1, 1));
  assert.deepEqual(order, epochOrder(1000, 1, 0));
});

// ---------------------------------------------------------------------------------------------
// Training runs on MNIST

const mnist = { train: loadImageSet("mnist", "train"), test: loadImageSet("mnist", "test") };
const SMALL = resnet18Small(4);
const RECIPE: CnnTrainOptions = { ...CNN_TRAIN_DEFAULTS, batch: 32, seed: 3 };

test("a tiny run on 512 MNIST digits lowers the loss clearly and its saved model infers through the folded network", async () => {
  const rt = (await testRuntimes())[1], out = join(tmp, "tiny.safetensors"), losses: number[] = [];
  const result = await trainCnn(rt, { config: SMALL, options: { ...RECIPE, lr: 0.2 }, epochs: 3, out, maxImages: 512, maxTest: 500 }, mnist, {
    onBatch: (b) => losses.push(b.loss),
  });
  const first = losses.slice(0, 4).reduce((a, b) => a + b) / 4, last = losses.slice(-4).reduce((a, b) => a + b) / 4;
  assert.ok(first > 2 && last < 0.6 * first, `mean loss of the first 4 batches ${first.toFixed(3)}, of the last 4 ${last.toFixed(3)}`);
  assert.ok(result.testAccuracy! > 0.4, `test accuracy ${result.testAccuracy} (chance: 0.1)`);
  const model = await loadResNet(out);
  assert.equal(model.notes.epoch, "3");
  assert.equal(inferenceAccuracy(rt, model, mnist.test, 500, 50), result.testAccuracy, "folded inference = evaluation mode");
});

test("stopping mid-epoch and resuming gives the same weights, momentum and model as an uninterrupted run", async () => {
  const rt = (await testRuntimes())[1];
  const run = (out: string) => ({ config: SMALL, options: RECIPE, epochs: 2, out, maxImages: 160, maxTest: 64 });
  const straight = join(tmp, "straight.safetensors"), interrupted = join(tmp, "interrupted.safetensors");
  const a = await trainCnn(rt, run(straight), mnist);
  const full = Float32Array.from(a.params);
  // Stop after the 3rd of 5 batches of epoch 2, then resume twice over: from the mid-epoch state.
  let batches = 0;
  const b = await trainCnn(rt, run(interrupted), mnist, { onBatch: () => { batches++; }, stopRequested: () => batches === 8 });
  assert.equal(b.stopped, true);
  assert.equal(b.epoch, 1);
  const saved = await loadCnnResumable(cnnResumePath(interrupted));
  assert.deepEqual([saved.state.epoch, saved.state.position], [1, 3]);
  const c = await trainCnn(rt, { ...run(interrupted), resume: saved }, mnist);
  assert.equal(c.stopped, false);
  assert.deepEqual(c.params, full, "resumed weights differ from the uninterrupted run's");
  assert.deepEqual((await loadCnnResumable(cnnResumePath(interrupted))).momentum, (await loadCnnResumable(cnnResumePath(straight))).momentum);
  assert.deepEqual((await loadResNet(interrupted)).weights.flat, (await loadResNet(straight)).weights.flat);
  await assert.rejects(trainCnn(rt, { ...run(interrupted), options: { ...RECIPE, lr: 0.1 }, resume: saved }, mnist),
    /cannot resume: the checkpoint has lr 0.05, this run 0.1/);
  await assert.rejects(trainCnn(rt, { ...run(interrupted), maxImages: 10 }, mnist), /10 training images are fewer than one batch of 32/);
});

// ---------------------------------------------------------------------------------------------
// Command line

test("dmi train cnn: clear errors for bad options, a missing directory or resume state", async () => {
  const out = join(tmp, "cli.safetensors");
  const cases: [string[], RegExp][] = [
    [["--dataset", "mnist", "--width", "4", "--epochs", "1"], /--out FILE is required/],
    [["--dataset", "cifar", "--width", "4", "--epochs", "1", "--out", out], /--dataset must be one of mnist, fashion-mnist, got "cifar"/],
    [["--dataset", "mnist", "--width", "0", "--epochs", "1", "--out", out], /--width must be an integer ≥ 1, got "0"/],
    [["--dataset", "mnist", "--width", "4", "--out", out], /--epochs is required/],
    [["--dataset", "mnist", "--width", "4", "--epochs", "1", "--lr", "fast", "--out", out], /--lr must be a number ≥ 0, got "fast"/],
    [["--dataset", "mnist", "--width", "4", "--epochs", "1", "--dtype", "f8", "--out", out], /--dtype must be f32 or f16/],
    [["--dataset", "mnist", "--width", "4", "--epochs", "1", "--out", join(tmp, "no/such/dir/m.safetensors")], /directory .* does not exist/],
    [["--dataset", "mnist", "--width", "4", "--epochs", "1", "--resume", "--out", out], /--resume: .*cli\.resume\.safetensors does not exist/],
    [["--dataset", "mnist", "--width", "4", "--epochs", "1", "--bogus", "--out", out], /Unknown option '--bogus'/],
  ];
  for (const [args, pattern] of cases) await assert.rejects(trainCnnCli(args), pattern, args.join(" "));
});
