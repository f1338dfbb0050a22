// `dmi bench fit`: the closed-form ridge fit of the little module against the paper's SGD fit, side
// by side on the same data: error of the little module's pre-activation estimates and fitting time.
// Weights are random (PyTorch's initialisation) and inputs Gaussian unless a trained model is given
// later; on such inputs a projection loses more than on a trained model's, so R² here is a floor.
import { parseArgs } from "node:util";
import { Runtime } from "../runtime/runtime.js";
import { Stack } from "../recurrent/stack.js";
import { fitLittleModules, type FitMethod } from "../recurrent/fit.js";
import { writeFileAtomic } from "../io/files.js";
import { Progress } from "../util/progress.js";
import { formatTable } from "../util/table.js";
import { benchInput, randomModel, selectShapes } from "../bench/models.js";
import { list, numbers } from "./args.js";

export interface FitBenchRow {
  cell: string; hidden: number; input: number; method: FitMethod; k: number; samples: number;
  train_mse: number; valid_mse: number; valid_r2: number; seconds: number; weights: "random";
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      cell: { type: "string", default: "lstm,gru" }, hidden: { type: "string", default: "750" }, input: { type: "string" },
      sequences: { type: "string", default: "60" }, epochs: { type: "string", default: "10" },
      json: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log("dmi bench fit [--cell lstm,gru] [--hidden 750] [--input N] [--sequences 60] [--epochs 10] [--json FILE]");
    return;
  }
  const shapes = selectShapes(list(values.cell), numbers(values.hidden, "hidden"), numbers(values.input, "input"));
  const count = Number(values.sequences), epochs = Number(values.epochs);
  if (!Number.isInteger(count) || count < 2) throw new Error("--sequences must be an integer ≥ 2");
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error("--epochs must be an integer ≥ 1");
  const rt = await Runtime.create();
  const rows: FitBenchRow[] = [];
  try {
    for (const shape of shapes) {
      const { weights, sequence } = randomModel(shape);
      const stack = new Stack(rt, shape.config, weights);
      const train = Array.from({ length: count }, () => sequence(35));
      const valid = Array.from({ length: Math.max(2, count >> 3) }, () => sequence(35));
      for (const method of ["ridge", "sgd"] as const) {
        const progress = new Progress(`${shape.cell} H=${shape.config.hidden} ${method}: collect`, count * 35);
        const t0 = performance.now();
        const { report } = fitLittleModules(rt, stack, train, {
          method, validation: valid, sgd: { epochs }, onProgress: (_w, d) => progress.update(d),
        });
        const seconds = (performance.now() - t0) / 1000;
        const mean = (f: (r: (typeof report)[0]) => number) => report.reduce((s, r) => s + f(r), 0) / report.length;
        rows.push({
          cell: shape.cell, hidden: shape.config.hidden, input: benchInput(shape), method, k: report[0].k,
          samples: report[0].samples, train_mse: mean((r) => r.trainMse), valid_mse: mean((r) => r.validationMse!),
          valid_r2: mean((r) => r.validationR2!), seconds, weights: "random",
        });
      }
    }
  } finally {
    await rt.close();
  }
  console.log("Little-module fits on the same data (random weights, Gaussian inputs; R² of the pre-activation estimates):");
  console.log(formatTable(["cell", "H", "E", "method", "k", "samples", "train MSE", "valid MSE", "valid R²", "seconds"],
    rows.map((r) => [r.cell, r.hidden, r.input, r.method, r.k, r.samples, r.train_mse.toPrecision(4),
      r.valid_mse.toPrecision(4), r.valid_r2.toFixed(4), r.seconds.toFixed(1)]), 4));
  if (values.json) await writeFileAtomic(values.json, new TextEncoder().encode(JSON.stringify(rows, null, 1) + "\n"));
}
