// The WebAssembly memory shared by the calling thread and every worker, and a first-fit allocator
// over it. Arrays handed out are ordinary typed arrays whose buffer is the shared memory, so the
// fast kernels and their plain TypeScript twins take exactly the same arguments.
//
// Growth never moves data: a grown shared memory keeps its old SharedArrayBuffers valid, each
// aliasing the same bytes, so a view made before growth stays correct. V8 hands out a new buffer
// object after growth and after the memory is posted to a worker, so every buffer a view was made
// on is remembered: that is how owns() recognises the heap's arrays.

const ALIGN = 64; // a cache line; also satisfies every SIMD load
const PAGE = 65536;

type HeapArray = Float32Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

export class Heap {
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /** Free blocks as [start, size] pairs, sorted by start, never adjacent (they are merged). */
  private readonly free: [number, number][] = [];
  private readonly used = new Map<number, number>();
  private top: number;

  /** `base` is the first byte the kernels' own module does not use. */
  constructor(readonly memory: WebAssembly.Memory, base: number) {
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  /** The current buffer (call after alloc(), which may grow the memory), remembered for owns(). */
  private buffer(): ArrayBufferLike {
    const b = this.memory.buffer;
    this.buffers.add(b);
    return b;
  }

  get bytesInUse(): number {
    let n = 0;
    for (const size of this.used.values()) n += size;
    return n;
  }

  f32(length: number): Float32Array { const p = this.alloc(length * 4); return new Float32Array(this.buffer(), p, length); }
  i32(length: number): Int32Array { const p = this.alloc(length * 4); return new Int32Array(this.buffer(), p, length); }
  i8(length: number): Int8Array { const p = this.alloc(length); return new Int8Array(this.buffer(), p, length); }
  u8(length: number): Uint8Array { const p = this.alloc(length); return new Uint8Array(this.buffer(), p, length); }
  u16(length: number): Uint16Array { const p = this.alloc(length * 2); return new Uint16Array(this.buffer(), p, length); }

  /** A heap copy of `src`. */
  copyF32(src: ArrayLike<number>): Float32Array { const a = this.f32(src.length); a.set(src); return a; }

  /** True if `a` lives in this heap, so its byteOffset is a pointer the kernels can use. */
  owns(a: ArrayBufferView): boolean {
    return this.buffers.has(a.buffer) && this.used.has(this.blockOf(a.byteOffset));
  }

  /** Returns an array's block to the heap. The array must not be used afterwards. */
  release(a: HeapArray): void {
    const start = a.byteOffset;
    const size = this.used.get(start);
    if (size === undefined) throw new Error("Heap.release: this array was not allocated by this heap (or was released already)");
    this.used.delete(start);
    this.insertFree(start, size);
  }

  private alloc(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`Heap: cannot allocate ${bytes} bytes`);
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const [start, avail] = this.free[i];
      if (avail < size) continue;
      if (avail === size) this.free.splice(i, 1);
      else this.free[i] = [start + size, avail - size];
      return this.take(start, size);
    }
    const start = this.top;
    this.ensure(start + size);
    this.top = start + size;
    return this.take(start, size);
  }

  private take(start: number, size: number): number {
    this.used.set(start, size);
    new Uint8Array(this.buffer(), start, size).fill(0);
    return start;
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    try {
      this.memory.grow(pages);
    } catch {
      throw new RangeError(`Heap: out of WebAssembly memory (needed ${(end / 2 ** 20).toFixed(0)} MiB; the limit is 4096 MiB)`);
    }
  }

  private insertFree(start: number, size: number): void {
    const f = this.free;
    let i = 0;
    while (i < f.length && f[i][0] < start) i++;
    f.splice(i, 0, [start, size]);
    if (i + 1 < f.length && start + size === f[i + 1][0]) { f[i][1] += f[i + 1][1]; f.splice(i + 1, 1); }
    if (i > 0 && f[i - 1][0] + f[i - 1][1] === start) { f[i - 1][1] += f[i][1]; f.splice(i, 1); }
    // Hand the last block back to the bump pointer, so that free-then-grow patterns do not fragment.
    const last = f[f.length - 1];
    if (last && last[0] + last[1] === this.top) { this.top = last[0]; f.pop(); }
  }

  private blockOf(ptr: number): number {
    if (this.used.has(ptr)) return ptr;
    for (const [start, size] of this.used) if (ptr >= start && ptr < start + size) return start;
    return -1;
  }
}
