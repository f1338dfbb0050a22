// `dmi eval cnn`: the dual-module ResNet-18 against the dense one and onnxruntime-node's, batch 1, on
// MNIST or Fashion-MNIST test images:
//   accuracy:    top-1 of both, and how often they agree;
//   operations:  dense, big, little at its precision and in FP32 equivalents, projection additions,
//                and the achieved insensitive ratio of every layer;
//   wall-clock:  per image at each thread count, dense and dual timed in interleaved rounds
//                (repeated, to show the machine's noise), onnxruntime in a block of its own, and where
//                the dual module's time goes;
//   figures:     the paper's Figures 3 and 4 for one layer (--figures DIR).
// Weights from a checkpoint (`dmi train cnn`), an ONNX ResNet-18, or random (He init, random batch
// norms: then top-1 means nothing and the rows say "random"). Images from MNIST, Fashion-MNIST, or
// folders of the user's PNG/JPEG files (--images, --fit-images: src/data/image-folder.ts).
import { parseArgs } from "node:util";
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import { Runtime } from "../runtime/runtime.js";
import { type ResNetConfig, type ResNetWeights, randomResNetWeights, describe, resnet18ImageNet, resnet18Small } from "../conv/resnet.js";
import { loadResNet } from "../conv/checkpoint.js";
import { loadResNetOnnx } from "../conv/import-onnx.js";
import { DualResNet } from "../conv/dual.js";
import { type ConvBits, type ConvPredictor, type ConvProjection, type DualProfile, PREDICTOR_BITS, type InsensitiveOutput, type LittleConvOptions,
  runtimeDualBackend } from "../conv/dual-conv.js";
import { loadDualResNet } from "../conv/dual-checkpoint.js";
import type { LayerCurve } from "../conv/allocate.js";
import { accuracy, chooseOperatingPoint, greedyRatios, predict, timeDenseAndDual, timeOrt } from "../conv/eval.js";
import { IMAGE_DATASETS, type ImageDataset, imageSetSource, loadImageSet } from "../data/images.js";
import { type ImageInputOptions, type ImageSource, openImageFolder } from "../data/image-folder.js";
import { writeFileAtomic } from "../io/files.js";
import { median } from "../util/timing.js";
import { formatTable } from "../util/table.js";
import { featureMapsSpec, outputHistogramSpec, type FeatureMap } from "../plot/figures.js";
import { renderPng } from "../plot/render.js";
import { integer, numbers, optionalInteger } from "./args.js";

/** One (mode, ratio, threads) operating point. The first fields are the schema; MACs are per image. */
export interface CnnEvalRow {
  /** A built-in data set's name, or the --images folder. */
  model: string; dataset: string; ratio: number; achieved_ratio: number; top1: number; top1_dense: number;
  /** Dense network; big module plus the dense-only parts (stem, shortcuts, classifier); little module at its precision. */
  macs_dense: number; macs_big: number; macs_little: number;
  /** macs_dense / (macs_big + macs_little · bits/32 + projection additions). */
  ops_reduction_fp32eq: number;
  dense_ms: number; dual_ms: number; ort_ms: number | null; threads: number;
  weights: "random" | "checkpoint"; width: number; mode: InsensitiveOutput; allocation: "uniform" | "greedy"; predictor: ConvPredictor; projection: ConvProjection; k: number[]; bits: number;
  achieved_per_layer: { name: string; ratio: number }[];
  test_images: number; agreement: number;
  macs_little_fp32eq: number; projection_adds: number; ops_reduction_fp32eq_no_projection: number;
  /** Per-image medians of each repeat (dense_ms and dual_ms are their medians): their spread is the machine's noise. */
  dense_ms_repeats: number[]; dual_ms_repeats: number[];
  /** Where the dual network's time goes, per image (separate runs: a profile reads the clock between kernels). */
  profile_ms: DualProfile;
  /** The images top1, top1_dense and agreement were measured on: the test set, or (--validation) held-out training images. */
  scored_on: "test" | "validation";
  /** With --validation: the operating point chosen on validation, its one row scored on the test set. */
  chosen: boolean;
}

const HELP = `dmi eval cnn [--checkpoint FILE | --onnx FILE | --dual FILE | --width 16 --size 28] [--dataset D | --images DIR [--fit-images DIR]]
             [--resize N] [--mean M[,M,M]] [--std S[,S,S]] [--modes zero,little] [--ratios 0.5,0.7,0.8,0.9]
             [--predictor projection|seernet] [--projection channel|patch] [--k K] [--bits 8|4|2] [--fit 200] [--calibrate 200] [--test N]
             [--validation N] [--max-drop 0.5] [--threads 1,2] [--timed 30] [--rounds 3] [--repeats 3] [--json FILE]
             [--figures DIR] [--figure-layer layer1.0.conv1] [--figure-ratio 0.8]
  Dual-module ResNet-18 (28×28 stem) against the dense network and onnxruntime-node's, batch 1.
  Little modules are fitted on the first --fit training images, thresholds calibrated per layer on
  the next --calibrate training images, and top-1 measured on the first --test test images (default
  all; they are held in memory, at most 1 GiB). --dataset defaults to the checkpoint's. Without --checkpoint the weights are random, and
  --size 224 takes torchvision's ResNet-18 at ImageNet's shape (224×224×3, 1000 classes), fed the
  digits upscaled and repeated over three channels (for operations and timing; top-1 means nothing).
  --onnx: a torchvision ResNet-18 exported by torch.onnx.export (Conv, BatchNormalization or folded
  biases, Relu, MaxPool, Add, GlobalAveragePool, Flatten, Gemm), its input shape taken from the graph.
  --images DIR: your own PNG/JPEG images in torchvision's ImageFolder layout, DIR/<class>/<image>,
  classes sorted by folder name (one per classifier output), scored instead of --dataset's test set;
  the little modules are fitted and calibrated on --fit-images (same layout, e.g. your train split;
  default DIR itself). Images are taken in a fixed shuffled order, converted to the network's channels
  (RGB, or PIL's luma for grey), and must have its input size unless --resize N: torchvision's
  Resize(N) (PIL bilinear) then CenterCrop. --mean, --std: torchvision's Normalize, per channel
  (e.g. ImageNet's --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225); default: pixels in [0, 1].
  --validation N: the N training images after the fit and calibration ones score every (mode, ratio)
  point instead of the test set; the point with the largest FP32-equivalent operation reduction within
  --max-drop points of dense top-1 there is chosen, and only it is scored on the test set (one row).
  --dual: a network saved by \`dmi fit cnn\`, at its saved mode and ratio (no fit, no calibration).
  Insensitive outputs are 0 (mode "zero") or the ReLU of the little module's estimate ("little").
  Timing per thread count: dense and dual alternate on --timed test images for --rounds rounds, the
  per-image median taken --repeats times; onnxruntime (same weights) in a block of its own.
  --figures: Figure 3 (histogram of a layer's pre-activations, big vs little) and Figure 4 (its
  feature maps, big vs little, and which outputs are sensitive) at --figure-ratio, as PNG.
  --k: projected dimension (default: Johnson–Lindenstrauss for K points, capped at C·R·S).
  --predictor seernet: the little module is the big convolution with its weights quantized to
  --bits 4 (default) or 2 and its input to INT8 (SeerNet): no projection, no fit. The paper's
  projection + fitted little weights take --bits 8 (default) or 4.
  --allocation greedy: instead of every layer at the ratio, a ratio per layer with the same big-module
  operations, allocated by each layer's measured damage (KL from dense, that layer alone dual) on the
  calibration images.`;

/** At most this many bytes of scored images (floats) are held: 1 GiB is 1783 images of 3×224×224. */
const HELD_IMAGE_BYTES = 2 ** 30;

/** The options of `eval cnn` and `fit cnn` that choose the network, its images and the little modules. */
export const NETWORK_OPTIONS = {
  checkpoint: { type: "string" }, onnx: { type: "string" }, width: { type: "string", default: "16" }, size: { type: "string" }, dataset: { type: "string" },
  images: { type: "string" }, "fit-images": { type: "string" }, resize: { type: "string" }, mean: { type: "string" }, std: { type: "string" },
  predictor: { type: "string", default: "projection" }, projection: { type: "string", default: "channel" }, k: { type: "string" }, bits: { type: "string" },
  fit: { type: "string", default: "200" }, calibrate: { type: "string", default: "200" },
} as const;

type NetworkValues = { [K in keyof typeof NETWORK_OPTIONS]?: string };

/** A ResNet to make dual, its images, and the little-module options, from NETWORK_OPTIONS. */
export interface OpenedNetwork {
  config: ResNetConfig; weights: ResNetWeights; model: string; weightsKind: "random" | "checkpoint"; dataset: string;
  little: LittleConvOptions; fitImages: Float32Array[]; calImages: Float32Array[]; train: ImageSource; test: ImageSource;
}

export async function openNetwork(values: NetworkValues): Promise<OpenedNetwork> {
  const projection = values.projection as ConvProjection;
  if (projection !== "channel" && projection !== "patch") throw new Error(`--projection: ${projection} must be channel or patch`);
  const predictor = values.predictor as ConvPredictor;
  if (!(predictor in PREDICTOR_BITS)) throw new Error(`--predictor: ${predictor} must be projection or seernet`);
  const bits = integer("bits", values.bits, 2, PREDICTOR_BITS[predictor][0]) as ConvBits;
  if (!PREDICTOR_BITS[predictor].includes(bits)) throw new Error(`--bits: ${bits} must be ${PREDICTOR_BITS[predictor].join(" or ")} with --predictor ${predictor}`);
  const k = values.k === undefined ? undefined : integer("k", values.k, 1);
  const fit = integer("fit", values.fit, 1), calibrate = integer("calibrate", values.calibrate, 1);
  let config: ResNetConfig, weights: ResNetWeights, model: string, savedDataset: string | undefined;
  if (values.checkpoint && values.onnx) throw new Error("--checkpoint and --onnx: give one");
  if (values.onnx) {
    if (values.size !== undefined) throw new Error("--size is for random weights: an ONNX model has its own input shape");
    ({ config, weights } = await loadResNetOnnx(values.onnx));
    model = basename(values.onnx).replace(/\.onnx$/, "");
  } else if (values.checkpoint) {
    if (values.size !== undefined) throw new Error("--size is for random weights: a checkpoint has its own input shape");
    const loaded = await loadResNet(values.checkpoint);
    ({ config, weights } = loaded);
    model = basename(values.checkpoint).replace(/\.safetensors$/, "");
    savedDataset = loaded.notes.dataset;
  } else {
    const width = integer("width", values.width, 1), size = integer("size", values.size, 28, 28);
    if (size !== 28 && size !== 224) throw new Error(`--size: ${size} must be 28 (the 28×28 stem) or 224 (ImageNet's shape)`);
    config = size === 28 ? resnet18Small(width) : resnet18ImageNet(width);
    weights = randomResNetWeights(config, 1);
    model = `resnet18-w${width}-${size}px-random`;
  }
  const { dataset, train, test } = openImages(values, config, savedDataset);
  if (fit + calibrate > train.count) throw new Error(`--fit ${fit} + --calibrate ${calibrate} exceed the ${train.count} images of ${train.name}`);
  return {
    config, weights, model, weightsKind: values.checkpoint || values.onnx ? "checkpoint" : "random", dataset, little: { predictor, projection, k, bits },
    fitImages: await train.inputs(0, fit), calImages: await train.inputs(fit, calibrate), train, test,
  };
}

/**
 * The images a network is fitted on (`train`) and scored on (`test`): the --images and --fit-images
 * folders (each defaulting to the other), else --dataset's splits (default: the one `saved` with
 * the network, else MNIST); `dataset` names them in rows and saved files.
 */
export function openImages(values: NetworkValues, config: ResNetConfig, saved: string | undefined): { dataset: string; train: ImageSource; test: ImageSource } {
  const options: ImageInputOptions = {
    channels: config.inChannels, size: config.imageSize, resize: optionalInteger("resize", values.resize, 1),
    mean: numbers(values.mean, "mean"), std: numbers(values.std, "std"),
  };
  const testDir = values.images ?? values["fit-images"], trainDir = values["fit-images"] ?? values.images;
  if (testDir && trainDir) {
    if (values.dataset) throw new Error("--dataset and --images: give one (--dataset names a built-in data set, --images a folder of yours)");
    const test = openImageFolder(testDir, { ...options, classes: config.classes });
    const train = trainDir === testDir ? test : openImageFolder(trainDir, { ...options, classes: config.classes });
    return { dataset: testDir, train, test };
  }
  const name = values.dataset ?? saved ?? "mnist";
  if (!IMAGE_DATASETS.includes(name as ImageDataset)) {
    throw new Error(values.dataset !== undefined ? `--dataset: ${name} must be one of ${IMAGE_DATASETS.join(", ")} (for a folder of images: --images DIR)`
      : `the network was fitted on the images in ${name}: pass --images DIR (your test images) or --dataset`);
  }
  const dataset = name as ImageDataset;
  return { dataset, train: imageSetSource(loadImageSet(dataset, "train"), options), test: imageSetSource(loadImageSet(dataset, "test"), options) };
}

/**
 * How many test images --test scores (default all), checked before any fitting: against the source,
 * and against memory, since every scored image is held as floats for the whole run.
 */
function scoredCount(value: string | undefined, test: ImageSource, config: ResNetConfig): number {
  const count = value === undefined ? test.count : integer("test", value, 1);
  if (count > test.count) throw new Error(`--test ${count} exceeds the ${test.count} test images of ${test.name}`);
  const imageBytes = config.inChannels * config.imageSize ** 2 * 4;
  if (count * imageBytes > HELD_IMAGE_BYTES) {
    throw new Error(`--test: ${count} images of ${config.inChannels}×${config.imageSize}×${config.imageSize} would hold ` +
      `${(count * imageBytes / 2 ** 30).toFixed(1)} GiB in memory; pass --test N with N ≤ ${Math.floor(HELD_IMAGE_BYTES / imageBytes)}`);
  }
  return count;
}

/** The options that were given (parseArgs leaves absent ones undefined), to lay over defaults. */
function definedOnly<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Fits the little modules of `net` on `images`, saying how well they fit. */
export function fitLogged(net: DualResNet, images: Float32Array[]): void {
  const started = performance.now();
  const fit = net.fit(images);
  console.error(`fit on ${images.length} images in ${((performance.now() - started) / 1000).toFixed(1)} s; k per layer ${fit.map((f) => f.k).join(",")}; `
    + `train 1 − R² ${fit.map((f) => f.relativeError.toFixed(3)).join(" ")}`);
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...NETWORK_OPTIONS, dual: { type: "string" },
      modes: { type: "string", default: "zero,little" }, allocation: { type: "string", default: "uniform" }, ratios: { type: "string", default: "0.5,0.7,0.8,0.9" }, test: { type: "string" },
      threads: { type: "string", default: "1,2" }, timed: { type: "string", default: "30" }, rounds: { type: "string", default: "3" },
      repeats: { type: "string", default: "3" }, json: { type: "string" },
      validation: { type: "string", default: "0" }, "max-drop": { type: "string", default: "0.5" },
      figures: { type: "string" }, "figure-layer": { type: "string", default: "layer1.0.conv1" }, "figure-ratio": { type: "string", default: "0.8" },
      help: { type: "boolean" },
    },
  });
  if (values.help) { console.log(HELP); return; }
  const modes = values.modes.split(",") as InsensitiveOutput[];
  for (const m of modes) if (m !== "zero" && m !== "little") throw new Error(`--modes: ${m} must be zero or little`);
  const allocation = values.allocation;
  if (allocation !== "uniform" && allocation !== "greedy") throw new Error(`--allocation: ${allocation} must be uniform or greedy`);
  const ratios = numbers(values.ratios, "ratios")!;
  const figureRatio = numbers(values["figure-ratio"], "figure-ratio")![0];
  for (const r of [...ratios, figureRatio]) if (!(r >= 0 && r < 1)) throw new Error(`--ratios, --figure-ratio: ${r} must be in [0, 1)`);
  const figureLayer = values["figure-layer"];
  if (!/^layer[1-4]\.[01]\.conv[12]$/.test(figureLayer)) throw new Error(`--figure-layer: ${figureLayer} is not a dual layer; they are layerS.B.convJ with stage S 1–4, block B 0–1, J 1–2`);
  const counts = { timed: integer("timed", values.timed, 1), rounds: integer("rounds", values.rounds, 1), repeats: integer("repeats", values.repeats, 1) };
  const threadCounts = numbers(values.threads, "threads")!;
  for (const t of threadCounts) if (!Number.isInteger(t) || t < 1) throw new Error(`--threads: ${t} must be a positive integer`);
  if (values.dual && values.checkpoint) throw new Error("--dual and --checkpoint: give one (a dual-module file holds its ResNet)");
  if (values.dual && values.onnx) throw new Error("--dual and --onnx: give one (a dual-module file holds its ResNet)");
  const validation = integer("validation", values.validation, 0), maxDrop = numbers(values["max-drop"], "max-drop")![0];
  if (values.dual && validation > 0) throw new Error("--dual and --validation: a dual-module file holds one operating point, there is nothing to choose");
  if (values.images && !values["fit-images"] && validation > 0) {
    throw new Error("--validation needs --fit-images DIR: the operating point must be chosen on images other than the scored ones");
  }

  const rt = await Runtime.create({ threads: Math.max(...threadCounts) });
  const rows: CnnEvalRow[] = [];
  try {
    const be = runtimeDualBackend(rt);
    // Either a saved dual network at its one operating point, or one fitted here and calibrated at each ratio.
    let net: DualResNet, weights: ResNetWeights, model: string, dataset: string, test: ImageSource, calImages: Float32Array[] | null;
    let valImages: Float32Array[] = [], valLabels: ArrayLike<number> = [];
    let points: { mode: InsensitiveOutput; ratio: number }[], weightsKind: "random" | "checkpoint", testCount: number;
    if (values.dual) {
      const loaded = await loadDualResNet(be, values.dual);
      ({ net, weights } = loaded);
      model = basename(values.dual).replace(/\.safetensors$/, "");
      // The normalisation and resize it was fitted with, unless given again.
      const saved = { resize: loaded.notes.resize, mean: loaded.notes.mean, std: loaded.notes.std };
      ({ dataset, test } = openImages({ ...saved, ...definedOnly(values) }, loaded.net.config, loaded.notes.dataset));
      testCount = scoredCount(values.test, test, loaded.net.config);
      calImages = null;
      points = [{ mode: net.mode, ratio: loaded.ratio }];
      weightsKind = "checkpoint";
    } else {
      const opened = await openNetwork(values);
      ({ weights, model, dataset, test, calImages, weightsKind } = opened);
      testCount = scoredCount(values.test, test, opened.config);
      net = new DualResNet(be, opened.config, weights, opened.little);
      fitLogged(net, opened.fitImages);
      points = modes.flatMap((mode) => ratios.map((ratio) => ({ mode, ratio })));
      if (values.images && !values["fit-images"]) {
        console.error(`the little modules are fitted and calibrated on the first ${opened.fitImages.length + opened.calImages.length} images of ` +
          `${values.images}, which are scored too (without their labels); pass --fit-images DIR to keep them apart`);
      }
      if (validation > 0) {
        const { train } = opened, from = opened.fitImages.length + opened.calImages.length;
        if (from + validation > train.count) throw new Error(`--fit + --calibrate + --validation ${validation} exceed the ${train.count} images of ${train.name}`);
        valImages = await train.inputs(from, validation);
        valLabels = train.labels.subarray(from, from + validation);
      }
    }
    const config = net.config;
    const testImages = await test.inputs(0, testCount), labels = test.labels.subarray(0, testCount);
    const timedImages = testImages.slice(0, counts.timed);
    console.error(`${describe(config)}, ${values.dual ?? values.checkpoint ?? "random weights"}, ${dataset}; ${rt.variant} build, threads ${threadCounts.join(",")}`);
    // Every point is scored on validation images when there are some, else on the test set.
    const scoredOn = valImages.length > 0 ? "validation" as const : "test" as const;
    const [scoredImages, scoredLabels] = valImages.length > 0 ? [valImages, valLabels] : [testImages, labels];
    const denseTop = predict(net.dense, scoredImages, `dense, ${scoredOn}`);
    const top1Dense = accuracy(denseTop, scoredLabels);
    const ortMs = await timeOrt(config, weights, net.dense, timedImages, threadCounts, rt);
    const curves = new Map<string, LayerCurve[]>();
    for (const { mode, ratio } of points) {
      net.mode = mode;
      if (calImages) net.calibrate(calImages, allocation === "greedy" ? greedyRatios(net, calImages, ratio, curves).ratios : ratio);
      const dualTop = predict(net, scoredImages, `${mode} ${ratio}, ${scoredOn}`);
      const report = net.report(), little = net.layers[0].dual.little;
      for (const threads of threadCounts) {
        rt.pool.active = threads;
        const { denseMs, dualMs, profile } = await timeDenseAndDual(net, timedImages, counts);
        rows.push({
          model, dataset, ratio, achieved_ratio: report.insensitiveRatio, top1: accuracy(dualTop, scoredLabels), top1_dense: top1Dense,
          macs_dense: report.macsDenseNetwork, macs_big: report.macsBig + report.macsDenseOnly, macs_little: report.macsLittle,
          ops_reduction_fp32eq: report.opsReductionFp32eq,
          dense_ms: median(denseMs), dual_ms: median(dualMs), ort_ms: ortMs.get(threads) ?? null, threads,
          weights: weightsKind, width: config.width, mode, allocation, predictor: little.predictor, projection: little.projection, k: report.layers.map((l) => l.k), bits: little.bits,
          achieved_per_layer: report.layers.map((l) => ({ name: l.name, ratio: l.insensitiveRatio })),
          test_images: testCount, agreement: accuracy(dualTop, denseTop),
          macs_little_fp32eq: report.macsLittleFp32eq, projection_adds: report.projectionAdds,
          ops_reduction_fp32eq_no_projection: report.opsReductionFp32eqNoProjection,
          dense_ms_repeats: denseMs, dual_ms_repeats: dualMs, profile_ms: profile, scored_on: scoredOn, chosen: false,
        });
      }
      rt.pool.active = rt.threads;
    }
    if (valImages.length > 0) rows.push(...scoreChosenOnTest(net, calImages!, rows, maxDrop, testImages, labels));
    if (values.figures) {
      mkdirSync(values.figures, { recursive: true });
      if (calImages) net.calibrate(calImages, figureRatio);
      await figures(net, testImages, values.figures, figureLayer, `${model}, ${figureLayer}, insensitive ratio ${calImages ? figureRatio : points[0].ratio}`);
    }
  } finally {
    await rt.close();
  }
  console.log(formatRows(rows));
  const chosen = rows.find((r) => r.chosen);
  if (validation > 0) {
    console.log(chosen
      ? `\nchosen on ${validation} held-out training images: mode ${chosen.mode}, ratio ${chosen.ratio}, the largest FP32-equivalent ` +
        `operation reduction within ${maxDrop} points of dense top-1 there; test top-1 ${(100 * chosen.top1).toFixed(2)} ` +
        `(dense ${(100 * chosen.top1_dense).toFixed(2)}), the only test-set score of this run`
      : `\nno operating point stays within ${maxDrop} points of dense top-1 on the ${validation} validation images: nothing scored on the test set`);
  }
  console.log(`\nachieved insensitive ratio per layer (threads ${threadCounts[0]} rows):\n${formatLayers(rows.filter((r) => r.threads === threadCounts[0]))}`);
  if (values.json) await writeFileAtomic(values.json, new TextEncoder().encode(JSON.stringify(rows, null, 1) + "\n"));
}

/**
 * The point chosen on validation (chooseOperatingPoint over the first thread count's rows), set up
 * again and scored once on the test set: its rows at every thread count, with test accuracy and the
 * achieved ratio on test (timings are the validation rows': the same network).
 */
function scoreChosenOnTest(net: DualResNet, calImages: Float32Array[], rows: CnnEvalRow[], maxDrop: number,
                           testImages: Float32Array[], labels: ArrayLike<number>): CnnEvalRow[] {
  const best = chooseOperatingPoint(rows.filter((r) => r.threads === rows[0].threads), maxDrop);
  if (!best) return [];
  net.mode = best.mode;
  net.calibrate(calImages, best.ratio);
  const denseTop = predict(net.dense, testImages, "dense, test"), dualTop = predict(net, testImages, `${best.mode} ${best.ratio}, test`);
  const report = net.report();
  return rows.filter((r) => r.mode === best.mode && r.ratio === best.ratio).map((r) => ({
    ...r, scored_on: "test" as const, chosen: true, top1: accuracy(dualTop, labels), top1_dense: accuracy(denseTop, labels),
    agreement: accuracy(dualTop, denseTop), achieved_ratio: report.insensitiveRatio, test_images: testImages.length,
    achieved_per_layer: report.layers.map((l) => ({ name: l.name, ratio: l.insensitiveRatio })),
  }));
}

/** Figures 3 and 4 for one dual layer at its current threshold. */
async function figures(net: DualResNet, testImages: Float32Array[], dir: string, layerName: string, what: string): Promise<void> {
  const index = net.layers.findIndex((l) => l.name === layerName);
  const { dual } = net.layers[index], K = dual.K, P = dual.P, side = Math.round(Math.sqrt(P));
  const threshold = dual.threshold, shown = testImages.slice(0, 16);
  const big = new Float32Array(shown.length * K * P), little = new Float32Array(big.length);
  shown.forEach((x, i) => {
    const pre = net.preActivations(x, index);
    big.set(pre.big, i * K * P);
    little.set(pre.little, i * K * P);
  });
  await renderPng(outputHistogramSpec(big, little, threshold, `Figure 3: pre-activations of ${what} (${shown.length} test images)`),
    join(dir, "figure3.png"));
  // The first test image's first channels: exact ReLU output, the little module's, and the mask.
  const maps: FeatureMap[] = [];
  for (let c = 0; c < Math.min(K, 4); c++) {
    const at = (a: Float32Array, f: (v: number) => number) => Float32Array.from(a.subarray(c * P, (c + 1) * P), f);
    maps.push({ row: "big", channel: c, height: side, width: side, data: at(big, (v) => Math.max(0, v)) });
    maps.push({ row: "little", channel: c, height: side, width: side, data: at(little, (v) => Math.max(0, v)) });
    maps.push({ row: "sensitive", channel: c, height: side, width: side, data: at(little, (v) => (v > threshold ? 1 : 0)) });
  }
  await renderPng(featureMapsSpec(maps, `Figure 4: feature maps of ${what} (first test image)`), join(dir, "figure4.png"));
  console.error(`wrote ${join(dir, "figure3.png")} and ${join(dir, "figure4.png")}`);
}

function formatRows(rows: CnnEvalRow[]): string {
  const m = (v: number) => (v / 1e6).toFixed(2);
  const spread = (a: number[]) => `${Math.min(...a).toFixed(2)}–${Math.max(...a).toFixed(2)}`;
  return formatTable(
    ["mode", "weights", "ratio", "achieved", "on", "top1", "dense top1", "agree", "MMAC dense", "big", "little", "little fp32eq", "proj adds",
      "ops red.", "threads", "dense ms", "dual ms", "ort ms", "× dense", "dense range", "dual range",
      "im2row", "little", "select", "big ms", "rest", "dense parts"],
    rows.map((r) => [
      r.mode, r.weights, r.ratio.toFixed(2), r.achieved_ratio.toFixed(3), r.chosen ? "test*" : r.scored_on === "test" ? "test" : "val",
      (100 * r.top1).toFixed(2), (100 * r.top1_dense).toFixed(2), r.agreement.toFixed(3),
      m(r.macs_dense), m(r.macs_big), m(r.macs_little), m(r.macs_little_fp32eq), m(r.projection_adds),
      r.ops_reduction_fp32eq.toFixed(2), r.threads, r.dense_ms.toFixed(2), r.dual_ms.toFixed(2), r.ort_ms === null ? "-" : r.ort_ms.toFixed(2),
      (r.dense_ms / r.dual_ms).toFixed(2), spread(r.dense_ms_repeats), spread(r.dual_ms_repeats),
      r.profile_ms.im2row.toFixed(2), r.profile_ms.little.toFixed(2), r.profile_ms.select.toFixed(2), r.profile_ms.big.toFixed(2),
      r.profile_ms.rest.toFixed(2), r.profile_ms.dense.toFixed(2),
    ]), 4);
}

function formatLayers(rows: CnnEvalRow[]): string {
  if (rows.length === 0) return "";
  return formatTable(["layer", ...rows.map((r) => `${r.mode} ${r.ratio}`)],
    rows[0].achieved_per_layer.map((l, i) => [l.name, ...rows.map((r) => r.achieved_per_layer[i].ratio.toFixed(3))]), 1);
}
