// The browser bundle's public API (dist/web/dualmodule.js, built by scripts/build-web.mjs): the
// parts of src/index.ts that need no files, worker_threads or command line, plus the web page's
// demo. Checkpoints load from their bytes (fetch them); the runtime fetches its kernel module from
// beside the bundle and runs threads as Web Workers when the page is cross-origin isolated.
export { Runtime, type RuntimeOptions } from "../runtime/runtime.js";
export { hasSimd, hasRelaxedSimd, type SimdVariant } from "../runtime/wasm.js";
export { type Kernels, reference } from "../kernels/index.js";

export { Stack, type StackConfig, type CellKind, type LayerWeights } from "../recurrent/stack.js";
export { Lstm, type LstmWeights, type BigBits } from "../recurrent/lstm.js";
export { Gru, type GruWeights } from "../recurrent/gru.js";
export { DualModel, type Thresholds, type SelectMode } from "../recurrent/dual.js";
export { fitLittleModules, type FitOptions, type FitReport } from "../recurrent/fit.js";
export { LittleModule } from "../recurrent/little.js";
export { loadDualModel, type LoadOptions } from "../recurrent/dual-checkpoint.js";
export { LmInference, loadLm, lmFromSafetensors, viewParams, type LmConfig, type LmCheckpoint } from "../recurrent/lm.js";
export { perplexity, generate, stepSequences, spreadPieces, type PerplexityResult, type Recurrent } from "../recurrent/eval.js";
export { Vocabulary } from "../data/vocabulary.js";
export { tokenize } from "../data/tokenize.js";
export { encodeText } from "../data/text.js";
export { Rng } from "../util/random.js";

export { ResNet, resnet18Small, type ResNetConfig } from "../conv/resnet.js";
export { DualResNet, type DualResNetOptions } from "../conv/dual.js";
export { decodeResNet, type LoadedResNet } from "../conv/checkpoint.js";
export { decodeDualResNet, type LoadedDualResNet } from "../conv/dual-checkpoint.js";
export { runtimeDualBackend, type InsensitiveOutput } from "../conv/dual-conv.js";

export { LmDemo, withPrompt, type DemoSlices, type Continuation, type StepTimes } from "./lm-demo.js";
export { CnnDemo, decodeCnnImages, imageInputs, type CnnDemoImages, type CnnDemoImagesJson, type Classification,
  type SensitiveMap, type ImageTimes } from "./cnn-demo.js";
