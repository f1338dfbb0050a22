// Training of ResNet-18 (src/conv/resnet.ts) on MNIST or Fashion-MNIST with the usual CIFAR-style
// recipe: minibatch SGD with momentum 0.9 and weight decay 5e-4 (PyTorch semantics: the decay is
// added to the gradient; here on convolution and classifier weights only, not on batch-norm γ/β or
// biases), a cosine learning rate over all steps, light augmentation (a random shift of up to 2
// pixels, i.e. 2-pixel zero padding and a random 28×28 crop; a random horizontal flip for
// Fashion-MNIST only: digits are not symmetric), the test accuracy after every epoch, a checkpoint
// every epoch, --resume, and a clean stop between batches. Deterministic for a seed and a thread count.
// Reads top to bottom: optimiser → schedule → data → checkpoints → loop → inference check.
import type { Runtime } from "../runtime/runtime.js";
import * as check from "../kernels/check.js";
import { Rng, batchRng } from "../util/random.js";
import { runtimeBackend } from "./layers.js";
import { ResNet, type ResNetConfig, allocateResNetWeights, checkConfig, describe, resnetParameters } from "./resnet.js";
import { type LoadedResNet, saveResNet } from "./checkpoint.js";
import { IMAGE_SIZE, type ImageDataset, type ImageSet, imagesToFloat } from "../data/images.js";
import { decodeSafetensors, encodeSafetensors, requireTensor, type TensorData } from "../io/safetensors.js";
import { readFileChecked, writeFileAtomic } from "../io/files.js";
import { ResNetGraph, initResNetParams, parameterRole, trainBackend } from "./grad.js";

// ---------------------------------------------------------------------------------------------
// Optimiser: SGD with momentum and weight decay, as torch.optim.SGD (dampening 0, not Nesterov)

/** Where each learned tensor lies in the flat parameter buffer, and whether it is decayed. */
interface Segment { start: number; end: number; decayed: boolean }

function segments(c: ResNetConfig): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  for (const p of resnetParameters(c)) {
    const n = p.shape.reduce((a, b) => a * b, 1), role = parameterRole(p.name);
    if (role.trained) out.push({ start: at, end: at + n, decayed: role.decayed });
    at += n;
  }
  return out;
}

/** d = g + wd·p (decayed tensors), buf = μ·buf + d, p ← p − lr·buf; running statistics are left alone. */
export function sgdMomentumStep(c: ResNetConfig, params: Float32Array, grads: Float32Array, momentum: Float32Array,
                                lr: number, mu: number, weightDecay: number): void {
  for (const s of segments(c)) {
    const wd = s.decayed ? weightDecay : 0;
    for (let i = s.start; i < s.end; i++) {
      const b = mu * momentum[i] + grads[i] + wd * params[i];
      momentum[i] = b;
      params[i] -= lr * b;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Schedule

/** Cosine annealing from `lr` at step 0 to 0 after `total` steps (per batch, without restarts). */
export function cosineLr(lr: number, step: number, total: number): number {
  return 0.5 * lr * (1 + Math.cos(Math.PI * Math.min(step, total) / total));
}

// ---------------------------------------------------------------------------------------------
// Data: shuffling, augmentation, batches

/** A permutation of 0..n−1 that depends on (seed, epoch) only. */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i), rng = batchRng(seed, epoch, -1);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

export const MAX_SHIFT = 2;

/**
 * Images `indices` of `set` as floats in [0, 1] into out (n, 1, 28, 28), each shifted by a random
 * (dy, dx) in [−2, 2]² with zeros shifted in (= 2-pixel padding and a random crop), and mirrored
 * left–right with probability ½ when `flip`.
 */
export function augmentedBatch(out: Float32Array, set: ImageSet, indices: ArrayLike<number>, rng: Rng, flip: boolean): void {
  const S = IMAGE_SIZE, px = S * S;
  if (out.length !== indices.length * px) throw new RangeError(`augmentedBatch: out must have ${indices.length}×${px} floats, got ${out.length}`);
  out.fill(0);
  for (let n = 0; n < indices.length; n++) {
    const src = indices[n] * px, dst = n * px;
    const dy = rng.int(2 * MAX_SHIFT + 1) - MAX_SHIFT, dx = rng.int(2 * MAX_SHIFT + 1) - MAX_SHIFT;
    const mirror = flip && rng.uniform() < 0.5;
    for (let y = Math.max(0, dy); y < Math.min(S, S + dy); y++) {
      for (let x = Math.max(0, dx); x < Math.min(S, S + dx); x++) {
        const sx = x - dx;
        out[dst + y * S + x] = set.images[src + (y - dy) * S + (mirror ? S - 1 - sx : sx)] / 255;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: the model (src/conv/checkpoint.ts) and, beside it, the resumable training state

export interface CnnTrainOptions {
  batch: number;       // images per step
  lr: number;          // peak learning rate (cosine from it to 0)
  momentum: number;
  weightDecay: number;
  seed: number;        // initialisation, shuffling, augmentation
}

/** lr 0.05 for batch 64: the CIFAR recipe's 0.1 at batch 128, scaled linearly. */
export const CNN_TRAIN_DEFAULTS: CnnTrainOptions = { batch: 64, lr: 0.05, momentum: 0.9, weightDecay: 5e-4, seed: 1 };

/** Everything a resumed run must agree on, and where it stopped. */
export interface CnnTrainingState extends CnnTrainOptions {
  dataset: ImageDataset;
  trainImages: number;  // images used per epoch (after --max-images)
  epochs: number;       // the cosine schedule spans them all
  epoch: number;        // completed epochs
  position: number;     // next batch of the current epoch (0 at an epoch boundary)
  lossSum: number;      // of the current epoch's batches so far
  correct: number;
  seen: number;
}

export interface CnnResumable { config: ResNetConfig; params: Float32Array; momentum: Float32Array; state: CnnTrainingState }

const RESUME_FORMAT = "dualmodule-resnet-train";
const RESUME_VERSION = "1";

/** The resumable checkpoint that goes with the model at `out`. */
export function cnnResumePath(out: string): string { return out.replace(/(\.safetensors)?$/, ".resume.safetensors"); }

export function encodeCnnResumable(r: CnnResumable): Uint8Array {
  const tensors: Record<string, TensorData> = {}, w = allocateResNetWeights(r.config, r.params), m = allocateResNetWeights(r.config, r.momentum);
  for (const p of resnetParameters(r.config)) {
    tensors[p.name] = { dtype: "F32", shape: p.shape, data: w.tensors[p.name] };
    if (parameterRole(p.name).trained) tensors[`momentum.${p.name}`] = { dtype: "F32", shape: p.shape, data: m.tensors[p.name] };
  }
  return encodeSafetensors(tensors, { format: RESUME_FORMAT, version: RESUME_VERSION, config: JSON.stringify(r.config), training: JSON.stringify(r.state) });
}

export function decodeCnnResumable(bytes: Uint8Array, source: string): CnnResumable {
  const file = decodeSafetensors(bytes, source), meta = file.metadata;
  const fail = (msg: string): never => { throw new Error(`resumable checkpoint ${source}: ${msg}`); };
  if (meta.format !== RESUME_FORMAT) fail(`metadata format is ${JSON.stringify(meta.format)}, expected "${RESUME_FORMAT}" (use the .resume.safetensors file that training writes beside the model)`);
  if (meta.version !== RESUME_VERSION) fail(`format version ${meta.version} is not supported (this library reads version ${RESUME_VERSION}); start afresh without --resume`);
  let config: ResNetConfig, state: CnnTrainingState;
  try {
    config = JSON.parse(meta.config) as ResNetConfig;
    checkConfig(config);
    state = JSON.parse(meta.training) as CnnTrainingState;
  } catch (e) {
    return fail(`its metadata is not valid (${(e as Error).message})`);
  }
  const w = allocateResNetWeights(config), m = allocateResNetWeights(config);
  for (const p of resnetParameters(config)) {
    w.tensors[p.name].set(requireTensor(file, p.name, "F32", p.shape).data);
    if (parameterRole(p.name).trained) m.tensors[p.name].set(requireTensor(file, `momentum.${p.name}`, "F32", p.shape).data);
  }
  return { config, params: w.flat, momentum: m.flat, state };
}

export async function loadCnnResumable(path: string): Promise<CnnResumable> {
  return decodeCnnResumable(await readFileChecked(path, "resumable ResNet checkpoint"), path);
}

// ---------------------------------------------------------------------------------------------
// Loop

export interface CnnData { train: ImageSet; test: ImageSet }

export interface CnnRunOptions {
  config: ResNetConfig;
  options: CnnTrainOptions;
  epochs: number;            // total, including any already done by a resumed run
  out: string;               // the model after every epoch; the resumable state beside it
  dtype?: "F32" | "F16";     // of `out` (the resumable state is always F32); default F32
  maxImages?: number;        // training images per epoch (the first ones of the set); default all
  maxTest?: number;          // test images evaluated (the first ones); default all
  notes?: Record<string, string>; // kept in the model's metadata (e.g. the command)
  resume?: CnnResumable;
}

export interface CnnBatchInfo { epoch: number; batch: number; batches: number; images: number; loss: number; correct: number; lr: number }
export interface CnnEpochReport {
  epoch: number; trainLoss: number; trainAccuracy: number; testLoss: number; testAccuracy: number; seconds: number;
}

export interface CnnRunHooks {
  onEpochStart?(epoch: number, firstBatch: number, batches: number, batchSize: number): void;
  onBatch?(info: CnnBatchInfo): void;
  onEvaluate?(done: number, total: number): void;
  onEpoch?(report: CnnEpochReport): void;
  /** Checked after every batch. */
  stopRequested?(): boolean;
}

export interface CnnRunResult {
  epoch: number;                 // completed epochs
  stopped: boolean;
  testAccuracy: number | null;   // after the last completed epoch, evaluation mode
  params: Float32Array;          // heap: the current weights
}

/** Lets pending events (a SIGINT handler) run between batches of a long synchronous loop. */
function yieldToEvents(): Promise<void> { return new Promise((resolve) => setImmediate(resolve)); }

/** Mean loss and accuracy of `graph` in evaluation mode over the first `count` images of `set`. */
export async function evaluateGraph(graph: ResNetGraph, set: ImageSet, count: number,
                                    onBatch?: (done: number, total: number) => void): Promise<{ loss: number; accuracy: number }> {
  const B = graph.batch, batches = Math.ceil(count / B), indices = new Int32Array(B);
  let loss = 0, correct = 0;
  for (let b = 0; b < batches; b++) {
    // The last batch is filled up with its final image; only the real ones are counted.
    const valid = Math.min(B, count - b * B);
    for (let i = 0; i < B; i++) indices[i] = b * B + Math.min(i, valid - 1);
    imagesToFloat(graph.input, set, indices);
    for (let i = 0; i < B; i++) graph.labels[i] = set.labels[indices[i]];
    graph.forward(false);
    const logits = graph.logits, V = graph.config.classes;
    for (let i = 0; i < valid; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      let best = 0, m = -Infinity;
      for (let j = 0; j < V; j++) m = Math.max(m, row[j]);
      for (let j = 0; j < V; j++) if (row[j] === m) { best = j; break; }
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(row[j] - m);
      loss += m + Math.log(s) - row[graph.labels[i]];
      if (best === graph.labels[i]) correct++;
    }
    onBatch?.(b + 1, batches);
    await yieldToEvents();
  }
  return { loss: loss / count, accuracy: correct / count };
}

/**
 * Trains for `epochs` epochs in total: each epoch a fresh permutation of the training images in
 * full batches (the remainder is left out, a different one each epoch), then the test accuracy in
 * evaluation mode; the model is saved to `out` and the resumable state beside it after every epoch,
 * and the state also when a stop is requested between batches.
 */
export async function trainCnn(rt: Runtime, run: CnnRunOptions, data: CnnData, hooks: CnnRunHooks = {}): Promise<CnnRunResult> {
  const { config, options: o } = run, k = "trainCnn";
  checkConfig(config);
  if (config.imageSize !== IMAGE_SIZE || config.inChannels !== 1) throw new RangeError(`${k}: ${describe(config)} does not take the data set's 1×${IMAGE_SIZE}×${IMAGE_SIZE} images`);
  check.size(k, "epochs", run.epochs, 1);
  check.size(k, "batch", o.batch, 2);
  const trainImages = Math.min(run.maxImages ?? Infinity, data.train.count), testImages = Math.min(run.maxTest ?? Infinity, data.test.count);
  const batches = Math.floor(trainImages / o.batch);
  if (batches === 0) throw new RangeError(`${k}: ${trainImages} training images are fewer than one batch of ${o.batch}; lower --batch or raise --max-images`);
  if (testImages < 1) throw new RangeError(`${k}: no test images to evaluate`);
  const dataset = data.train.dataset, flip = dataset === "fashion-mnist";

  const r = run.resume;
  if (r) checkResumable(r, run, trainImages);
  const be = trainBackend(rt), n = resnetParameters(config).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const params = rt.heap.f32(n), grads = rt.heap.f32(n), momentum = rt.heap.f32(n);
  if (r) { params.set(r.params); momentum.set(r.momentum); } else initResNetParams(config, params, o.seed);
  const graph = new ResNetGraph(be, config, params, grads, o.batch);

  let epoch = r?.state.epoch ?? 0, first = r?.state.position ?? 0;
  let lossSum = r?.state.lossSum ?? 0, correct = r?.state.correct ?? 0, seen = r?.state.seen ?? 0;
  let testAccuracy: number | null = null;
  const total = run.epochs * batches;
  const state = (position: number): CnnTrainingState => ({ ...o, dataset, trainImages, epochs: run.epochs, epoch, position, lossSum, correct, seen });
  const saveResume = (position: number) => writeFileAtomic(cnnResumePath(run.out), encodeCnnResumable({ config, params, momentum, state: state(position) }));
  const indices = new Int32Array(o.batch);

  while (epoch < run.epochs) {
    if (hooks.stopRequested?.()) return { epoch, stopped: true, testAccuracy, params };
    const start = performance.now(), order = epochOrder(trainImages, o.seed, epoch);
    if (first === 0) lossSum = correct = seen = 0;
    hooks.onEpochStart?.(epoch + 1, first, batches, o.batch);
    for (let b = first; b < batches; b++) {
      indices.set(order.subarray(b * o.batch, (b + 1) * o.batch));
      augmentedBatch(graph.input, data.train, indices, batchRng(o.seed, epoch, b), flip);
      for (let i = 0; i < o.batch; i++) graph.labels[i] = data.train.labels[indices[i]];
      const lr = cosineLr(o.lr, epoch * batches + b, total);
      const res = graph.forward(true);
      grads.fill(0);
      graph.backward();
      sgdMomentumStep(config, params, grads, momentum, lr, o.momentum, o.weightDecay);
      lossSum += res.loss;
      correct += res.correct;
      seen += o.batch;
      hooks.onBatch?.({ epoch: epoch + 1, batch: b + 1, batches, images: o.batch, loss: res.loss / o.batch, correct: res.correct, lr });
      await yieldToEvents();
      if (hooks.stopRequested?.() && b + 1 < batches) {
        await saveResume(b + 1);
        return { epoch, stopped: true, testAccuracy, params };
      }
    }
    first = 0;
    const test = await evaluateGraph(graph, data.test, testImages, hooks.onEvaluate);
    testAccuracy = test.accuracy;
    const seconds = (performance.now() - start) / 1000, trainLoss = lossSum / seen, trainAccuracy = correct / seen;
    epoch++;
    await saveResNet(run.out, config, allocateResNetWeights(config, params), {
      dtype: run.dtype,
      notes: { ...run.notes, dataset, epoch: String(epoch), epochs: String(run.epochs), test_accuracy: test.accuracy.toFixed(4),
        test_images: String(testImages), recipe: JSON.stringify({ ...o, trainImages, schedule: "cosine", augmentation: flip ? "shift±2,flip" : "shift±2" }) },
    });
    await saveResume(0);
    hooks.onEpoch?.({ epoch, trainLoss, trainAccuracy, testLoss: test.loss, testAccuracy: test.accuracy, seconds });
  }
  return { epoch, stopped: false, testAccuracy, params };
}

/** A resumed run must be the same model, data and recipe, or it would not continue the same training. */
function checkResumable(r: CnnResumable, run: CnnRunOptions, trainImages: number): void {
  const s = r.state, o = run.options;
  const saved = { config: r.config, seed: s.seed, batch: s.batch, lr: s.lr, momentum: s.momentum, weightDecay: s.weightDecay, trainImages: s.trainImages, epochs: s.epochs };
  const now = { config: run.config, seed: o.seed, batch: o.batch, lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, trainImages, epochs: run.epochs };
  for (const key of Object.keys(saved) as (keyof typeof saved)[]) {
    const a = JSON.stringify(saved[key]), b = JSON.stringify(now[key]);
    if (a !== b) throw new Error(`trainCnn: cannot resume: the checkpoint has ${key} ${a}, this run ${b}; drop the conflicting option or start afresh without --resume`);
  }
}

// ---------------------------------------------------------------------------------------------
// Inference check: the saved model through the BN-folded network of src/conv/resnet.ts

/** Top-1 accuracy of a loaded model on the first `count` images of `set`, at batch `batch`. */
export function inferenceAccuracy(rt: Runtime, model: LoadedResNet, set: ImageSet, count: number, batch: number): number {
  const net = new ResNet(runtimeBackend(rt), model.config, model.weights, batch), V = model.config.classes;
  const images = new Float32Array(batch * IMAGE_SIZE * IMAGE_SIZE), indices = new Int32Array(batch);
  let correct = 0;
  for (let start = 0; start < count; start += batch) {
    const valid = Math.min(batch, count - start);
    for (let i = 0; i < batch; i++) indices[i] = start + Math.min(i, valid - 1);
    const logits = net.forward(imagesToFloat(images, set, indices));
    for (let i = 0; i < valid; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      if (row.indexOf(Math.max(...row)) === set.labels[indices[i]]) correct++;
    }
  }
  return correct / count;
}
