// `dmi train cnn`: trains ResNet-18 (3×3 stem of stride 1 or 2, chosen width) on MNIST or Fashion-MNIST with the
// recipe of src/conv/train.ts, with a progress bar, the test accuracy and a checkpoint after every
// epoch, --resume, and a clean stop on Ctrl-C (the current batch finishes, the state is saved).
// At the end the saved model is loaded back and evaluated through the BN-folded inference network.
import { parseArgs } from "node:util";
import { integer, nonNegative, outputFile, resumeFile } from "./args.js";
import { Runtime } from "../runtime/runtime.js";
import { Progress } from "../util/progress.js";
import { StopOnCtrlC } from "./ctrl-c.js";
import { describe, resnet18Small, resnetParameters } from "../conv/resnet.js";
import { loadResNet } from "../conv/checkpoint.js";
import { IMAGE_DATASETS, type ImageDataset, loadImageSet } from "../data/images.js";
import { CNN_TRAIN_DEFAULTS, type CnnResumable, type CnnTrainOptions, cnnResumePath, inferenceAccuracy, loadCnnResumable, trainCnn } from "../conv/train.js";

const d = CNN_TRAIN_DEFAULTS;
const USAGE = `dmi train cnn --dataset ${IMAGE_DATASETS.join("|")} --width W --epochs N --out FILE [options]
  --width W         channels of the first stage (64 is the full ResNet-18; narrower keeps depth and topology)
  --stem small|stride2  the 3×3 stem's stride: 1 (small, layer1 at 28×28) or 2 (layer1 at 14×14, a
                    quarter of the operations: the full widths in 2–3 hours on 2 cores); default small
  --epochs N        epochs in total, counting those of a resumed run; the cosine schedule spans them all
  --batch B         images per step (${d.batch})
  --lr X            peak learning rate, cosine-annealed to 0 (${d.lr})
  --weight-decay X  on convolution and classifier weights (${d.weightDecay}); momentum ${d.momentum}
  --seed S          initialisation, shuffling, augmentation (${d.seed}); runs are deterministic for a given --threads
  --threads N       threads for the kernels (one per core)
  --dtype f32|f16   storage of the model FILE (f32); f16 halves it
  --max-images N    train on the first N training images only (quick runs)
  --max-test N      evaluate on the first N test images only
  --resume          continue from FILE's resumable state (${cnnResumePath("FILE")})
The model is saved to FILE after every epoch; Ctrl-C stops after the current batch.
Fashion-MNIST: apt-get install dataset-fashion-mnist, or node scripts/fetch-test-data.mjs fashion-mnist (no root).`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      dataset: { type: "string" }, width: { type: "string" }, stem: { type: "string" }, epochs: { type: "string" }, out: { type: "string" },
      batch: { type: "string" }, lr: { type: "string" }, "weight-decay": { type: "string" }, seed: { type: "string" },
      threads: { type: "string" }, dtype: { type: "string" }, "max-images": { type: "string" }, "max-test": { type: "string" },
      resume: { type: "boolean" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  const out = outputFile(v.out, USAGE);

  // With --resume, whatever is not given comes from the saved state; what is given must agree with it.
  const saved: CnnResumable | undefined = v.resume ? await loadCnnResumable(resumeFile(cnnResumePath(out))) : undefined;
  const s = saved?.state;
  const dataset = (v.dataset ?? s?.dataset) as ImageDataset | undefined;
  if (!dataset || !IMAGE_DATASETS.includes(dataset)) throw new Error(`--dataset must be one of ${IMAGE_DATASETS.join(", ")}, got ${JSON.stringify(v.dataset)}`);
  if (s && dataset !== s.dataset) throw new Error(`--dataset ${dataset}: the resumable state was trained on ${s.dataset}; drop --dataset or start afresh without --resume`);
  const stem = v.stem ?? saved?.config.stem ?? "small";
  if (stem !== "small" && stem !== "stride2") throw new Error(`--stem must be small or stride2, got ${JSON.stringify(v.stem)}`);
  const config = resnet18Small(integer("width", v.width, 1, saved?.config.width), stem);
  const options: CnnTrainOptions = {
    batch: integer("batch", v.batch, 2, s?.batch ?? d.batch),
    lr: nonNegative("lr", v.lr, s?.lr ?? d.lr),
    momentum: s?.momentum ?? d.momentum,
    weightDecay: nonNegative("weight-decay", v["weight-decay"], s?.weightDecay ?? d.weightDecay),
    seed: integer("seed", v.seed, 0, s?.seed ?? d.seed),
  };
  if (!(options.lr > 0)) throw new Error(`--lr must be above 0, got ${options.lr}`);
  const epochs = integer("epochs", v.epochs, 1, s?.epochs);
  const dtype = (v.dtype ?? "f32").toUpperCase();
  if (dtype !== "F32" && dtype !== "F16") throw new Error(`--dtype must be f32 or f16, got ${JSON.stringify(v.dtype)}`);
  const maxImages = v["max-images"] === undefined ? s?.trainImages : integer("max-images", v["max-images"], 1);
  const maxTest = v["max-test"] === undefined ? undefined : integer("max-test", v["max-test"], 1);

  const data = { train: loadImageSet(dataset, "train"), test: loadImageSet(dataset, "test") };
  const rt = await Runtime.create(v.threads === undefined ? {} : { threads: integer("threads", v.threads, 1) });
  const parameters = resnetParameters(config).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  console.error(`dmi train cnn: ${describe(config)}, ${(parameters / 1e6).toFixed(2)} M parameters; ${dataset} ` +
    `${Math.min(maxImages ?? Infinity, data.train.count)} training images, batch ${options.batch}, lr ${options.lr} (cosine), ` +
    `${rt.variant} build, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}${saved ? `; resuming after epoch ${s!.epoch}, batch ${s!.position}` : ""}`);

  const ctrlC = new StopOnCtrlC("dmi train cnn", "batch");

  let bar: Progress | null = null, lossSum = 0, correct = 0, seen = 0;
  try {
    const command = `dmi train cnn --dataset ${dataset} --width ${config.width} --stem ${stem} --epochs ${epochs} --batch ${options.batch} --lr ${options.lr} ` +
      `--weight-decay ${options.weightDecay} --seed ${options.seed}${maxImages ? ` --max-images ${maxImages}` : ""} --threads ${rt.threads}`;
    const result = await trainCnn(rt, { config, options, epochs, out, dtype, maxImages, maxTest, resume: saved, notes: { command } }, data, {
      onEpochStart(epoch, first, batches, batchSize) {
        bar = new Progress(`epoch ${epoch}`, (batches - first) * batchSize, "img");
        lossSum = correct = seen = 0;
      },
      onBatch(b) {
        seen += b.images;
        lossSum += b.loss * b.images;
        correct += b.correct;
        bar!.update(seen, `loss ${(lossSum / seen).toFixed(3)}, acc ${(100 * correct / seen).toFixed(1)} %, lr ${b.lr.toPrecision(3)}`);
      },
      onEvaluate(done, total) {
        if (done === 1) bar = new Progress("test", total, "batches");
        bar!.update(done);
      },
      onEpoch(e) {
        console.error(`epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}, acc ${(100 * e.trainAccuracy).toFixed(2)} %; ` +
          `test loss ${e.testLoss.toFixed(4)}, acc ${(100 * e.testAccuracy).toFixed(2)} %; ${e.seconds.toFixed(0)} s; saved to ${out}`);
      },
      stopRequested: () => ctrlC.requested,
    });
    if (result.stopped) {
      console.error(`dmi train cnn: stopped after ${result.epoch} complete epochs; continue with the same command and --resume ` +
        `(state in ${cnnResumePath(out)})`);
      process.exitCode = 130;
      return;
    }
    // The model as saved (F16 if asked), through the inference network with BN folded.
    const model = await loadResNet(out);
    const count = Math.min(maxTest ?? Infinity, data.test.count);
    const accuracy = inferenceAccuracy(rt, model, data.test, count, options.batch);
    console.log(`test accuracy ${(100 * result.testAccuracy!).toFixed(2)} % (training graph, evaluation mode), ` +
      `${(100 * accuracy).toFixed(2)} % (${out} through the BN-folded inference network, ${dtype}) on ${count} images; model in ${out}`);
  } finally {
    ctrlC.dispose();
    await rt.close();
  }
}
