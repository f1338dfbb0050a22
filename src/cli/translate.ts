// `dmi translate`: reads sentences from standard input, one a line, and prints their translations
// by a trained GNMT checkpoint, dense or with the dual-module decoder at an insensitive ratio.
// Every input line gives exactly one output line: an empty line gives an empty line; characters the
// BPE never saw pass as bytes; a line longer than the model reads is cut, with a note on stderr.
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { Runtime } from "../runtime/runtime.js";
import { integer, nonNegative } from "./args.js";
import { BEAM_DEFAULTS, translateLine, type Decode } from "../seq2seq/translate.js";
import { DUAL_SETUP_DEFAULTS, fitDualDecoder, openNmt, trainingCorpus } from "../seq2seq/open.js";

const USAGE = `dmi translate --model FILE [options] < sentences.txt
  --ratio R      dual-module decoder at insensitive ratio R in [0, 1) (little modules fitted on
                 ${DUAL_SETUP_DEFAULTS.fitPairs} training pairs of the model's corpus, calibrated on ${DUAL_SETUP_DEFAULTS.calibrationPairs} more); dense without
  --greedy       greedy decoding instead of beam search
  --beam N       beam width (${BEAM_DEFAULTS.beam}); --alpha A length normalization (${BEAM_DEFAULTS.alpha}); --beta B coverage penalty (${BEAM_DEFAULTS.beta})
  --max-length N longest translation in tokens (${BEAM_DEFAULTS.maxLength})
  --pairs FILE   the src<TAB>tgt file the model was trained on, when it is not where the checkpoint says
  --threads N    kernel threads`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, ratio: { type: "string" }, greedy: { type: "boolean" }, beam: { type: "string" },
      alpha: { type: "string" }, beta: { type: "string" }, "max-length": { type: "string" }, pairs: { type: "string" },
      threads: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  if (!v.model) throw new Error(`--model FILE is required\n${USAGE}`);
  const ratio = v.ratio === undefined ? null : nonNegative("ratio", v.ratio, 0);
  if (ratio !== null && !(ratio < 1)) throw new Error(`--ratio must be in [0, 1), got ${v.ratio}`);
  const beam = {
    beam: integer("beam", v.beam, 1, BEAM_DEFAULTS.beam), alpha: nonNegative("alpha", v.alpha, BEAM_DEFAULTS.alpha),
    beta: nonNegative("beta", v.beta, BEAM_DEFAULTS.beta), maxLength: integer("max-length", v["max-length"], 1, BEAM_DEFAULTS.maxLength),
  };
  const decode: Decode = v.greedy ? "greedy" : "beam";
  const rt = await Runtime.create(v.threads === undefined ? {} : { threads: integer("threads", v.threads, 1) });
  try {
    const { model, checkpoint } = await openNmt(rt, v.model);
    if (ratio !== null) {
      console.error(`dmi translate: fitting the dual-module decoder on ${checkpoint.training.corpus}'s training pairs, calibrating to ratio ${ratio}`);
      const { dual, calibration } = fitDualDecoder(rt, model, await trainingCorpus(checkpoint, v.pairs));
      dual.calibrate(calibration, ratio);
      dual.use(true);
    }
    let n = 0;
    for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      n++;
      const r = translateLine(model, line, decode, beam);
      if (r.warning) console.error(`dmi translate: line ${n}: ${r.warning}`);
      process.stdout.write(`${r.text}\n`);
    }
  } finally {
    await rt.close();
  }
}
