// `dmi tables nmt`: the paper's Table 3 (GNMT decoder, dual-module) from a trained checkpoint: BLEU
// on the test split dense and at each insensitive ratio (greedy and beam) with the achieved ratio and
// the decoder step's time at batch 1 on each thread count; then the decoder stack's step at the
// paper's shapes and at the trained width with random weights, against onnxruntime-node (the rows of
// `dmi bench rnn --cell gnmt-stack`). Markdown and JSON into DIR.
import { parseArgs } from "node:util";
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import { Runtime } from "../runtime/runtime.js";
import { writeFileAtomic } from "../io/files.js";
import { FLUSH_BYTES } from "../util/timing.js";
import { Progress } from "../util/progress.js";
import { formatTable } from "../util/table.js";
import { checkRatios } from "../recurrent/eval.js";
import { benchShape, type RnnBenchRow } from "../bench/rnn.js";
import { SHAPES, type Shape } from "../bench/models.js";
import { BEAM_DEFAULTS } from "../seq2seq/translate.js";
import { encodePairs } from "../seq2seq/train.js";
import { evaluateNmt, type NmtEvalRow } from "../seq2seq/dual.js";
import { formatBleu } from "../seq2seq/bleu.js";
import { DUAL_SETUP_DEFAULTS, fitDualDecoder, openNmt, trainingCorpus } from "../seq2seq/open.js";
import { integer, numbers } from "./args.js";

const USAGE = `dmi tables nmt --model FILE --out DIR [options]
  --ratios R,...       insensitive ratios (0.1,0.3,0.5,0.7,0.9)
  --threads N,...      thread counts the decoder step is timed on (1,2)
  --max-sentences N    score only the test split's first N pairs (all)
  --fit-pairs N        training pairs the little modules are fitted on (${DUAL_SETUP_DEFAULTS.fitPairs}); --calibration-pairs N (${DUAL_SETUP_DEFAULTS.calibrationPairs})
  --paper-shapes none  leave out the random-weight decoder stack at the paper's shapes (1024, 2048)
  --steps N            steps per timing repetition of the random-weight rows (100)
Writes DIR/nmt.md and DIR/nmt.json.`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, out: { type: "string" }, ratios: { type: "string" }, threads: { type: "string" },
      "max-sentences": { type: "string" }, "fit-pairs": { type: "string" }, "calibration-pairs": { type: "string" }, "paper-shapes": { type: "string" }, steps: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  if (!v.model || !v.out) throw new Error(`--model FILE and --out DIR are required\n${USAGE}`);
  const ratios = numbers(v.ratios, "ratios") ?? [0.1, 0.3, 0.5, 0.7, 0.9];
  checkRatios(ratios, "--ratios");
  const threads = numbers(v.threads, "threads") ?? [1, 2];
  for (const t of threads) if (!Number.isInteger(t) || t < 1) throw new Error(`--threads: ${t} is not a positive whole number`);
  const max = integer("max-sentences", v["max-sentences"], 1, Infinity), steps = integer("steps", v.steps, 1, 100);
  const setup = {
    fitPairs: integer("fit-pairs", v["fit-pairs"], 1, DUAL_SETUP_DEFAULTS.fitPairs),
    calibrationPairs: integer("calibration-pairs", v["calibration-pairs"], 1, DUAL_SETUP_DEFAULTS.calibrationPairs),
  };
  mkdirSync(v.out, { recursive: true });

  const rows: NmtEvalRow[] = [], stack: RnnBenchRow[] = [];
  let signature = "", width = 0;
  for (const t of threads) {
    const rt = await Runtime.create({ threads: t });
    try {
      const { model, checkpoint } = await openNmt(rt, v.model);
      const corpus = await trainingCorpus(checkpoint);
      const refs = corpus.pairs.test.slice(0, max), pairs = encodePairs(model.bpe, refs);
      const { dual, calibration } = fitDualDecoder(rt, model, corpus, setup);
      let bar: Progress | null = null, label = "";
      const r = await evaluateNmt(rt, dual, calibration, pairs, refs, {
        ratios, decodes: ["greedy", "beam"], beam: BEAM_DEFAULTS, rounds: 400, model: basename(v.model), split: "test",
        onProgress: (what, done, total) => { if (what !== label) { label = what; bar = new Progress(`${t} thread(s): ${what}`, total, "sentences"); } bar!.update(done); },
      });
      rows.push(...r.rows);
      signature = [...r.dense].map(([d, s]) => `dense ${d}: ${formatBleu(s)}`).join("\n");
      width = checkpoint.config.hidden;
      // The trained width's decoder stack (layers 1..3: [below | context], residual from the second) with random weights, beside onnxruntime.
      const shapes: Shape[] = [{ cell: "gnmt-stack", config: { kind: "lstm", input: width, hidden: width, layers: checkpoint.config.decoderLayers - 1, context: width, residualFrom: 1 } }];
      if (v["paper-shapes"] !== "none") shapes.push(...SHAPES.filter((s) => s.cell === "gnmt-layer" || s.cell === "gnmt-stack"));
      const flush = rt.heap.f32(FLUSH_BYTES / 4);
      for (const shape of shapes) stack.push(...(await benchShape(rt, shape, [0, 0.5], [t], ["cold"], steps, [32], flush)));
    } finally {
      await rt.close();
    }
  }
  const table3 = formatTable(["threads", "decode", "ratio", "achieved", "BLEU", "dense BLEU", "ΔBLEU", "dense ms", "dual ms", "speed-up"],
    rows.map((r) => [r.threads, r.decode, r.ratio, `${(100 * r.achieved_ratio).toFixed(1)} %`, r.bleu.toFixed(2), r.bleu_dense.toFixed(2),
      (r.bleu - r.bleu_dense).toFixed(2), r.dense_ms.toFixed(3), r.dual_ms.toFixed(3), `${(r.dense_ms / r.dual_ms).toFixed(2)}x`]));
  const stackTable = formatTable(["cell", "hidden", "input", "threads", "ratio", "achieved", "dense ms", "ort ms", "dual ms", "dense/dual"],
    stack.map((r) => [r.cell, r.hidden, r.input, r.threads, r.ratio, `${(100 * r.achieved_ratio).toFixed(1)} %`, r.dense_ms.toFixed(3),
      r.ort_ms?.toFixed(3) ?? "-", r.dual_ms.toFixed(3), `${(r.dense_ms / r.dual_ms).toFixed(2)}x`]));
  const md = `# Table 3: GNMT decoder, dense and dual-module (${basename(v.model)}, width ${width})\n\n${signature}\n\n` +
    "Times: one step of the decoder's LSTM layers at batch 1 (trained weights, warm, median of 400 interleaved rounds).\n\n" +
    `${table3}\n\n## The decoder stack's step, random weights (trained width and the paper's shapes), cold caches, beside onnxruntime-node\n\n${stackTable}\n`;
  await writeFileAtomic(join(v.out, "nmt.md"), new TextEncoder().encode(md));
  await writeFileAtomic(join(v.out, "nmt.json"), new TextEncoder().encode(JSON.stringify({ table3: rows, stack }, null, 1) + "\n"));
  console.log(md);
}
