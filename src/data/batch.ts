// Batching a token stream for truncated back-propagation through time, as PyTorch's
// word_language_model example does: the stream is cut into `batch` contiguous columns
// (data.view(bsz, -1).t()), and windows of `bptt` steps are taken down the columns, each
// target being its input shifted one step ahead.

/** A token stream laid out as (steps, batch), row-major: column b is a contiguous run of the stream. */
export interface Batched {
  data: Int32Array; // (steps, batch): data[t * batch + b] = tokens[b * steps + t]
  steps: number;
  batch: number;
}

/** `tokens` as `batch` columns of floor(length / batch) steps; the leftover tail is dropped. */
export function batchify(tokens: Int32Array, batch: number): Batched {
  if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`batchify: batch must be a positive integer, got ${batch}`);
  const steps = Math.floor(tokens.length / batch);
  if (steps === 0) throw new Error(`batchify: ${tokens.length} tokens do not fill one step of batch ${batch}`);
  const data = new Int32Array(steps * batch);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < steps; t++) data[t * batch + b] = tokens[b * steps + t];
  }
  return { data, steps, batch };
}

/** One training window: `length` steps of input and the tokens that follow them. */
export interface BpttWindow {
  input: Int32Array;  // (length, batch), a view of Batched.data from step `start`
  target: Int32Array; // (length, batch), the same view one step later
  start: number;
  length: number;
}

/**
 * Windows of `bptt` steps from step 0, the last one shorter so that every input step has a target
 * (PyTorch's get_batch). Views, not copies.
 */
export function* bpttWindows(batched: Batched, bptt: number): Generator<BpttWindow> {
  if (!Number.isSafeInteger(bptt) || bptt < 1) throw new Error(`bpttWindows: bptt must be a positive integer, got ${bptt}`);
  const { data, steps, batch } = batched;
  for (let start = 0; start < steps - 1; start += bptt) {
    const length = Math.min(bptt, steps - 1 - start);
    yield {
      input: data.subarray(start * batch, (start + length) * batch),
      target: data.subarray((start + 1) * batch, (start + 1 + length) * batch),
      start, length,
    };
  }
}
