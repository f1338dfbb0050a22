// `dmi fit cnn`: makes a trained ResNet-18 dual once, for serving: fits the little modules, calibrates
// the thresholds to one insensitive ratio and mode, and saves it all in one file that `dmi eval cnn
// --dual` (or loadDualResNet) runs without refitting.
import { parseArgs } from "node:util";
import { Runtime } from "../runtime/runtime.js";
import { DualResNet } from "../conv/dual.js";
import { saveDualResNet } from "../conv/dual-checkpoint.js";
import { type InsensitiveOutput, runtimeDualBackend } from "../conv/dual-conv.js";
import { NETWORK_OPTIONS, fitLogged, openNetwork } from "./eval-cnn.js";
import { numbers, optionalInteger } from "./args.js";

const HELP = `dmi fit cnn (--checkpoint FILE | --onnx FILE) --out FILE [--ratio 0.7] [--mode little] [--dataset D | --fit-images DIR]
            [--resize N] [--mean M[,M,M]] [--std S[,S,S]] [--projection channel|patch]
            [--k K] [--bits 8|4] [--fit 200] [--calibrate 200] [--dtype f32|f16] [--threads N]
  Fits the little modules of a ResNet checkpoint (\`dmi train cnn\`) or ONNX ResNet-18 on the first --fit
  training images, calibrates every layer's threshold to --ratio on the next --calibrate, and writes
  the dual-module network (ResNet weights, little weights, thresholds, mode) to --out. Insensitive
  outputs are 0 (--mode zero) or the ReLU of the little module's estimate (--mode little).
  --fit-images DIR: your own images (ImageFolder layout, as in \`dmi eval cnn --help\`) instead of
  --dataset's training split; --resize, --mean and --std are saved with the network and are
  \`dmi eval cnn --dual\`'s defaults.`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...NETWORK_OPTIONS, out: { type: "string" }, ratio: { type: "string", default: "0.7" }, mode: { type: "string", default: "little" },
      dtype: { type: "string", default: "f32" }, threads: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (values.help) { console.log(HELP); return; }
  if (!(values.checkpoint || values.onnx) || !values.out) throw new Error(`--checkpoint FILE and --out FILE are required (--onnx FILE in place of --checkpoint)\n${HELP}`);
  if (values.predictor === "seernet") throw new Error("--predictor seernet: its little module is the ResNet's own weights quantized, there is nothing to fit or save; run it with dmi eval cnn --predictor seernet");
  const ratio = numbers(values.ratio, "ratio")![0];
  if (!(ratio >= 0 && ratio < 1)) throw new Error(`--ratio: ${ratio} must be in [0, 1)`);
  const mode = values.mode as InsensitiveOutput;
  if (mode !== "zero" && mode !== "little") throw new Error(`--mode: ${mode} must be zero or little`);
  if (values.dtype !== "f32" && values.dtype !== "f16") throw new Error(`--dtype: ${values.dtype} must be f32 or f16`);
  const threads = optionalInteger("threads", values.threads, 1);

  const opened = await openNetwork(values);
  const rt = await Runtime.create({ threads });
  try {
    const net = new DualResNet(runtimeDualBackend(rt), opened.config, opened.weights, { ...opened.little, mode });
    fitLogged(net, opened.fitImages);
    const achieved = net.calibrate(opened.calImages, ratio);
    console.error(`calibrated to ${ratio} on ${opened.calImages.length} images: ${Math.min(...achieved).toFixed(3)}–${Math.max(...achieved).toFixed(3)} per layer`);
    await saveDualResNet(values.out, net, opened.weights, ratio, {
      dtype: values.dtype === "f16" ? "F16" : "F32",
      notes: {
        dataset: opened.dataset, command: `dmi fit cnn ${argv.join(" ")}`,
        ...Object.fromEntries((["resize", "mean", "std"] as const).flatMap((k) => (values[k] === undefined ? [] : [[k, values[k]]]))),
      },
    });
    console.error(`wrote ${values.out}`);
  } finally {
    await rt.close();
  }
}
