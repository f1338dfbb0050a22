// Loading the kernel module: which build (plain or relaxed SIMD) this runtime can run, and the
// compiled module that the calling thread and every worker instantiate over one shared memory.
import { compileKernelModule, enableRelaxedSimdFlag } from "./platform.js";

export type SimdVariant = "simd" | "relaxed";

// Tiny modules that validate only if the feature is there: (func (result v128) v128.const 0),
// and the same with f32x4.relaxed_madd applied to three zero vectors.
const SIMD_PROBE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11);
const RELAXED_PROBE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  253, 12, ...new Array<number>(16).fill(0), 253, 12, ...new Array<number>(16).fill(0),
  253, 12, ...new Array<number>(16).fill(0), 253, 133, 2, 11);

export function hasSimd(): boolean { return WebAssembly.validate(SIMD_PROBE); }
export function hasRelaxedSimd(): boolean { return WebAssembly.validate(RELAXED_PROBE); }

/**
 * Node 20 ships relaxed SIMD behind a V8 flag. Setting it only affects modules compiled later, so a
 * program that wants it calls this first thing (the `dmi` command does).
 */
export function enableRelaxedSimd(): void {
  if (!hasRelaxedSimd()) enableRelaxedSimdFlag();
}

/** The best build this runtime validates, or the one asked for (an error if it cannot run here). */
export function pickVariant(wanted: SimdVariant | "auto"): SimdVariant {
  if (!hasSimd()) throw new Error("dualmodule needs WebAssembly SIMD (Node 20+, or a browser from 2021 on)");
  if (wanted === "auto") return hasRelaxedSimd() ? "relaxed" : "simd";
  if (wanted === "relaxed" && !hasRelaxedSimd()) {
    throw new Error("relaxed SIMD is not available: call enableRelaxedSimd() before creating the runtime, or use simd: 'simd'");
  }
  return wanted;
}

const compiled = new Map<SimdVariant, Promise<WebAssembly.Module>>();

export function compileKernels(variant: SimdVariant): Promise<WebAssembly.Module> {
  let m = compiled.get(variant);
  if (!m) {
    m = compileKernelModule(variant);
    compiled.set(variant, m);
  }
  return m;
}

/** Memory the kernel module is built for: shared, growable to the wasm32 limit of 4 GiB. */
export function createMemory(initialPages: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: initialPages, maximum: 65536, shared: true });
}

/**
 * The functions the kernel module exports (assembly/index.ts), in the module's order: the pool's
 * dispatch table, read from the compiled module by the calling thread and every worker alike, so it
 * cannot drift from the AssemblyScript source.
 */
export function kernelNames(module: WebAssembly.Module): string[] {
  return WebAssembly.Module.exports(module).filter((e) => e.kind === "function").map((e) => e.name);
}

export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Exports {
  return new WebAssembly.Instance(module, { env: { memory } }).exports;
}
