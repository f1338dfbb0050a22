// `dmi bench dual-cnn`: the dual-module ResNet-18 against the dense one at batch 1 on MNIST or
// Fashion-MNIST digits: operations (dense, big, little at their precision, projection additions),
// achieved insensitive ratios, top-1 of both and how often they agree, and wall-clock per image
// (dense and dual timed in interleaved rounds, repeated to show the machine's noise), with where
// the dual module's time goes. Weights from a checkpoint (`dmi train cnn`), or random (He init,
// random batch norms: then top-1 means nothing and the rows say "random").
import { parseArgs } from "node:util";
import { Runtime } from "../runtime/runtime.js";
import { ResNet, type ResNetConfig, type ResNetWeights, describe, randomResNetWeights, resnet18Small } from "../cnn/resnet.js";
import { loadResNet } from "../cnn/checkpoint.js";
import { DualResNet } from "../cnn/dual.js";
import { type ConvBits, type ConvProjection, type DualProfile, type InsensitiveOutput, emptyDualProfile, runtimeDualBackend } from "../dual/conv.js";
import { IMAGE_DATASETS, IMAGE_SIZE, type ImageDataset, type ImageSet, imagesToFloat, loadImageSet } from "../data/images.js";
import { writeFileAtomic } from "../io/files.js";
import { formatTable, median, timeInterleaved } from "./stats.js";
import { integer, numbers } from "../cli/args.js";

export interface DualCnnRow {
  model: string; weights: "random" | "checkpoint"; dataset: ImageDataset; width: number;
  projection: ConvProjection; k: number[]; bits: number; mode: InsensitiveOutput; threads: number;
  ratio: number; achieved_ratio: number; achieved_min: number; achieved_max: number;
  top1: number; top1_dense: number; agreement: number;
  macs_dense: number; macs_big: number; macs_little: number; macs_little_fp32eq: number; projection_adds: number;
  ops_reduction_fp32eq: number; ops_reduction_fp32eq_no_projection: number;
  /** Medians of the repeats' per-image medians; the spread of the repeats says how noisy the machine was. */
  dense_ms: number; dual_ms: number; dense_ms_repeats: number[]; dual_ms_repeats: number[];
  profile_ms: DualProfile;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      checkpoint: { type: "string" }, width: { type: "string", default: "16" }, dataset: { type: "string", default: "mnist" },
      projection: { type: "string", default: "channel" }, k: { type: "string" }, bits: { type: "string", default: "8" },
      modes: { type: "string", default: "zero,little" }, ratios: { type: "string", default: "0.5,0.7,0.9" },
      fit: { type: "string", default: "200" }, calibrate: { type: "string", default: "100" }, test: { type: "string", default: "500" },
      timed: { type: "string", default: "30" }, rounds: { type: "string", default: "3" }, repeats: { type: "string", default: "3" },
      threads: { type: "string", default: "1" }, json: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(`dmi bench dual-cnn [--checkpoint FILE | --width 16] [--dataset mnist] [--projection channel|patch] [--k K]
                   [--bits 8|4] [--modes zero,little] [--ratios 0.5,0.7,0.9] [--fit 200] [--calibrate 100]
                   [--test 500] [--timed 30] [--rounds 3] [--repeats 3] [--threads 1] [--json FILE]
  Dual-module ResNet-18 (28×28 stem) against the dense one, batch 1. Little modules fitted on the
  first --fit training images, thresholds calibrated per layer on the next --calibrate, measured on
  the first --test test images. Without --checkpoint the weights are random (width --width).
  Timing: dense and dual alternate on --timed images for --rounds rounds; the per-image median is
  taken --repeats times (their spread shows the machine's noise).
  --k: projected dimension (default: Johnson–Lindenstrauss for K points, capped at C·R·S).`);
    return;
  }
  const dataset = values.dataset as ImageDataset;
  if (!IMAGE_DATASETS.includes(dataset)) throw new Error(`--dataset: ${values.dataset} must be one of ${IMAGE_DATASETS.join(", ")}`);
  const projection = values.projection as ConvProjection;
  if (projection !== "channel" && projection !== "patch") throw new Error(`--projection: ${projection} must be channel or patch`);
  const bits = integer("bits", values.bits, 4) as ConvBits;
  if (bits !== 8 && bits !== 4) throw new Error(`--bits: ${bits} must be 8 or 4`);
  const modes = values.modes.split(",") as InsensitiveOutput[];
  for (const m of modes) if (m !== "zero" && m !== "little") throw new Error(`--modes: ${m} must be zero or little`);
  const ratios = numbers(values.ratios, "ratios")!;
  for (const r of ratios) if (!(r >= 0 && r < 1)) throw new Error(`--ratios: ${r} must be in [0, 1)`);
  const k = values.k === undefined ? undefined : integer("k", values.k, 1);
  const counts = { fit: integer("fit", values.fit, 1), calibrate: integer("calibrate", values.calibrate, 1), test: integer("test", values.test, 1),
    timed: integer("timed", values.timed, 1), rounds: integer("rounds", values.rounds, 1), repeats: integer("repeats", values.repeats, 1) };
  const threads = integer("threads", values.threads, 1);

  let config: ResNetConfig, weights: ResNetWeights;
  if (values.checkpoint) ({ config, weights } = await loadResNet(values.checkpoint));
  else { config = resnet18Small(integer("width", values.width, 1)); weights = randomResNetWeights(config, 1); }
  if (config.inChannels !== 1 || config.imageSize !== IMAGE_SIZE) {
    throw new Error(`${describe(config)} does not take ${IMAGE_SIZE}×${IMAGE_SIZE} grayscale images; use a checkpoint of the 28×28 stem`);
  }

  const train = loadImageSet(dataset, "train"), test = loadImageSet(dataset, "test");
  if (counts.fit + counts.calibrate > train.count || counts.test > test.count) throw new Error("not enough images for --fit, --calibrate and --test");
  const images = (set: ImageSet, from: number, n: number) =>
    Array.from({ length: n }, (_, i) => imagesToFloat(new Float32Array(IMAGE_SIZE * IMAGE_SIZE), set, [from + i]));
  const fitImages = images(train, 0, counts.fit), calImages = images(train, counts.fit, counts.calibrate);
  const testImages = images(test, 0, counts.test), labels = test.labels.subarray(0, counts.test);

  const rt = await Runtime.create({ threads });
  const rows: DualCnnRow[] = [];
  try {
    const be = runtimeDualBackend(rt);
    const net = new DualResNet(be, config, weights, { projection, k, bits });
    const started = performance.now();
    const fit = net.fit(fitImages);
    console.error(`${describe(config)}, ${values.checkpoint ? values.checkpoint : "random weights"}; ${rt.variant} build, ${threads} thread(s)`);
    console.error(`fit on ${counts.fit} images in ${((performance.now() - started) / 1000).toFixed(1)} s; k per layer ${fit.map((f) => f.k).join(",")}; `
      + `train 1 − R² ${fit.map((f) => f.relativeError.toFixed(3)).join(" ")}`);
    const dense = net.dense;
    const denseTop = testImages.map((x) => argmax(dense.forward(x)));
    const top1Dense = accuracy(denseTop, labels);
    for (const mode of modes) {
      net.mode = mode;
      for (const ratio of ratios) {
        const achieved = net.calibrate(calImages, ratio);
        const dualTop = testImages.map((x) => argmax(net.forward(x)));
        const report = net.report();
        net.resetCounts();
        const { denseMs, dualMs, profile } = await timing(net, dense, testImages.slice(0, counts.timed), counts);
        rows.push({
          model: "resnet18", weights: values.checkpoint ? "checkpoint" : "random", dataset, width: config.width,
          projection, k: report.layers.map((l) => l.k), bits, mode, threads, ratio,
          achieved_ratio: report.insensitiveRatio,
          achieved_min: Math.min(...report.layers.map((l) => l.insensitiveRatio)),
          achieved_max: Math.max(...report.layers.map((l) => l.insensitiveRatio)),
          top1: accuracy(dualTop, labels), top1_dense: top1Dense, agreement: accuracy(dualTop, denseTop),
          macs_dense: report.macsDenseNetwork, macs_big: report.macsBig + report.macsDenseOnly, macs_little: report.macsLittle,
          macs_little_fp32eq: report.macsLittleFp32eq, projection_adds: report.projectionAdds,
          ops_reduction_fp32eq: report.opsReductionFp32eq, ops_reduction_fp32eq_no_projection: report.opsReductionFp32eqNoProjection,
          dense_ms: median(denseMs), dual_ms: median(dualMs), dense_ms_repeats: denseMs, dual_ms_repeats: dualMs, profile_ms: profile,
        });
        console.error(`${mode} ${ratio}: calibrated ${Math.min(...achieved).toFixed(3)}–${Math.max(...achieved).toFixed(3)}, done`);
      }
    }
  } finally {
    await rt.close();
  }
  console.log(formatRows(rows));
  if (values.json) await writeFileAtomic(values.json, new TextEncoder().encode(JSON.stringify(rows, null, 1) + "\n"));
}

async function timing(net: DualResNet, dense: ResNet, images: Float32Array[], o: { rounds: number; repeats: number }):
    Promise<{ denseMs: number[]; dualMs: number[]; profile: DualProfile }> {
  const denseMs: number[] = [], dualMs: number[] = [];
  for (let r = 0; r < o.repeats; r++) {
    const [d, u] = await timeInterleaved([
      { run: (i) => dense.forward(images[i % images.length]) },
      { run: (i) => net.forward(images[i % images.length]) },
    ], { warmup: 3, rounds: o.rounds * images.length });
    denseMs.push(d); dualMs.push(u);
  }
  const profile = emptyDualProfile();
  for (const x of images) net.forward(x, profile);
  for (const key of Object.keys(profile) as (keyof DualProfile)[]) profile[key] /= images.length;
  net.resetCounts();
  return { denseMs, dualMs, profile };
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function accuracy(predicted: number[], truth: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === truth[i]) n++;
  return n / predicted.length;
}

function formatRows(rows: DualCnnRow[]): string {
  const m = (v: number) => (v / 1e6).toFixed(2);
  const spread = (a: number[]) => `${Math.min(...a).toFixed(2)}–${Math.max(...a).toFixed(2)}`;
  return formatTable(
    ["mode", "weights", "ratio", "achieved (min–max)", "top1", "dense top1", "agree", "MMAC dense", "big", "little", "little fp32eq", "proj adds",
      "ops red.", "no proj", "dense ms", "dual ms", "speedup", "dense range", "dual range",
      "im2row", "little", "select", "big ms", "rest", "dense parts"],
    rows.map((r) => [
      r.mode, r.weights, r.ratio.toFixed(2), `${r.achieved_ratio.toFixed(3)} (${r.achieved_min.toFixed(2)}–${r.achieved_max.toFixed(2)})`,
      r.top1.toFixed(4), r.top1_dense.toFixed(4), r.agreement.toFixed(3),
      m(r.macs_dense), m(r.macs_big), m(r.macs_little), m(r.macs_little_fp32eq), m(r.projection_adds),
      r.ops_reduction_fp32eq.toFixed(2), r.ops_reduction_fp32eq_no_projection.toFixed(2),
      r.dense_ms.toFixed(2), r.dual_ms.toFixed(2), (r.dense_ms / r.dual_ms).toFixed(2), spread(r.dense_ms_repeats), spread(r.dual_ms_repeats),
      r.profile_ms.im2row.toFixed(2), r.profile_ms.little.toFixed(2), r.profile_ms.select.toFixed(2), r.profile_ms.big.toFixed(2),
      r.profile_ms.rest.toFixed(2), r.profile_ms.dense.toFixed(2),
    ]), 4);
}
