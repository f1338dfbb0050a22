// Argument checks shared by the fast kernels and their reference twins, so both fail the same way,
// before any WebAssembly call: the name of the argument, what was expected and what came.

type Ctor = Float32ArrayConstructor | Int32ArrayConstructor | Int8ArrayConstructor | Uint8ArrayConstructor | Uint16ArrayConstructor;

function typed(kernel: string, name: string, a: unknown, ctor: Ctor, length: number): void {
  if (!(a instanceof ctor)) {
    const got = a === null ? "null" : (a as object)?.constructor?.name ?? typeof a;
    throw new TypeError(`${kernel}: ${name} must be a ${ctor.name}, got ${got}`);
  }
  if (a.length !== length) {
    throw new RangeError(`${kernel}: ${name} must have ${length} elements, got ${a.length}`);
  }
}

export function f32(kernel: string, name: string, a: unknown, length: number): asserts a is Float32Array {
  typed(kernel, name, a, Float32Array, length);
}
export function i32(kernel: string, name: string, a: unknown, length: number): asserts a is Int32Array {
  typed(kernel, name, a, Int32Array, length);
}
export function i8(kernel: string, name: string, a: unknown, length: number): asserts a is Int8Array {
  typed(kernel, name, a, Int8Array, length);
}
export function u8(kernel: string, name: string, a: unknown, length: number): asserts a is Uint8Array {
  typed(kernel, name, a, Uint8Array, length);
}
export function u16(kernel: string, name: string, a: unknown, length: number): asserts a is Uint16Array {
  typed(kernel, name, a, Uint16Array, length);
}

/** A size argument: a whole number in [min, 2^31). */
export function size(kernel: string, name: string, n: number, min = 0): void {
  if (!Number.isInteger(n) || n < min || n >= 2 ** 31) {
    throw new RangeError(`${kernel}: ${name} must be an integer ≥ ${min}, got ${n}`);
  }
}

/** Every index in [0, bound). */
export function indices(kernel: string, name: string, idx: Int32Array | Uint16Array, bound: number): void {
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i];
    if (v < 0 || v >= bound) throw new RangeError(`${kernel}: ${name}[${i}] = ${v} is outside [0, ${bound})`);
  }
}

/** Every value finite (and positive, if asked): quantization scales. */
export function finite(kernel: string, name: string, a: Float32Array, positive = false): void {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (!Number.isFinite(v) || (positive && !(v > 0))) {
      throw new RangeError(`${kernel}: ${name}[${i}] = ${v} must be finite${positive ? " and > 0" : ""}`);
    }
  }
}

// Constant inputs (a projection's layout, quantization scales) are weights: checking their contents
// on every call would cost as much as the little module itself. They are verified in full the first
// time a kernel sees them for a given use, then trusted, so they must not be modified after first
// use (make a new array instead). Inputs that change every step (row lists, vectors) are checked on
// every call.
const verified = new WeakMap<object, Set<string>>();

/** Runs `verify` unless array `a` already passed it for `use` (a string naming the check and its sizes). */
export function constant(a: object, use: string, verify: () => void): void {
  let uses = verified.get(a);
  if (uses?.has(use)) return;
  verify();
  if (!uses) verified.set(a, (uses = new Set()));
  uses.add(use);
}
