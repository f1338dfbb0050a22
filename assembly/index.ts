// Every exported kernel takes (outputs, inputs, sizes, tid, nth): the pool calls it once per
// thread and each call computes its own share. Pointers are byte offsets into the shared memory.
export { matvec_f32, matvec_rows_f32, matvec_split_f32 } from "./matvec";
export { quantize_i8, matvec_i8, matvec_i8_rows, matvec_i4 } from "./quant";
export { sigmoid_f32, tanh_f32, relu_f32, lstm_gates_f32, gru_gates_f32, project_ternary_f32, sum_f32 } from "./elementwise";
export { select_sensitive_f32 } from "./select";
export { gemm_f32, gemm_f32_scratch, gemm_f32_packed, gemm_f32_packed_size, gemm_f32_panel, gemm_pack_b_f32 } from "./gemm";
export { im2col_f32, bias_act_f32, maxpool_f32, avgpool_global_f32, im2row_f32, conv_sensitive_f32, conv_sensitive_pos_f32, conv_sensitive_scratch } from "./conv";
export { softmax_xent_f32 } from "./loss";
export { lstm_train_forward_f32, lstm_train_backward_f32, gru_train_forward_f32, gru_train_backward_f32, sumsq_f32, sgd_f32 } from "./train";
export { im2col_batch_f32, col2im_batch_f32, channel_stats_f32, bn_apply_f32, bn_backward_f32 } from "./conv-grad";
export { gemm_i8, quantize_rows_i8, im2row_i8, im2row_sensitive_f32 } from "./gemm-i8";
export { matvec_sparse_f32 } from "./sparse";
export { lstm_dual_step } from "./dual-step";
