// `dmi train nmt`: trains the GNMT translation model (src/seq2seq/) on the Bible En–Es pairs or any
// src<TAB>tgt file, with a progress bar, a checkpoint every epoch, --resume, and a clean stop on Ctrl-C.
import { parseArgs } from "node:util";
import { integer, nonNegative, outputFile, resumeFile } from "./args.js";
import { Runtime } from "../runtime/runtime.js";
import { Progress } from "../util/progress.js";
import { StopOnCtrlC } from "./ctrl-c.js";
import { loadBible, loadPairs, type ParallelCorpus } from "../data/pairs.js";
import { DEFAULT_BPE_VOCAB, learnSharedBpe, loadBpe } from "../seq2seq/bpe.js";
import { GNMT_LAYERS, type GnmtConfig, type NmtCheckpoint, loadNmt, paramCount } from "../seq2seq/gnmt.js";
import { NMT_TRAIN_DEFAULTS, type NmtTrainOptions, resumePath, trainNmt } from "../seq2seq/train.js";

const D = NMT_TRAIN_DEFAULTS;
const USAGE = `dmi train nmt --corpus bible | --pairs FILE --hidden H --out FILE [options]
  --epochs N         epochs in total, counting those of a resumed run (10)
  --batch B          sentence pairs per batch, length-sorted (${D.batch})
  --max-length N     leave out training pairs longer than N tokens on either side (${D.maxLength})
  --lr X             peak Adam learning rate (${D.schedule.lr}); warm-up ${D.schedule.warmup} steps from 1 %,
                     constant until ${D.schedule.remain} of the run, then halved ${D.schedule.decays} times
  --warmup N         warm-up steps (${D.schedule.warmup})
  --dropout P        (${D.dropout}); label smoothing ${D.smoothing}; gradient-norm clip ${D.clip}
  --encoder-layers N (${GNMT_LAYERS.encoderLayers}, the first bidirectional); --decoder-layers N (${GNMT_LAYERS.decoderLayers})
  --bpe N|FILE.json  shared BPE vocabulary learned on the training split (${DEFAULT_BPE_VOCAB} symbols), or the one
                     saved by \`dmi data bible --bpe-out FILE.json\` (the same for the same split and size)
  --seed S           initialisation, batch order and dropout (${D.seed})
  --threads N        threads for the kernels (one per core)
  --dtype f32|f16    storage of the best checkpoint FILE (f16: what ships)
  --resume           continue from FILE's resumable checkpoint (${resumePath("FILE")})
  --max-batches N    at most N batches per epoch (quick runs, throughput)
  --max-valid N      decode only the first N validation pairs for BLEU (all)
The best weights by greedy validation BLEU are kept in FILE; Ctrl-C stops after the current batch.`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      corpus: { type: "string" }, pairs: { type: "string" }, hidden: { type: "string" }, epochs: { type: "string" },
      batch: { type: "string" }, "max-length": { type: "string" }, lr: { type: "string" }, warmup: { type: "string" },
      dropout: { type: "string" }, "encoder-layers": { type: "string" }, "decoder-layers": { type: "string" }, bpe: { type: "string" },
      seed: { type: "string" }, threads: { type: "string" }, dtype: { type: "string" }, out: { type: "string" },
      resume: { type: "boolean" }, "max-batches": { type: "string" }, "max-valid": { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  const out = outputFile(v.out, USAGE);
  const saved: NmtCheckpoint | undefined = v.resume ? await loadNmt(resumeFile(resumePath(out))) : undefined;
  const t = saved?.training;
  if (saved && (v.hidden !== undefined || v.bpe !== undefined || v["encoder-layers"] !== undefined || v["decoder-layers"] !== undefined)) {
    throw new Error("--resume continues the checkpoint's model; drop --hidden, --bpe, --encoder-layers and --decoder-layers");
  }
  const corpusName = v.pairs ?? v.corpus ?? t?.corpus;
  if (v.pairs === undefined && corpusName !== "bible") throw new Error(`--corpus must be bible (or give --pairs FILE), got ${JSON.stringify(corpusName)}`);
  const corpus: ParallelCorpus = corpusName === "bible" ? await loadBible() : await loadPairs(corpusName!);
  const schedule = { ...D.schedule, lr: nonNegative("lr", v.lr, t?.schedule.lr ?? D.schedule.lr), warmup: integer("warmup", v.warmup, 1, t?.schedule.warmup ?? D.schedule.warmup) };
  const options: NmtTrainOptions = {
    ...D, schedule,
    batch: integer("batch", v.batch, 1, t?.batch ?? D.batch),
    maxLength: integer("max-length", v["max-length"], 2, t?.maxLength ?? D.maxLength),
    dropout: nonNegative("dropout", v.dropout, t?.dropout ?? D.dropout),
    seed: integer("seed", v.seed, 0, t?.seed ?? D.seed),
  };
  if (options.dropout >= 1) throw new Error(`--dropout must be below 1, got ${options.dropout}`);
  if (!(schedule.lr > 0)) throw new Error(`--lr must be above 0, got ${schedule.lr}`);
  const epochs = integer("epochs", v.epochs, 1, t?.epochs ?? 10);
  const dtype = (v.dtype ?? "f16").toUpperCase();
  if (dtype !== "F32" && dtype !== "F16") throw new Error(`--dtype must be f32 or f16, got ${v.dtype}`);
  const maxBatches = integer("max-batches", v["max-batches"], 1, Infinity), maxValid = integer("max-valid", v["max-valid"], 1, Infinity);

  let bpe = saved?.bpe;
  if (!bpe && v.bpe?.endsWith(".json")) bpe = await loadBpe(v.bpe);
  if (!bpe) {
    const size = integer("bpe", v.bpe, 260, DEFAULT_BPE_VOCAB);
    console.error(`dmi train nmt: learning a shared BPE of ${size} symbols on ${corpus.name}'s training split`);
    bpe = learnSharedBpe(corpus, size);
  }
  const config: GnmtConfig = saved?.config ?? {
    vocab: bpe.size, hidden: integer("hidden", v.hidden, 1),
    encoderLayers: integer("encoder-layers", v["encoder-layers"], 2, GNMT_LAYERS.encoderLayers),
    decoderLayers: integer("decoder-layers", v["decoder-layers"], 2, GNMT_LAYERS.decoderLayers),
  };
  const rt = await Runtime.create(v.threads === undefined ? {} : { threads: integer("threads", v.threads, 1) });
  console.error(`dmi train nmt: GNMT ${config.encoderLayers}+${config.decoderLayers} layers × ${config.hidden}, vocab ${config.vocab}, ` +
    `${(paramCount(config) / 1e6).toFixed(2)} M parameters; ${corpus.name} ${corpus.pairs.train.length} training pairs; ` +
    `${rt.variant} build, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}`);

  const ctrlC = new StopOnCtrlC("dmi train nmt", "batch");
  let bar: Progress | null = null, seen = 0, lossSum = 0, tokens = 0, start = 0;
  try {
    const result = await trainNmt(rt, { config, corpus: corpusName!, options, epochs, out, dtype: dtype as "F32" | "F16", resume: saved, maxBatches, maxValid },
      { bpe, train: corpus.pairs.train, valid: corpus.pairs.valid }, {
        onEpochStart: (epoch, first, batches) => {
          bar = new Progress(`epoch ${epoch}`, batches - first, "batches");
          seen = 0; lossSum = 0; tokens = 0; start = performance.now();
        },
        onBatch: (b) => {
          seen++; lossSum += b.loss * b.tokens; tokens += b.tokens;
          const secs = (performance.now() - start) / 1000;
          bar!.update(seen, `loss ${(lossSum / tokens).toFixed(3)}, ${(tokens / secs).toFixed(0)} target tok/s, lr ${b.lr.toExponential(2)}`);
        },
        onValidate: (done, total) => { if (done === 1) bar = new Progress("valid BLEU", total, "sentences"); bar!.update(done); },
        onEpoch: (r) => console.log(`epoch ${r.epoch}: train loss ${r.trainLoss.toFixed(3)}, valid loss ${r.validLoss.toFixed(3)}, ` +
          `valid BLEU ${r.validBleu.toFixed(2)} (greedy)${r.improved ? " *" : ""}, ${r.seconds.toFixed(0)} s`),
        stopRequested: () => ctrlC.requested,
      });
    if (result.stopped) console.error(`stopped after epoch ${result.epoch} (mid-epoch state in ${resumePath(out)}); continue with --resume`);
    else console.log(`best valid BLEU ${result.bestValidBleu?.toFixed(2)} (greedy) in ${out}; ${result.trainPairs} training pairs (${result.leftOut} longer than ${options.maxLength} tokens left out)`);
  } finally {
    ctrlC.dispose();
    await rt.close();
  }
}
