// The exported kernels the pool may dispatch, by index. One list for the calling thread and the
// workers; adding a kernel to assembly/index.ts means adding its name here.
export const KERNEL_NAMES = [
  "matvec_f32",
  "matvec_rows_f32",
  "matvec_split_f32",
  "quantize_i8",
  "matvec_i8",
  "matvec_i8_rows",
  "matvec_i4",
  "sigmoid_f32",
  "tanh_f32",
  "relu_f32",
  "lstm_gates_f32",
  "gru_gates_f32",
  "project_ternary_f32",
  "sum_f32",
  "select_sensitive_f32",
  "gemm_f32",
  "gemm_f32_scratch",
  "im2col_f32",
  "bias_act_f32",
  "maxpool_f32",
  "avgpool_global_f32",
  "im2row_f32",
  "conv_sensitive_f32",
  "conv_sensitive_scratch",
  "softmax_xent_f32",
] as const;

export type KernelName = (typeof KERNEL_NAMES)[number];
