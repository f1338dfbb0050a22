// `dmi bench cnn`: per-image time at batch 1 of our dense ResNet-18 against onnxruntime-node's on the
// same weights, in one process, at the 28×28×1 shape of the trained models and at ImageNet's
// 224×224×3, and where our time goes (im2col, GEMM, the rest: bias/ReLU/residual, pooling, head).
// Weights are random (He initialisation, random batch-norm statistics): the timings do not depend
// on their values, and no trained ImageNet weights can be had here. Inputs are real images: MNIST
// test digits, upscaled ×8 and repeated over three channels for the ImageNet shape.
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { Runtime } from "../runtime/runtime.js";
import { runtimeBackend, type ConvProfile } from "../conv/layers.js";
import { ResNet, type ResNetConfig, describe, randomResNetWeights, resnet18ImageNet, resnet18Small } from "../conv/resnet.js";
import { OrtPeer } from "../onnx/peer.js";
import { logitsDifference, resnetModel } from "../conv/onnx.js";
import { imageAsInput, loadImageSet } from "../data/images.js";
import { writeFileAtomic } from "../io/files.js";
import { timeMedian } from "../util/timing.js";
import { formatTable } from "../util/table.js";
import { numbers } from "./args.js";
import { Rng } from "../util/random.js";
import { type SensitiveGrouping, patchGeometry } from "../kernels/conv.js";

export interface CnnBenchRow {
  model: "resnet18"; input: string; width: number; threads: number; weights: "random";
  macs: number; dense_ms: number; ort_ms: number;
  im2col_ms: number; gemm_ms: number; rest_ms: number;
  /** max |ours − ort| / max |ort| over the logits of the timed images. */
  max_rel_diff: number;
}

const WARMUP = 3;
const IMAGES = 8; // distinct inputs, cycled through

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: "string", default: "28,224" }, width: { type: "string", default: "64" },
      threads: { type: "string", default: "1,2" }, reps: { type: "string", default: "20" },
      sparse: { type: "boolean" }, json: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(`dmi bench cnn [--size 28,224] [--width 64] [--threads 1,2] [--reps 20] [--sparse] [--json FILE]
  28:  ResNet-18 with the 3×3 stem on 28×28×1 (MNIST digits), 10 classes
  224: torchvision's ResNet-18 on 224×224×3 (MNIST digits upscaled), 1000 classes
  Random weights; batch 1; median of --reps images after ${WARMUP} warm-up runs.
  --sparse: instead, one 3×3 convolution per stage of the 28×28 network, dense (im2col + GEMM)
  against the big module computing only sensitive outputs (im2row + convSensitive) at several
  insensitive ratios, with uniformly random masks (real masks are spatially correlated), its outputs
  grouped by channel and by position (see convSensitive).`);
    return;
  }
  const sizes = numbers(values.size, "size")!;
  for (const s of sizes) if (s !== 28 && s !== 224) throw new Error(`--size: ${s} must be 28 or 224`);
  const [width] = numbers(values.width, "width")!;
  if (!Number.isInteger(width) || width < 1) throw new Error(`--width: ${width} must be a positive integer`);
  const threads = numbers(values.threads, "threads")!;
  const reps = Number(values.reps);
  if (!Number.isInteger(reps) || reps < 3) throw new Error("--reps must be an integer ≥ 3");

  const rt = await Runtime.create({ threads: Math.max(...threads) });
  if (values.sparse) {
    try {
      const sparseRows = [];
      for (const t of threads) { rt.pool.active = t; sparseRows.push(...(await benchSparse(rt, width, t, reps))); }
      console.log(formatSparse(sparseRows));
      if (values.json) await writeFileAtomic(values.json, new TextEncoder().encode(JSON.stringify(sparseRows, null, 1) + "\n"));
    } finally {
      await rt.close();
    }
    return;
  }
  console.error(`dmi bench cnn: ${rt.variant} build, up to ${rt.threads} threads; random weights; batch 1; median of ${reps}`);
  const digits = loadImageSet("mnist", "test");
  const rows: CnnBenchRow[] = [];
  try {
    for (const size of sizes) {
      const config = size === 28 ? resnet18Small(width) : resnet18ImageNet(width);
      const images = Array.from({ length: IMAGES }, (_, i) => imageAsInput(digits, i, config.inChannels, config.imageSize));
      rows.push(...(await benchConfig(rt, config, images, threads, reps)));
    }
  } finally {
    await rt.close();
  }
  console.log(formatRows(rows));
  if (values.json) await writeFileAtomic(values.json, new TextEncoder().encode(JSON.stringify(rows, null, 1) + "\n"));
}

async function benchConfig(rt: Runtime, config: ResNetConfig, images: Float32Array[], threads: number[],
                           reps: number): Promise<CnnBenchRow[]> {
  const weights = randomResNetWeights(config, 1);
  const net = new ResNet(runtimeBackend(rt), config, weights);
  const input = `${config.inChannels}x${config.imageSize}x${config.imageSize}`;
  const rows: CnnBenchRow[] = [];
  for (const t of threads) {
    rt.pool.active = t;
    const peer = await OrtPeer.create(resnetModel(config, weights), t);
    try {
      const maxRelDiff = await logitsDifference(peer, (x) => net.forward(x), images);
      // onnxruntime's threads spin after a run and would slow ours: it is timed in a block of its
      // own, and ours start once its threads have gone idle.
      let n = 0;
      const ortMs = await timeMedian(() => peer.run({ images: images[n++ % IMAGES] }), { warmup: WARMUP, reps });
      await sleep(1000);
      n = 0;
      const denseMs = await timeMedian(() => net.forward(images[n++ % IMAGES]), { warmup: WARMUP, reps });
      // The breakdown, from separate runs: a profile adds a clock read between kernels.
      const profile: ConvProfile = { im2col: 0, gemm: 0, rest: 0 };
      for (let i = 0; i < reps; i++) net.forward(images[i % IMAGES], profile);
      rows.push({
        model: "resnet18", input, width: config.width, threads: t, weights: "random", macs: net.macs,
        dense_ms: denseMs, ort_ms: ortMs, im2col_ms: profile.im2col / reps, gemm_ms: profile.gemm / reps,
        rest_ms: profile.rest / reps, max_rel_diff: maxRelDiff,
      });
      console.error(`${describe(config)}, ${t} thread(s): ours ${denseMs.toFixed(2)} ms, ort ${ortMs.toFixed(2)} ms`);
    } finally {
      await peer.release();
    }
  }
  rt.pool.active = rt.threads;
  return rows;
}

function formatRows(rows: CnnBenchRow[]): string {
  const gmacs = (macs: number, ms: number) => (macs / ms / 1e6).toFixed(1);
  return formatTable(
    ["input", "width", "threads", "GMAC", "ours ms", "ort ms", "x ort", "ours GMAC/s", "ort GMAC/s", "im2col ms", "gemm ms", "rest ms", "max rel diff"],
    rows.map((r) => [
      r.input, r.width, r.threads, (r.macs / 1e9).toFixed(3), r.dense_ms.toFixed(2), r.ort_ms.toFixed(2),
      (r.dense_ms / r.ort_ms).toFixed(2), gmacs(r.macs, r.dense_ms), gmacs(r.macs, r.ort_ms),
      r.im2col_ms.toFixed(2), r.gemm_ms.toFixed(2), r.rest_ms.toFixed(2), r.max_rel_diff.toExponential(1),
    ]), 1);
}

// ---------------------------------------------------------------------------------------------
// --sparse: what skipping outputs saves in one convolution

export interface SparseBenchRow {
  stage: number; C: number; K: number; H: number; threads: number; ratio: number; masks: "uniform random"; grouping: SensitiveGrouping;
  dense_ms: number; im2row_ms: number; sensitive_ms: number; macs_dense: number; macs_sensitive: number;
}

const SPARSE_RATIOS = [0, 0.5, 0.67, 0.8, 0.9];

/** The second 3×3 convolution of each stage's first block, at 28×28 input: C = K = width·2^s. */
async function benchSparse(rt: Runtime, width: number, threads: number, reps: number): Promise<SparseBenchRow[]> {
  const rng = new Rng(3), rows: SparseBenchRow[] = [];
  for (let s = 0; s < 4; s++) {
    const C = width << s, K = C, H = Math.ceil(28 / 2 ** s), g = patchGeometry(C, H, H, 3, 1, 1);
    const P = g.OH * g.OW, CRS = 9 * C;
    const x = rt.heap.f32(C * H * H), w = rt.heap.f32(K * CRS), bias = rt.heap.f32(K);
    rng.fillUniform(x, 0, 1); rng.fillUniform(w, -0.05, 0.05);
    const cols = rt.heap.f32(CRS * P), patches = rt.heap.f32(P * CRS), y = rt.heap.f32(K * P), idx = rt.heap.i32(K * P);
    const opts = { warmup: WARMUP, reps };
    const dense = await timeMedian(() => { rt.kernels.im2col(cols, x, g); rt.kernels.gemm(y, w, cols, K, P, CRS, false, false, false); }, opts);
    const im2row = await timeMedian(() => rt.kernels.im2row(patches, x, g), opts);
    for (const ratio of SPARSE_RATIOS) {
      let count = 0;
      for (let i = 0; i < K * P; i++) if (rng.uniform() >= ratio) idx[count++] = i;
      for (const grouping of ["channel", "position"] as const) {
        const sensitive = await timeMedian(() => rt.kernels.convSensitive(y, w, patches, bias, idx, count, K, P, CRS, grouping), opts);
        rows.push({ stage: s + 1, C, K, H, threads, ratio, masks: "uniform random", grouping, dense_ms: dense, im2row_ms: im2row,
          sensitive_ms: sensitive, macs_dense: K * P * CRS, macs_sensitive: count * CRS });
      }
    }
    for (const a of [x, w, bias, cols, patches, y]) rt.heap.release(a);
    rt.heap.release(idx);
  }
  return rows;
}

function formatSparse(rows: SparseBenchRow[]): string {
  return formatTable(
    ["stage", "C=K", "H=W", "threads", "ratio", "grouping", "dense ms", "im2row ms", "sparse ms", "x dense", "dense GMAC/s", "sparse GMAC/s"],
    rows.map((r) => [
      r.stage, r.C, r.H, r.threads, r.ratio.toFixed(2), r.grouping, r.dense_ms.toFixed(3), r.im2row_ms.toFixed(3), r.sensitive_ms.toFixed(3),
      (r.dense_ms / (r.im2row_ms + r.sensitive_ms)).toFixed(2), (r.macs_dense / r.dense_ms / 1e6).toFixed(1),
      r.macs_sensitive ? (r.macs_sensitive / r.sensitive_ms / 1e6).toFixed(1) : "-",
    ]), 0);
}
