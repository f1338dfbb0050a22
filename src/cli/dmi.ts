#!/usr/bin/env node
// dmi: the command line of dualmodule. Each command is one entry of COMMANDS (a missing entry does
// not compile); its module, src/cli/<command>.ts, is loaded only when it runs. Relaxed SIMD is switched on first, before any kernel module is compiled.
import { enableRelaxedSimd } from "../runtime/wasm.js";

enableRelaxedSimd();

interface Command { summary: string; run: (args: string[]) => Promise<void> }

/** Every command; its module is src/cli/<name with a dash>.ts, exporting main(args). */
type CommandName = "bench rnn" | "bench cnn" | "bench kernels" | "bench fit" | "bench train" | "data" | "train lm" | "train cnn" | "train nmt" | "translate" | "eval lm" | "eval nmt"
  | "fit cnn" | "eval cnn" | "tables lm" | "tables prune" | "tables nmt" | "demo" | "serve";

const COMMANDS = {
  "bench rnn": {
    summary: "per-step time of dense and dual-module LSTM/GRU/GNMT cells against onnxruntime-node",
    run: async (args) => (await import("./bench-rnn.js")).main(args),
  },
  "bench cnn": {
    summary: "per-image time of our dense ResNet-18 against onnxruntime-node (28×28×1 and 224×224×3, random weights), with a breakdown",
    run: async (args) => (await import("./bench-cnn.js")).main(args),
  },
  "bench kernels": {
    summary: "memory bandwidth, dense and row-sparse matrix-vector products and GEMM, each beside onnxruntime-node",
    run: async (args) => (await import("./bench-kernels.js")).main(args),
  },
  "data": {
    summary: "language-modelling corpora (State of the Union, Brown): tokens, vocabulary, OOV rate per split",
    run: async (args) => (await import("./data.js")).main(args),
  },
  "bench fit": {
    summary: "the little module's closed-form ridge fit against the paper's SGD fit, error and time side by side",
    run: async (args) => (await import("./bench-fit.js")).main(args),
  },
  "bench train": {
    summary: "training tokens/s of our language-model trainer against PyTorch's word_language_model recipe, same shapes and windows",
    run: async (args) => (await import("./bench-train.js")).main(args),
  },
  "train lm": {
    summary: "train a word-level LSTM/GRU language model (PyTorch's word_language_model recipe) with checkpoints and --resume",
    run: async (args) => (await import("./train-lm.js")).main(args),
  },
  "train cnn": {
    summary: "train ResNet-18 (28×28 stem at stride 1 or 2, any width) on MNIST or Fashion-MNIST: SGD with momentum, cosine schedule, checkpoints and --resume",
    run: async (args) => (await import("./train-cnn.js")).main(args),
  },
  "train nmt": {
    summary: "train the GNMT translation model (Bible En–Es or --pairs FILE): label smoothing, Adam with warm-up and decay, checkpoints and --resume",
    run: async (args) => (await import("./train-nmt.js")).main(args),
  },
  "translate": {
    summary: "translate sentences from standard input with a trained GNMT checkpoint, dense or with the dual-module decoder (--ratio R)",
    run: async (args) => (await import("./translate.js")).main(args),
  },
  "eval lm": {
    summary: "perplexity of a language model on its test split, dense and dual-module at each insensitive ratio",
    run: async (args) => (await import("./eval-lm.js")).main(args),
  },
  "eval nmt": {
    summary: "BLEU of a GNMT checkpoint, dense and with the dual-module decoder at each insensitive ratio (greedy and beam), with the decoder step's time",
    run: async (args) => (await import("./eval-nmt.js")).main(args),
  },
  "fit cnn": {
    summary: "fit and calibrate a trained ResNet-18's little modules once and save the dual-module network for serving",
    run: async (args) => (await import("./fit-cnn.js")).main(args),
  },
  "eval cnn": {
    summary: "dual-module ResNet-18 against the dense one and onnxruntime on MNIST/Fashion-MNIST: top-1, operations, ratios per layer, wall-clock, Figures 3–4",
    run: async (args) => (await import("./eval-cnn.js")).main(args),
  },
  "tables lm": {
    summary: "the paper's language-model tables (ratio, precision, noise, overhead, k sweep) and Figures 1–2 for one checkpoint",
    run: async (args) => (await import("./tables-lm.js")).main(args),
  },
  "tables prune": {
    summary: "the paper's Table 4: dual-module inference against and on top of weight pruning (PPL, bytes, step time; trained and random weights)",
    run: async (args) => (await import("./tables-prune.js")).main(args),
  },
  "tables nmt": {
    summary: "the paper's Table 3 from a trained GNMT: test BLEU dense and dual-module per ratio (greedy, beam), decoder step times, and the stack at the paper's shapes beside onnxruntime",
    run: async (args) => (await import("./tables-nmt.js")).main(args),
  },
  "demo": {
    summary: "the shipped default model: dense vs dual-module perplexity and speed, and sentences sampled both ways",
    run: async (args) => (await import("./demo.js")).main(args),
  },
  "serve": {
    summary: "the browser demo: a local web server (COOP/COEP, 127.0.0.1) for a page that runs the shipped model dense and dual-module",
    run: async (args) => (await import("./serve.js")).main(args),
  },
} satisfies Record<CommandName, Command>;

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  dmi ${name.padEnd(width)} ${c.summary}`);
  return `usage:\n${lines.join("\n")}\n\nEach command takes --help.`;
}

async function main(argv: string[]): Promise<void> {
  const name = [argv.slice(0, 2).join(" "), argv[0]].find((n): n is CommandName => n !== undefined && n in COMMANDS);
  if (!name) {
    if (argv.length && argv[0] !== "--help" && argv[0] !== "help") console.error(`dmi: unknown command '${argv.join(" ")}'\n`);
    console.error(usage());
    process.exitCode = argv.length && argv[0] !== "--help" && argv[0] !== "help" ? 2 : 0;
    return;
  }
  await COMMANDS[name].run(argv.slice(name.split(" ").length));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const message = e instanceof Error ? e.message : String(e);
  // The benchmarks' peer is a development dependency, absent from a production install.
  if ((e as { code?: string }).code === "ERR_MODULE_NOT_FOUND" && message.includes("onnxruntime-node")) {
    console.error("dmi: the benchmarks compare against onnxruntime-node, which is not installed: npm install onnxruntime-node");
  } else {
    console.error(`dmi: ${message}`);
  }
  process.exitCode = 1;
});
