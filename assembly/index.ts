// Every exported kernel takes (outputs, inputs, sizes, tid, nth): the pool calls it once per
// thread and each call computes its own share. Pointers are byte offsets into the shared memory.
export { matvec_f32 } from "./matvec";
