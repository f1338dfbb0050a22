// An independent float64 perplexity of a language model's weights (PyTorch's word_language_model:
// embedding, stacked LSTM/GRU cells from test/reference-rnn.ts, full softmax decoder), the state
// carried from zero over the whole text, every next word predicted: the number `perplexity` reports.
import type { LmConfig, LmParams } from "../src/recurrent/lm.js";
import { gruStep, lstmStep } from "./reference-rnn.js";

export function float64Perplexity(c: LmConfig, p: LmParams, ids: ArrayLike<number>): number {
  const { emb: E, hidden: H, vocab: V } = c;
  const h = Array.from({ length: c.layers }, () => new Float64Array(H) as ArrayLike<number>);
  const cs = Array.from({ length: c.layers }, () => new Float64Array(H) as ArrayLike<number>);
  let loss = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    let x: ArrayLike<number> = p.encoder.subarray(ids[t] * E, (ids[t] + 1) * E);
    for (let l = 0; l < c.layers; l++) {
      const El = l === 0 ? E : H;
      if (c.cell === "lstm") [h[l], cs[l]] = lstmStep(p.layers[l], El, H, x, h[l], cs[l]);
      else h[l] = gruStep(p.layers[l], El, H, x, h[l]);
      x = h[l];
    }
    const logits = new Float64Array(V);
    let m = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = p.decoderBias[v];
      for (let j = 0; j < H; j++) s += p.decoderWeight[v * H + j] * x[j];
      logits[v] = s;
      m = Math.max(m, s);
    }
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[v] - m);
    loss += m + Math.log(z) - logits[ids[t + 1]];
  }
  return Math.exp(loss / (ids.length - 1));
}
