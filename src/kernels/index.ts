// The kernel set: one signature per kernel, implemented twice: `reference` in plain TypeScript (the
// algorithmic reference and fallback) and `wasmKernels` over WebAssembly SIMD. Each family lives in
// its own file with its interface, reference twin and wasm wrapper; this file joins them.
// Argument order everywhere: outputs, inputs, sizes. Matrices are row-major.
import type { WasmContext } from "./context.js";
import { type MatvecKernels, matvecReference, matvecWasm } from "./matvec.js";

export interface Kernels extends MatvecKernels {}

export const reference: Kernels = {
  ...matvecReference,
};

export function wasmKernels(ctx: WasmContext): Kernels {
  return {
    ...matvecWasm(ctx),
  };
}
