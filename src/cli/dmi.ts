#!/usr/bin/env node
// dmi: the command line of dualmodule. Each command is one entry of COMMANDS; its module is loaded
// only when it runs. Relaxed SIMD is switched on first, before any kernel module is compiled.
import { enableRelaxedSimd } from "../runtime/wasm.js";

enableRelaxedSimd();

interface Command { summary: string; run: (args: string[]) => Promise<void> }

const COMMANDS: Record<string, Command> = {
  "bench rnn": {
    summary: "per-step time of dense and dual-module LSTM/GRU/GNMT cells against onnxruntime-node",
    run: async (args) => (await import("../bench/rnn.js")).main(args),
  },
  "data": {
    summary: "language-modelling corpora (State of the Union, Brown): tokens, vocabulary, OOV rate per split",
    run: async (args) => (await import("../data/cli.js")).main(args),
  },
  "bench fit": {
    summary: "the little module's closed-form ridge fit against the paper's SGD fit, error and time side by side",
    run: async (args) => (await import("../bench/fit.js")).main(args),
  },
  "train lm": {
    summary: "train a word-level LSTM/GRU language model (PyTorch's word_language_model recipe) with checkpoints and --resume",
    run: async (args) => (await import("../train/cli.js")).main(args),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  dmi ${name.padEnd(12)} ${c.summary}`);
  return `usage:\n${lines.join("\n")}\n\nEach command takes --help.`;
}

async function main(argv: string[]): Promise<void> {
  const name = [argv.slice(0, 2).join(" "), argv[0]].find((n) => n !== undefined && n in COMMANDS);
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
