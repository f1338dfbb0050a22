// The exported kernels the pool may dispatch, by index. One list for the calling thread and the
// workers; adding a kernel to assembly/index.ts means adding its name here.
export const KERNEL_NAMES = [
  "matvec_f32",
] as const;

export type KernelName = (typeof KERNEL_NAMES)[number];
