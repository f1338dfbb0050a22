// `dmi demo`: the project's main job in one command, on the shipped default model and the test text
// of its corpus. Fits little modules and calibrates a few insensitive ratios on small slices of the
// training and validation text, then prints dense against dual-module perplexity and step time on
// the first test tokens, the time of one whole token (cell, output layer, choice) dense against the
// dual cell with the dual-module output layer, and sentences sampled from each with the same seed
// (the dual models through the dual output layer's candidates). Needs no training;
// the default sizes finish well within a minute on 2 cores.
import { parseArgs } from "node:util";
import { Runtime } from "../runtime/runtime.js";
import { Rng } from "../util/random.js";
import { checkRatios, evaluateDecoder, evaluateLm, generate, timeSteps, timeTokens, type GenerateOptions } from "../recurrent/eval.js";
import { defaultModel, openLm, testText, MODELS_DIR } from "../recurrent/open.js";
import { DECODER_DEFAULTS, dataOptions, formatResult, parseCandidates, progressBars } from "./eval-lm.js";
import { clampRule } from "../recurrent/dual-decoder.js";
import { integer, numbers, optionalInteger } from "./args.js";

const DEFAULTS = { ratios: "0.5,0.7,0.9", trainTokens: 5000, validTokens: 2000, testTokens: 3000, sentences: 2, words: 20, temperature: 0.8, seed: 1, tokenRounds: 50 };

const USAGE = `dmi demo [options]
  --model FILE         a language-model checkpoint (default: the smallest ${MODELS_DIR}/sotu-lstm-<H>.safetensors)
  --data DIR           a corpus of your own (train.txt, valid.txt, test.txt; see dmi eval lm --help), needed by
                       a PyTorch state_dict or ONNX model; --split P,P,P and --cell as in dmi eval lm
  --ratios R,..        insensitive ratios in [0, 1) (${DEFAULTS.ratios})
  --test-tokens N      test tokens perplexity and time are measured on (${DEFAULTS.testTokens})
  --text FILE          measure on this text file instead of the test split (unknown words: <unk>)
  --train-tokens N     training tokens the little modules are fitted on (${DEFAULTS.trainTokens})
  --valid-tokens N     validation tokens the thresholds are calibrated on (${DEFAULTS.validTokens})
  --sentences N        sentences sampled from each model (${DEFAULTS.sentences}), at most --words W words each (${DEFAULTS.words})
  --temperature T      sampling temperature (${DEFAULTS.temperature})
  --seed S             sampling seed, the same for every model (${DEFAULTS.seed})
  --preview-rank R     dual output layer: rank of the INT8 preview of every word's logit (${DECODER_DEFAULTS.rank})
  --candidates N|auto|certified   dual output layer: words whose exact logits are computed, as in eval lm (${DECODER_DEFAULTS.candidates})
  --threads N          kernel threads (one per core)`;

export async function main(argv: string[]): Promise<void> {
  const started = performance.now();
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, ratios: { type: "string", default: DEFAULTS.ratios },
      data: { type: "string" }, split: { type: "string" }, cell: { type: "string" },
      "test-tokens": { type: "string" }, "train-tokens": { type: "string" }, "valid-tokens": { type: "string" }, text: { type: "string" },
      sentences: { type: "string" }, words: { type: "string" }, temperature: { type: "string" }, seed: { type: "string" },
      "preview-rank": { type: "string" }, candidates: { type: "string" },
      threads: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  const ratios = numbers(v.ratios, "ratios") ?? [];
  checkRatios(ratios, "--ratios");
  const gen: GenerateOptions = {
    sentences: integer("sentences", v.sentences, 0, DEFAULTS.sentences), maxWords: integer("words", v.words, 1, DEFAULTS.words),
    temperature: v.temperature === undefined ? DEFAULTS.temperature : Number(v.temperature),
  };
  if (!(gen.temperature > 0 && Number.isFinite(gen.temperature))) throw new Error(`--temperature must be a number > 0, got ${v.temperature}`);
  const seed = integer("seed", v.seed, 0, DEFAULTS.seed);
  const maxTokens = {
    train: integer("train-tokens", v["train-tokens"], 2, DEFAULTS.trainTokens),
    valid: integer("valid-tokens", v["valid-tokens"], 2, DEFAULTS.validTokens),
    test: integer("test-tokens", v["test-tokens"], 2, DEFAULTS.testTokens),
  };
  const path = v.model ?? defaultModel();
  const threads = optionalInteger("threads", v.threads, 1);
  const rank = integer("preview-rank", v["preview-rank"], 1, DECODER_DEFAULTS.rank);
  const candidates = parseCandidates(v.candidates);

  const rt = await Runtime.create(threads === undefined ? {} : { threads });
  try {
    const opened = await openLm(rt, path, { ...dataOptions(v), onProgress: (m) => console.error(m) });
    const { lm, corpus, checkpoint } = opened, c = checkpoint.config;
    const t = checkpoint.training;
    const origin = t ? `trained on ${corpus.source} (${t.epoch} epoch${t.epoch === 1 ? "" : "s"})` : `${checkpoint.format}, corpus ${corpus.source}`;
    console.log(`dmi demo: ${c.cell.toUpperCase()} ${c.layers}×${c.hidden} language model ${path}\n` +
      `  ${origin}, vocabulary ${c.vocab}; ` +
      `${rt.variant} build, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}\n`);

    const test = await testText(opened, v.text);
    const result = evaluateLm(rt, lm, { ...corpus, test: test.ids }, { ratios, maxTokens, onProgress: progressBars() });
    const steps = await timeSteps(lm, result, test.ids);
    const decoder = evaluateDecoder(rt, lm, result, { ...corpus, test: test.ids }, {
      rank: Math.min(rank, c.hidden, c.vocab), candidates: clampRule(candidates, c.vocab), trainTokens: maxTokens.train, onProgress: progressBars(),
    });
    const tokens = await timeTokens(rt, lm, result, decoder.decoder, test.ids, { rounds: DEFAULTS.tokenRounds });
    console.log(formatResult(opened, result, steps, test.name, { decoder, tokens }) + "\n");
    const dualMs = tokens.dual.map((t, i) => `dual ${result.ratios[i].ratio} ${t.token.toFixed(3)} ms (${(tokens.dense.token / t.token).toFixed(2)}x)`);
    console.log(`Token time, cold: dense ${tokens.dense.token.toFixed(3)} ms; ${dualMs.join("; ")}\n`);

    if (gen.sentences > 0) {
      console.log(`Sampled sentences (temperature ${gen.temperature}, seed ${seed} for every model; the dual ones through the dual output layer):`);
      const show = (name: string, sentences: string[]) => sentences.forEach((s, i) => console.log(`  ${i === 0 ? name.padEnd(10) : " ".repeat(10)} ${s}`));
      show("dense", generate(lm, lm.stack, corpus.vocab, new Rng(seed), gen));
      for (const r of result.ratios) {
        result.dual.setThresholds(r.thresholds, r.ratio);
        show(`dual ${r.ratio}`, generate(lm, result.dual, corpus.vocab, new Rng(seed), gen, decoder.decoder));
      }
    }
    console.log(`\n${((performance.now() - started) / 1000).toFixed(1)} s in all`);
  } finally {
    await rt.close();
  }
}
