// Public API of dualmodule.
export { Runtime, type RuntimeOptions } from "./runtime/runtime.js";
export { enableRelaxedSimd, hasRelaxedSimd, type SimdVariant } from "./runtime/wasm.js";
export { type Kernels, reference } from "./kernels/index.js";
