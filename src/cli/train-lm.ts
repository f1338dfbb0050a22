// `dmi train lm`: trains a word-level language model on one of the project's corpora with PyTorch's
// word_language_model recipe (src/recurrent/train.ts), with a progress bar, a checkpoint every epoch, --resume,
// and a clean stop on Ctrl-C (the current window finishes, a resumable checkpoint is written).
// With --prune S --prune-from DENSE: automated gradual pruning of a trained dense model's recurrent
// weights to sparsity S, then fine-tuning at S (src/recurrent/prune.ts).
import { parseArgs } from "node:util";
import { basename } from "node:path";
import { integer, nonNegative, outputFile, resumeFile } from "./args.js";
import { Runtime } from "../runtime/runtime.js";
import { Progress } from "../util/progress.js";
import { StopOnCtrlC } from "./ctrl-c.js";
import { checkVocabulary } from "../recurrent/open.js";
import { CORPORA, loadCorpus, type CorpusName } from "../data/corpus.js";
import { type LmCheckpoint, type LmConfig, loadLm, paramCount } from "../recurrent/lm.js";
import { TRAIN_DEFAULTS, type TrainOptions, resumePath, trainLm } from "../recurrent/train.js";
import { pruneRecord, type PruneSchedule } from "../recurrent/prune.js";

const USAGE = `dmi train lm --corpus ${CORPORA.join("|")} --cell lstm|gru --hidden H --out FILE [options]
  --layers L        recurrent layers (1)
  --emb E           embedding size (H)
  --tied            decoder weight = embedding weight (needs E = H)
  --epochs N        epochs in total, counting those of a resumed run (6; with --resume, the run's own)
  --lr X            initial learning rate (${TRAIN_DEFAULTS.lr}); divided by 4 when validation stops improving
  --clip X          gradient-norm bound (${TRAIN_DEFAULTS.clip})
  --dropout P       dropout on the embedding, between layers and on the output (${TRAIN_DEFAULTS.dropout})
  --bptt T          steps per window (${TRAIN_DEFAULTS.bptt}); --batch B streams (${TRAIN_DEFAULTS.batch}); --eval-batch (${TRAIN_DEFAULTS.evalBatch})
  --seed S          initialisation and dropout masks (${TRAIN_DEFAULTS.seed}); runs are deterministic for a given --threads
  --threads N       threads for the kernels (one per core)
  --dtype f32|f16   storage of the best checkpoint FILE (f32)
  --resume          continue from FILE's resumable checkpoint (${resumePath("FILE")})
  --max-batches N   at most N windows per epoch, in training and in each evaluation (quick runs)
  --max-tokens N    the same, as training tokens per epoch
  --test-each-epoch also report the test loss after every epoch (a learning curve; the recipe never looks at it)
Pruning (AGP, Zhu & Gupta 2017) a trained dense model's recurrent weights (weight_ih, weight_hh of every
layer; embedding, decoder and biases stay dense), then fine-tuning it; model, corpus and recipe come from
the dense checkpoint:
  --prune S         final sparsity s_f of every recurrent weight matrix, in [0, 1)
  --prune-from FILE the trained dense checkpoint to start from
  --prune-steps N   windows over which sparsity rises from s_i to s_f (the first half of the run)
  --prune-every D   windows between mask updates (100)
  --prune-initial S s_i, the sparsity of the first update (0)
  --lr X            here defaults to the dense checkpoint's last learning rate
The best weights by validation loss are kept in FILE (while pruning: only epochs after the ramp);
Ctrl-C stops after the current window.`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      corpus: { type: "string" }, cell: { type: "string" }, hidden: { type: "string" }, layers: { type: "string" },
      emb: { type: "string" }, tied: { type: "boolean" }, epochs: { type: "string" }, lr: { type: "string" },
      clip: { type: "string" }, dropout: { type: "string" }, bptt: { type: "string" }, batch: { type: "string" },
      "eval-batch": { type: "string" }, seed: { type: "string" }, threads: { type: "string" }, dtype: { type: "string" },
      out: { type: "string" }, resume: { type: "boolean" }, "max-batches": { type: "string" }, "max-tokens": { type: "string" },
      "test-each-epoch": { type: "boolean" }, help: { type: "boolean" },
      prune: { type: "string" }, "prune-from": { type: "string" }, "prune-steps": { type: "string" },
      "prune-every": { type: "string" }, "prune-initial": { type: "string" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  const out = outputFile(v.out, USAGE);

  // With --resume, whatever is not given comes from the checkpoint; what is given must agree with it.
  const saved: LmCheckpoint | undefined = v.resume ? await loadLm(resumeFile(resumePath(out))) : undefined;
  const savedPrune = saved ? pruneRecord(saved, resumePath(out)) : null;
  // Pruning starts from a dense checkpoint, which then stands where a resumed one would for the defaults.
  if ((v.prune === undefined) !== (v["prune-from"] === undefined) && !savedPrune) throw new Error("--prune S and --prune-from FILE go together");
  for (const key of ["prune-steps", "prune-every", "prune-initial"] as const) {
    if (v[key] !== undefined && v.prune === undefined && !savedPrune) throw new Error(`--${key} needs --prune S --prune-from FILE`);
  }
  if (saved && v["prune-from"] !== undefined) throw new Error("--prune-from: a resumed run continues from its own weights; drop --prune-from");
  const dense: LmCheckpoint | undefined = !saved && v["prune-from"] !== undefined ? await loadLm(v["prune-from"]) : undefined;
  if (dense && pruneRecord(dense, v["prune-from"]!)) console.error(`dmi train lm: ${v["prune-from"]} is already pruned; its zeros stay pruned`);
  const base = saved ?? dense;
  const t = base?.training;
  const corpus = (v.corpus ?? t?.corpus) as CorpusName | undefined;
  if (!corpus || !CORPORA.includes(corpus)) throw new Error(`--corpus must be one of ${CORPORA.join(", ")}, got ${JSON.stringify(corpus)}`);
  const cell = v.cell ?? base?.config.cell;
  if (cell !== "lstm" && cell !== "gru") throw new Error(`--cell must be lstm or gru, got ${JSON.stringify(cell)}`);
  const hidden = integer("hidden", v.hidden, 1, base?.config.hidden);
  const config: LmConfig = {
    cell, vocab: 0, hidden, layers: integer("layers", v.layers, 1, base?.config.layers ?? 1),
    emb: integer("emb", v.emb, 1, base?.config.emb ?? hidden), tied: v.tied ?? base?.config.tied ?? false,
  };
  if (dense) {
    const { vocab: _, ...want } = dense.config, { vocab: __, ...got } = config;
    if (JSON.stringify(want) !== JSON.stringify(got)) throw new Error(`--prune-from ${v["prune-from"]} is a ${JSON.stringify(want)} model; drop --cell, --hidden, --layers, --emb and --tied`);
  }
  const options: TrainOptions = {
    bptt: integer("bptt", v.bptt, 1, t?.bptt ?? TRAIN_DEFAULTS.bptt),
    batch: integer("batch", v.batch, 1, t?.batch ?? TRAIN_DEFAULTS.batch),
    evalBatch: integer("eval-batch", v["eval-batch"], 1, TRAIN_DEFAULTS.evalBatch),
    lr: nonNegative("lr", v.lr, dense ? dense.training.lr : TRAIN_DEFAULTS.lr),
    clip: nonNegative("clip", v.clip, t?.clip ?? TRAIN_DEFAULTS.clip),
    dropout: nonNegative("dropout", v.dropout, t?.dropout ?? TRAIN_DEFAULTS.dropout),
    seed: integer("seed", v.seed, 0, t?.seed ?? TRAIN_DEFAULTS.seed),
  };
  if (options.dropout >= 1) throw new Error(`--dropout must be below 1, got ${options.dropout}`);
  if (!(options.lr > 0)) throw new Error(`--lr must be above 0, got ${options.lr}`);
  if (saved && v.lr !== undefined) throw new Error(`--lr: a resumed run continues with the checkpoint's learning rate (${saved.training.lr}); drop --lr`);
  if (config.tied && config.emb !== config.hidden) {
    throw new Error(`--tied needs the embedding size equal to the hidden size, got --emb ${config.emb} and --hidden ${config.hidden}; drop --emb (it defaults to H)`);
  }
  const epochs = integer("epochs", v.epochs, 1, saved?.training.epochs ?? 6);
  const dtype = (v.dtype ?? "f32").toUpperCase();
  if (dtype !== "F32" && dtype !== "F16") throw new Error(`--dtype must be f32 or f16, got ${v.dtype}`);
  const windowTokens = options.bptt * options.batch;
  const maxWindows = Math.min(integer("max-batches", v["max-batches"], 1, Infinity),
    Math.ceil(integer("max-tokens", v["max-tokens"], 1, Infinity) / windowTokens));

  const data = await loadCorpus(corpus, { onProgress: (m) => console.error(m) });
  config.vocab = data.vocab.size;
  if (saved) checkVocabulary(saved, data, resumePath(out));
  if (dense) checkVocabulary(dense, data, v["prune-from"]!);

  // The pruning schedule, in windows of this run: from the options, or the resumed run's record.
  let prune: (PruneSchedule & { from: string }) | undefined;
  if (savedPrune) {
    const { sparsity: _, matrices: __, ...schedule } = savedPrune;
    prune = schedule;
    if (v.prune !== undefined && Number(v.prune) !== schedule.final) throw new Error(`--prune: the resumed run prunes to ${schedule.final}; drop --prune`);
  } else if (dense) {
    const final = nonNegative("prune", v.prune, 0), windows = Math.min(maxWindows, Math.floor(data.train.length / options.batch / options.bptt) || 1);
    const every = integer("prune-every", v["prune-every"], 1, 100);
    prune = {
      initial: nonNegative("prune-initial", v["prune-initial"], 0), final, start: 0,
      steps: integer("prune-steps", v["prune-steps"], 0, Math.floor((epochs * windows) / 2)), every, from: basename(v["prune-from"]!),
    };
    if (!(final < 1)) throw new Error(`--prune must be below 1, got ${final}`);
  }
  const rt = await Runtime.create(v.threads === undefined ? {} : { threads: integer("threads", v.threads, 1) });
  console.error(`dmi train lm: ${config.cell.toUpperCase()} ${config.layers}×${config.hidden}, emb ${config.emb}${config.tied ? " (tied)" : ""}, ` +
    `vocab ${config.vocab}, ${(paramCount(config) / 1e6).toFixed(2)} M parameters; ${corpus} ${data.train.length} training tokens; ` +
    `${rt.variant} build, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}`);

  const ctrlC = new StopOnCtrlC("dmi train lm", "window");

  let bar: Progress | null = null, seen = 0, lossSum = 0, lossTokens = 0;
  try {
    const result = await trainLm(rt, { config, corpus, options, epochs, out, dtype, maxWindows, resume: saved, vocabDigest: data.vocab.digest,
      testEachEpoch: v["test-each-epoch"], init: dense?.params, prune }, data, {
      onEpochStart(epoch, first, batches, tokensPerBatch) {
        bar = new Progress(`epoch ${epoch}`, (batches - first) * tokensPerBatch, "tok");
        seen = lossSum = lossTokens = 0;
      },
      onBatch(b) {
        seen += b.tokens;
        lossSum += b.loss * b.tokens;
        lossTokens += b.tokens;
        const mean = lossSum / lossTokens;
        bar!.update(seen, `loss ${mean.toFixed(3)} (ppl ${Math.exp(mean).toFixed(1)}), lr ${b.lr}`);
      },
      onEvaluate(split, done, total) {
        if (done === 1) bar = new Progress(split, total, "windows");
        bar!.update(done);
      },
      onEpoch(e) {
        console.error(`epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(3)}, valid loss ${e.validLoss.toFixed(3)} ` +
          `(ppl ${Math.exp(e.validLoss).toFixed(2)}), ` +
          (e.testLoss === null ? "" : `test loss ${e.testLoss.toFixed(3)} (ppl ${Math.exp(e.testLoss).toFixed(2)}), `) +
          `${e.seconds.toFixed(0)} s; ` +
          (e.pruning ? `sparsity ${e.pruning.sparsity.toFixed(3)}; ` : "") +
          (e.pruning?.ramping ? "pruning ramp still rising: not a candidate for the best" :
            e.improved ? `best so far, saved to ${out}` : `no improvement: lr now ${e.lr}`));
      },
      stopRequested: () => ctrlC.requested,
    });
    if (result.stopped) {
      console.error(`dmi train lm: stopped after ${result.epoch} complete epochs; continue with the same command and --resume ` +
        `(state in ${resumePath(out)}${result.bestValidLoss === null ? "" : `; best weights in ${out}`})`);
      process.exitCode = 130;
    } else {
      console.log(`best valid loss ${result.bestValidLoss!.toFixed(4)} (ppl ${Math.exp(result.bestValidLoss!).toFixed(2)}), ` +
        `test loss ${result.testLoss!.toFixed(4)} (ppl ${Math.exp(result.testLoss!).toFixed(2)}); model in ${out}`);
    }
  } finally {
    ctrlC.dispose();
    await rt.close();
  }
}
