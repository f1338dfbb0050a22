// Public API of dualmodule: the runtime and its kernels, recurrent layers, and dual-module inference.
export { Runtime, type RuntimeOptions } from "./runtime/runtime.js";
export { enableRelaxedSimd, hasRelaxedSimd, type SimdVariant } from "./runtime/wasm.js";
export { type Kernels, reference } from "./kernels/index.js";

export { Stack, type StackConfig, type CellKind, type LayerWeights } from "./layers/stack.js";
export { Lstm, type LstmWeights, type BigBits } from "./layers/lstm.js";
export { Gru, type GruWeights } from "./layers/gru.js";

export { DualModel, type Thresholds, type SelectMode, type NoiseInjection } from "./dual/dual.js";
export { fitLittleModules, type FitOptions, type FitReport } from "./dual/fit.js";
export { LittleModule } from "./dual/little.js";
export { type Bits } from "./dual/quantize.js";
export { jlDim } from "./dual/projection.js";
export { type AccountingReport } from "./dual/accounting.js";
export { saveDualModel, loadDualModel, type SaveOptions, type LoadOptions } from "./dual/checkpoint.js";

export { ResNet, resnet18Small, resnet18ImageNet, type ResNetConfig, type ResNetWeights } from "./cnn/resnet.js";
export { runtimeBackend } from "./cnn/layers.js";
export { loadResNet, saveResNet } from "./cnn/checkpoint.js";
export { DualResNet, type DualResNetOptions, type DualResNetReport } from "./cnn/dual.js";
export { saveDualResNet, loadDualResNet } from "./cnn/dual-checkpoint.js";
export { runtimeDualBackend, type InsensitiveOutput } from "./dual/conv.js";
