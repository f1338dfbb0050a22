// `dmi eval nmt`: BLEU of a GNMT checkpoint on its test split, dense and with the dual-module decoder
// at each insensitive ratio (little modules on all decoder layers fitted on training pairs,
// thresholds calibrated on other training pairs), greedy and beam, with the achieved ratio and the
// decoder step's time at batch 1, dense against dual; a table, the BLEU signature, and JSON rows.
import { parseArgs } from "node:util";
import { basename } from "node:path";
import { Runtime } from "../runtime/runtime.js";
import { writeFileAtomic } from "../io/files.js";
import { Progress } from "../util/progress.js";
import { formatTable } from "../util/table.js";
import { integer, list, nonNegative, numbers } from "./args.js";
import { checkRatios } from "../recurrent/eval.js";
import { formatBleu } from "../seq2seq/bleu.js";
import { BEAM_DEFAULTS, type Decode } from "../seq2seq/translate.js";
import { encodePairs } from "../seq2seq/train.js";
import { evaluateNmt } from "../seq2seq/dual.js";
import { DUAL_SETUP_DEFAULTS, fitDualDecoder, openNmt, trainingCorpus } from "../seq2seq/open.js";

const USAGE = `dmi eval nmt --model FILE [options]
  --ratios R,..          insensitive ratios in [0, 1) (0.1,0.3,0.5,0.7,0.9)
  --decode greedy,beam   decodings to score (both); beam ${BEAM_DEFAULTS.beam}, α ${BEAM_DEFAULTS.alpha}, β ${BEAM_DEFAULTS.beta}, at most ${BEAM_DEFAULTS.maxLength} tokens
  --split test|valid     (test)
  --max-sentences N      score only the split's first N pairs (all)
  --fit-pairs N          training pairs the little modules are fitted on (${DUAL_SETUP_DEFAULTS.fitPairs})
  --calibration-pairs N  further training pairs the thresholds are calibrated on (${DUAL_SETUP_DEFAULTS.calibrationPairs})
  --k K                  little module's projected size (the JL default); --lambda X ridge regularisation (1e-4)
  --rounds N             interleaved timing rounds of the decoder step per ratio (400)
  --pairs FILE           the src<TAB>tgt file the model was trained on, when it is not where the checkpoint says
  --threads N            kernel threads
  --json FILE            rows {model, split, decode, ratio, achieved_ratio, bleu, bleu_dense, dense_ms, dual_ms, threads}`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, ratios: { type: "string", default: "0.1,0.3,0.5,0.7,0.9" }, decode: { type: "string", default: "greedy,beam" },
      split: { type: "string", default: "test" }, "max-sentences": { type: "string" }, "fit-pairs": { type: "string" },
      "calibration-pairs": { type: "string" }, k: { type: "string" }, lambda: { type: "string" }, rounds: { type: "string" }, pairs: { type: "string" },
      threads: { type: "string" }, json: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  if (!v.model) throw new Error(`--model FILE is required\n${USAGE}`);
  const ratios = numbers(v.ratios, "ratios")!;
  checkRatios(ratios, "--ratios");
  const decodes = list(v.decode)! as Decode[];
  for (const d of decodes) if (d !== "greedy" && d !== "beam") throw new Error(`--decode: ${d} is neither greedy nor beam`);
  if (v.split !== "test" && v.split !== "valid") throw new Error(`--split must be test or valid, got ${v.split}`);
  const split = v.split;
  const setup = {
    fitPairs: integer("fit-pairs", v["fit-pairs"], 1, DUAL_SETUP_DEFAULTS.fitPairs),
    calibrationPairs: integer("calibration-pairs", v["calibration-pairs"], 1, DUAL_SETUP_DEFAULTS.calibrationPairs),
    fit: { ...(v.k === undefined ? {} : { k: integer("k", v.k, 1) }), ...(v.lambda === undefined ? {} : { lambda: nonNegative("lambda", v.lambda, 0) }) },
  };
  const rounds = integer("rounds", v.rounds, 1, 400), max = integer("max-sentences", v["max-sentences"], 1, Infinity);
  const rt = await Runtime.create(v.threads === undefined ? {} : { threads: integer("threads", v.threads, 1) });
  try {
    const { model, checkpoint } = await openNmt(rt, v.model);
    const corpus = await trainingCorpus(checkpoint, v.pairs);
    const refs = corpus.pairs[split].slice(0, max), pairs = encodePairs(model.bpe, refs);
    console.error(`dmi eval nmt: GNMT ${checkpoint.config.encoderLayers}+${checkpoint.config.decoderLayers} × ${checkpoint.config.hidden} on ${corpus.name} ${split} (${pairs.length} pairs); ` +
      `fitting little modules on ${setup.fitPairs} training pairs`);
    const { dual, calibration } = fitDualDecoder(rt, model, corpus, setup);
    let bar: Progress | null = null, label = "";
    const { rows, dense } = await evaluateNmt(rt, dual, calibration, pairs, refs, {
      ratios, decodes, beam: BEAM_DEFAULTS, rounds, model: basename(v.model), split,
      onProgress: (what, done, total) => { if (what !== label) { label = what; bar = new Progress(what, total, "sentences"); } bar!.update(done); },
    });
    for (const [d, s] of dense) console.log(`dense ${d}: ${formatBleu(s)}`);
    console.log(formatTable(["decode", "ratio", "achieved", "BLEU", "dense BLEU", "ΔBLEU", "dense ms", "dual ms", "speed-up"],
      rows.map((r) => [r.decode, r.ratio, (100 * r.achieved_ratio).toFixed(1) + " %", r.bleu.toFixed(2), r.bleu_dense.toFixed(2),
        (r.bleu - r.bleu_dense).toFixed(2), r.dense_ms.toFixed(3), r.dual_ms.toFixed(3), (r.dense_ms / r.dual_ms).toFixed(2) + "x"])));
    console.log(`times: one decoder LSTM step (${checkpoint.config.decoderLayers} layers, batch 1), median of ${rounds} interleaved rounds, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}`);
    if (v.json) await writeFileAtomic(v.json, new TextEncoder().encode(JSON.stringify(rows, null, 1) + "\n"));
  } finally {
    await rt.close();
  }
}
