// `dmi eval lm`: perplexity of a language-model checkpoint on its corpus's test split (or a text
// file), dense and dual-module at each insensitive ratio (little modules fitted on train, thresholds
// calibrated on valid), as a table and optionally as JSON rows; then generation: the dual-module
// output layer's agreement with the dense model and the time of one whole token, cold.
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { Runtime } from "../runtime/runtime.js";
import { BITS, type Bits } from "../dual/quantize.js";
import type { FitMethod } from "../recurrent/fit.js";
import { writeFileAtomic } from "../io/files.js";
import { Progress } from "../util/progress.js";
import { formatTable } from "../util/table.js";
import { numbers, optionalInteger, optionalProjection } from "./args.js";
import {
  DEFAULT_MAX_TOKENS, K_GRID, checkRatios, evaluateDecoder, evaluateLm, timeSteps, timeTokens,
  type DecoderEvalResult, type LmEvalOptions, type LmEvalResult, type StepTimes, type TokenTimes,
} from "../recurrent/eval.js";
import { openLm, testText, type OpenLmOptions, type OpenedLm } from "../recurrent/open.js";
import type { CellKind } from "../recurrent/stack.js";
import { DUAL_DECODER_DEFAULTS, clampRule, type CandidateRule, type DualDecoder } from "../recurrent/dual-decoder.js";

/** The dual output layer's defaults, and the rounds of the token timing. */
export const DECODER_DEFAULTS = { ...DUAL_DECODER_DEFAULTS, rounds: 100 };

const USAGE = `dmi eval lm --model FILE [options]
  FILE: a dualmodule checkpoint, a PyTorch word_language_model state_dict saved as safetensors, or its ONNX export
  --ratios R,..        insensitive ratios in [0, 1) (0.1,0.3,0.5,0.7,0.9)
  --corpus NAME        evaluate on this corpus instead of the one the model was trained on
  --data DIR           a corpus of your own, as PyTorch's word_language_model reads it: DIR/train.txt, valid.txt,
                       test.txt (needed for a PyTorch state_dict or ONNX model, which carry no vocabulary)
  --data FILE --split P,P,P   one text file cut by lines into train, valid, test (90,5,5)
  --cell lstm|gru      the cell the model must hold (checked against the shapes)
  --train-tokens N     training tokens the little modules are fitted on (${DEFAULT_MAX_TOKENS.train})
  --valid-tokens N     validation tokens the thresholds are calibrated on (${DEFAULT_MAX_TOKENS.valid})
  --test-tokens N      test tokens perplexity is measured on (all)
  --text FILE          measure perplexity on this text file instead of the test split (unknown words: <unk>)
  --k K | --eps E      little module: projected size, or the Johnson–Lindenstrauss ε that sets it (0.5)
  --k auto             the smallest k of ${K_GRID.join(", ")} whose validation perplexity at --auto-ratio
                       stays within --budget of the dense model's (on the valid split's first 5000 tokens)
  --auto-ratio R       the ratio k auto is chosen at (0.5); --budget B: relative perplexity budget (0.01)
  --bits B             little-weight precision: ${BITS.join(", ")} (8)
  --method M           little-module fit: ridge or sgd (ridge)
  --projection P       random (the paper's sparse projection) or rrr (the reduced-rank basis of the pre-activations) (random)
  --seed S             projection seed (1)
  --preview-rank R     dual output layer for generation: rank of the INT8 preview of every word's logit (${DECODER_DEFAULTS.rank})
  --candidates N|auto|certified   words whose exact logits the dual output layer computes: the N best previews, or
                       auto: those within a margin of the best exact logit, calibrated on held-out training tokens, or
                       certified: those a bound of the preview error cannot rule out (the dense greedy choice always) (${DECODER_DEFAULTS.candidates})
  --margin-quantile Q  candidates auto: the fraction of held-out tokens whose greedy choice the margin keeps (${DECODER_DEFAULTS.quantile})
  --token-rounds N     interleaved rounds of the whole-token timing, caches flushed before each (${DECODER_DEFAULTS.rounds})
  --threads N          kernel threads (one per core)
  --json FILE          also write one JSON row per ratio`;

/** One row of --json: the schema. */
export interface LmEvalRow {
  model: string; cell: string; hidden: number; corpus: string; split: string; // "test" or "text FILE"
  ratio: number; achieved_ratio: number; ppl: number; ppl_dense: number; bytes_reduction: number;
}

/** With generation measured, a row also carries (milliseconds are cold medians at batch 1): */
export interface LmTokenFields {
  threads: number;
  dense_ms: number; dual_ms: number;             // one recurrent step, dense and at the row's ratio
  token_dense_ms: number; token_dual_ms: number; // one whole prediction: dense cell + decoder, dual cell + dual output layer
  output_dense_ms: number; output_dual_ms: number; select_dense_ms: number; select_dual_ms: number;
  preview_rank: number;
  candidate_rule: string; // a fixed count, "auto" or "certified"
  candidates: number;     // mean count of words with exact logits per test position
  greedy_agreement: number; top5_overlap: number; kl: number;
}

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, ratios: { type: "string", default: "0.1,0.3,0.5,0.7,0.9" }, corpus: { type: "string" },
      data: { type: "string" }, split: { type: "string" }, cell: { type: "string" },
      "train-tokens": { type: "string" }, "valid-tokens": { type: "string" }, "test-tokens": { type: "string" }, text: { type: "string" },
      k: { type: "string" }, eps: { type: "string" }, bits: { type: "string" }, method: { type: "string" }, projection: { type: "string" }, "auto-ratio": { type: "string" }, budget: { type: "string" },
      seed: { type: "string" }, threads: { type: "string" }, json: { type: "string" }, help: { type: "boolean" },
      "preview-rank": { type: "string" }, candidates: { type: "string" }, "margin-quantile": { type: "string" }, "token-rounds": { type: "string" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  if (!v.model) throw new Error(`--model FILE is required\n${USAGE}`);
  const ratios = numbers(v.ratios, "ratios") ?? [];
  checkRatios(ratios, "--ratios");
  const bits = optionalInteger("bits", v.bits, 1) as Bits | undefined;
  if (bits !== undefined && !BITS.includes(bits)) throw new Error(`--bits must be one of ${BITS.join(", ")}, got ${v.bits}`);
  const method = v.method as FitMethod | undefined;
  if (method !== undefined && method !== "ridge" && method !== "sgd") throw new Error(`--method must be ridge or sgd, got ${JSON.stringify(method)}`);
  const eps = v.eps === undefined ? undefined : Number(v.eps);
  if (eps !== undefined && !(eps > 0 && eps < 1)) throw new Error(`--eps must be in (0, 1), got ${v.eps}`);
  // A missing output folder would only show after the whole run.
  if (v.json && !existsSync(dirname(resolve(v.json)))) throw new Error(`--json ${v.json}: folder ${dirname(resolve(v.json))} does not exist`);
  const threads = optionalInteger("threads", v.threads, 1);
  const rank = optionalInteger("preview-rank", v["preview-rank"], 1) ?? DECODER_DEFAULTS.rank;
  const candidates = parseCandidates(v.candidates), quantile = numbers(v["margin-quantile"], "margin-quantile")?.[0];
  if (quantile !== undefined && !(quantile > 0 && quantile <= 1)) throw new Error(`--margin-quantile must be in (0, 1], got ${v["margin-quantile"]}`);
  const rounds = optionalInteger("token-rounds", v["token-rounds"], 1) ?? DECODER_DEFAULTS.rounds;
  const options: LmEvalOptions = {
    ratios, bits, method, eps, k: v.k === "auto" ? "auto" : optionalInteger("k", v.k, 1), auto: autoOptions(v), projection: optionalProjection(v.projection), seed: optionalInteger("seed", v.seed, 0),
    maxTokens: {
      train: optionalInteger("train-tokens", v["train-tokens"], 2), valid: optionalInteger("valid-tokens", v["valid-tokens"], 2),
      test: optionalInteger("test-tokens", v["test-tokens"], 2),
    },
    onProgress: progressBars(),
  };

  const rt = await Runtime.create(threads === undefined ? {} : { threads });
  try {
    const opened = await openLm(rt, v.model, { corpus: v.corpus, ...dataOptions(v), onProgress: (m) => console.error(m) });
    const c = opened.checkpoint.config;
    console.error(`dmi eval lm: ${c.cell.toUpperCase()} ${c.layers}×${c.hidden}, vocab ${c.vocab}, ${opened.corpus.name}; ` +
      `${rt.variant} build, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}`);
    const test = await testText(opened, v.text);
    const result = evaluateLm(rt, opened.lm, { ...opened.corpus, test: test.ids }, options);
    const times = await timeSteps(opened.lm, result, test.ids);
    const splits = { ...opened.corpus, test: test.ids };
    const decoder = evaluateDecoder(rt, opened.lm, result, splits, {
      rank: Math.min(rank, c.hidden, c.vocab), candidates: clampRule(candidates, c.vocab), quantile, trainTokens: options.maxTokens?.train, onProgress: options.onProgress,
    });
    const tokens = await timeTokens(rt, opened.lm, result, decoder.decoder, test.ids, { rounds });
    console.log(formatResult(opened, result, times, test.name, { decoder, tokens }));
    if (v.json) {
      const text = JSON.stringify(jsonRows(opened, result, test.name, { decoder, tokens }), null, 1) + "\n";
      await writeFileAtomic(v.json, new TextEncoder().encode(text));
      console.error(`wrote ${v.json}`);
    }
  } finally {
    await rt.close();
  }
}

/** --candidates: a count ≥ 1, auto or certified (the default when absent). */
export function parseCandidates(value: string | undefined): CandidateRule {
  if (value === undefined) return DECODER_DEFAULTS.candidates;
  if (value === "auto" || value === "certified") return value;
  return optionalInteger("candidates", value, 1)!;
}


/** --auto-ratio and --budget, which only k auto reads. */
function autoOptions(v: { k?: string; "auto-ratio"?: string; budget?: string }): LmEvalOptions["auto"] {
  if (v.k !== "auto" && (v["auto-ratio"] !== undefined || v.budget !== undefined)) throw new Error("--auto-ratio and --budget go with --k auto");
  const ratio = numbers(v["auto-ratio"], "auto-ratio")?.[0], budget = numbers(v.budget, "budget")?.[0];
  if (ratio !== undefined) checkRatios([ratio], "--auto-ratio");
  if (budget !== undefined && !(budget >= 0)) throw new Error(`--budget must be ≥ 0, got ${v.budget}`);
  return { ratio, budget };
}

/** The --data, --split and --cell options that eval lm, demo and tables lm share, checked. */
export function dataOptions(v: { data?: string; split?: string; cell?: string }): Pick<OpenLmOptions, "data" | "split" | "cell"> {
  if (v.cell !== undefined && v.cell !== "lstm" && v.cell !== "gru") throw new Error(`--cell must be lstm or gru, got ${JSON.stringify(v.cell)}`);
  if (v.split !== undefined && v.data === undefined) throw new Error("--split needs --data FILE (a one-file corpus to cut into train, valid, test)");
  return { data: v.data, split: numbers(v.split, "split"), cell: v.cell as CellKind | undefined };
}

/** An onProgress hook that draws one progress bar per phase. */
export function progressBars(): (phase: string, done: number, total: number) => void {
  let bar: Progress | null = null, current = "";
  return (phase, done, total) => {
    if (phase !== current) { current = phase; bar = new Progress(phase, total, "tok"); }
    bar!.update(done);
  };
}

/** Generation measured beside perplexity: the dual output layer's quality per ratio, and token times. */
export interface Generation { decoder: DecoderEvalResult; tokens: TokenTimes }

export function jsonRows(o: OpenedLm, r: LmEvalResult, split = "test", g?: Generation): (LmEvalRow | (LmEvalRow & LmTokenFields))[] {
  const c = o.checkpoint.config;
  return r.ratios.map((x, i) => {
    const row: LmEvalRow = {
      model: basename(o.path), cell: c.cell, hidden: c.hidden, corpus: o.corpus.name, split,
      ratio: x.ratio, achieved_ratio: x.achievedRatio, ppl: x.ppl, ppl_dense: r.dense.ppl, bytes_reduction: x.bytesReduction,
    };
    if (!g) return row;
    const d = g.tokens.dense, t = g.tokens.dual[i], q = g.decoder.quality[i];
    return {
      ...row, threads: g.tokens.threads, dense_ms: d.cell, dual_ms: t.cell, token_dense_ms: d.token, token_dual_ms: t.token,
      output_dense_ms: d.output, output_dual_ms: t.output, select_dense_ms: d.select, select_dual_ms: t.select,
      preview_rank: g.decoder.decoder.rank, candidate_rule: String(g.decoder.decoder.rule), candidates: q.candidates,
      greedy_agreement: q.greedyAgreement, top5_overlap: q.top5Overlap, kl: q.kl,
    };
  });
}

/** The fit's summary line and the table: dense first, then each ratio. */
export function formatResult(o: OpenedLm, r: LmEvalResult, times: StepTimes, split = "test", g?: Generation): string {
  const f = r.fit.map((x) => `layer ${x.layer}: ${x.projection} projection, k ${x.k}, validation R² ${x.validationR2?.toFixed(3) ?? "-"}`).join("; ");
  const search = r.kSearch && "k auto, smallest k within the budget (validation perplexity at the search ratio):\n" + formatTable(
    ["k", "little KB", "R²", "valid ppl", "dense", "Δ %"],
    r.kSearch.map((c) => [c.k, (c.littleBytes / 1e3).toFixed(1), c.validationR2?.toFixed(3) ?? "-", c.validPpl.toFixed(2),
      c.validDensePpl.toFixed(2), (100 * (c.validPpl / c.validDensePpl - 1)).toFixed(2)]), 1) + "\n";
  const d = r.dense;
  const rows: (string | number)[][] = [
    ["dense", "-", "-", d.ppl.toFixed(2), "-", "1.00", times.dense.toFixed(3), "1.00", d.tokenMs.toFixed(3)],
    ...r.ratios.map((x, i) => [
      "dual", x.ratio.toFixed(2), x.achievedRatio.toFixed(3), x.ppl.toFixed(2), signed(x.ppl - d.ppl), x.bytesReduction.toFixed(2),
      times.dual[i].toFixed(3), (times.dense / times.dual[i]).toFixed(2), x.tokenMs.toFixed(3),
    ]),
  ];
  return (search ?? "") + `${o.corpus.name} ${split}: ${r.tokens.test} tokens (${r.dense.predictions} predictions); little modules fitted on ` +
    `${r.tokens.train} train tokens, thresholds on ${r.tokens.valid} valid tokens, in pieces spread over each split\n(${f})\n` +
    formatTable(["model", "ratio", "achieved", "ppl", "Δppl", "bytes reduction", "cell ms", "speedup", "token ms"], rows, 1) + "\n" +
    "  bytes reduction: weight bytes one step of the recurrent layers reads, dense over dual-module\n" +
    "  cell ms: one step of the recurrent layers, median of interleaved rounds (weights cached); speedup: dense over dual\n" +
    "  token ms: a whole prediction (step, decoder over the vocabulary, softmax), mean over the perplexity run" +
    (g ? "\n\n" + formatGeneration(r, g) : "");
}

/** The whole-token table: dense cell and decoder against each ratio's dual cell with the dual output layer. */
export function formatGeneration(r: LmEvalResult, g: Generation): string {
  const f = (x: number) => x.toFixed(3), d = g.tokens.dense, dec = g.decoder.decoder;
  const rows: (string | number)[][] = [
    ["dense", "-", f(d.cell), f(d.output), f(d.select), f(d.token), "1.00", dec.vocab, "-", "-", "-"],
    ...r.ratios.map((x, i) => {
      const t = g.tokens.dual[i], q = g.decoder.quality[i];
      return ["dual", x.ratio.toFixed(2), f(t.cell), f(t.output), f(t.select), f(t.token), (d.token / t.token).toFixed(2),
        q.candidates.toFixed(1), (100 * q.greedyAgreement).toFixed(2), (100 * q.top5Overlap).toFixed(1), q.kl.toFixed(3)];
    }),
  ];
  return `Generation, one whole token at batch 1, caches flushed, ${g.tokens.threads} thread${g.tokens.threads > 1 ? "s" : ""}; ` +
    `dual output layer: INT8 preview of rank ${dec.rank}, exact logits for ${describeRule(dec)} of ${dec.vocab} words\n` +
    formatTable(["model", "ratio", "cell ms", "output ms", "select ms", "token ms", "speedup", "exact rows", "greedy agr %", "top-5 %", "KL"], rows, 1) + "\n" +
    "  output: the decoder over the vocabulary, or the preview, the candidates and their exact logits; select: softmax and greedy choice\n" +
    "  exact rows: words whose exact logits are computed, mean per test position\n" +
    `  greedy agr, top-5, KL(candidate ‖ dense): the dual model (cell at the ratio, dual output layer) against the dense one over ${g.decoder.quality[0]?.positions ?? 0} test positions`;
}

function describeRule(d: DualDecoder): string {
  if (d.rule === "auto") return `the ${d.minCandidates} best previews and any word within ${d.margin.toFixed(2)} of the best exact logit in preview (margin calibrated on held-out tokens)`;
  if (d.rule === "certified") return "the words a bound of the preview error cannot rule out";
  return `the ${d.rule} best previews`;
}

function signed(x: number): string { return `${x >= 0 ? "+" : ""}${x.toFixed(2)}`; }
