// The kernel set: one signature per kernel, implemented twice: `reference` in plain TypeScript (the
// algorithmic reference and fallback) and `wasmKernels` over WebAssembly SIMD. Each family lives in
// its own file with its interface, reference twin and wasm wrapper; this file joins them.
// Argument order everywhere: outputs, inputs, sizes. Matrices are row-major.
import type { WasmContext } from "./context.js";
import { type MatvecKernels, matvecReference, matvecWasm } from "./matvec.js";
import { type QuantKernels, quantReference, quantWasm } from "./quant.js";
import { type ElementwiseKernels, elementwiseReference, elementwiseWasm } from "./elementwise.js";
import { type SelectKernels, selectReference, selectWasm } from "./select.js";
import { type GemmKernels, gemmReference, gemmWasm } from "./gemm.js";
import { type ConvKernels, convReference, convWasm } from "./conv.js";
import { type LossKernels, lossReference, lossWasm } from "./loss.js";
import { type ConvGradKernels, convGradReference, convGradWasm } from "./conv-grad.js";
import { type GemmI8Kernels, gemmI8Reference, gemmI8Wasm } from "./gemm-i8.js";
import { type SparseKernels, sparseReference, sparseWasm } from "./sparse.js";
import { type TrainKernels, trainReference, trainWasm } from "./train.js";
import { type DualStepKernels, dualStepReference, dualStepWasm } from "./dual-step.js";

export interface Kernels extends MatvecKernels, QuantKernels, ElementwiseKernels, SelectKernels, GemmKernels, ConvKernels, LossKernels,
  ConvGradKernels, GemmI8Kernels, SparseKernels, TrainKernels, DualStepKernels {}

export const reference: Kernels = {
  ...matvecReference,
  ...quantReference,
  ...elementwiseReference,
  ...selectReference,
  ...gemmReference,
  ...convReference,
  ...lossReference,
  ...convGradReference,
  ...gemmI8Reference,
  ...sparseReference,
  ...trainReference,
  ...dualStepReference,
};

export function wasmKernels(ctx: WasmContext): Kernels {
  return {
    ...matvecWasm(ctx),
    ...quantWasm(ctx),
    ...elementwiseWasm(ctx),
    ...selectWasm(ctx),
    ...gemmWasm(ctx),
    ...convWasm(ctx),
    ...lossWasm(ctx),
    ...convGradWasm(ctx),
    ...gemmI8Wasm(ctx),
    ...sparseWasm(ctx),
    ...trainWasm(ctx),
    ...dualStepWasm(ctx),
  };
}
