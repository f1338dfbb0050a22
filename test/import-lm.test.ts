// Language models made by PyTorch (test/fixtures, written by scripts/fixtures/make_fixtures.py; see
// its README): each word_language_model state_dict in safetensors (F32, F16, BF16; LSTM, GRU; tied
// with and without decoder.weight) loads, reads the example's corpus with the same word ids, and
// gives PyTorch's own perplexity on the whole test split (batch 1, zero state) within 1e-4, and its
// first logits. Also the errors: a pickle, a truncated file, a missing tensor, a wrong shape, an
// unknown dtype, a corpus of another vocabulary size. No Python needed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Runtime } from "../src/runtime/runtime.js";
import { decodeSafetensors, encodeSafetensors, type TensorData } from "../src/io/safetensors.js";
import { loadLanguageModel } from "../src/recurrent/import.js";
import { openLm } from "../src/recurrent/open.js";
import { generate, perplexity } from "../src/recurrent/eval.js";
import { Rng } from "../src/util/random.js";
import { loadWordCorpus } from "../src/data/word-corpus.js";
import onnxProto from "onnx-proto";

export const FIXTURES = fileURLToPath(new URL("../../test/fixtures/", import.meta.url));
const CORPUS = join(FIXTURES, "corpus");

interface Position { input_id: number; target_id: number; logits_first8: number[]; logit_target: number }
interface FileExpect { dtype: string; has_decoder_weight: boolean; ppl_f64: number; ppl_f32: number; first_positions_f64?: Position[] }
interface ModelExpect {
  cell: string; layers: number; emb: number; hidden: number; tied: boolean; vocab_size: number; test_predictions: number; ppl_f32: number; ppl_f64: number;
  first_positions_f32: Position[]; files: Record<string, FileExpect>; onnx: { file: string };
}
export const EXPECTED = JSON.parse(await readFile(join(FIXTURES, "lm-expected.json"), "utf8")) as {
  corpus: { vocab: string[]; vocab_size: number; tokens: Record<string, number>; test_ids_first20: number[] };
  models: Record<string, ModelExpect>;
};

const rt = await Runtime.create({ simd: "simd", threads: 1 });
after(() => rt.close());
const tmp = await mkdtemp(join(tmpdir(), "dualmodule-import-"));
after(() => rm(tmp, { recursive: true, force: true }));

const relative = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

test("word corpus: the example's data.Corpus vocabulary and ids", async () => {
  const c = await loadWordCorpus(CORPUS);
  assert.deepEqual(c.vocab.words, EXPECTED.corpus.vocab);
  assert.equal(c.vocab.size, EXPECTED.corpus.vocab_size);
  assert.deepEqual([c.train.length, c.valid.length, c.test.length], [EXPECTED.corpus.tokens.train, EXPECTED.corpus.tokens.valid, EXPECTED.corpus.tokens.test]);
  assert.deepEqual([...c.test.subarray(0, 20)], EXPECTED.corpus.test_ids_first20);
  assert.equal(c.vocab.word(c.vocab.eosId), "<eos>");
});

test("word corpus: one file cut by lines with --split", async () => {
  const file = join(tmp, "raw.txt");
  await writeFile(file, Array.from({ length: 20 }, (_, i) => `line ${i} words`).join("\n") + "\n");
  const c = await loadWordCorpus(file, [80, 10, 10]);
  assert.deepEqual([c.train.length, c.valid.length, c.test.length], [16 * 4, 2 * 4, 2 * 4]);
  assert.deepEqual(c.vocab.words.slice(0, 4), ["line", "0", "words", "<eos>"]);
  await assert.rejects(loadWordCorpus(file, [1, 1]), /--split must be three proportions/);
  await assert.rejects(loadWordCorpus(join(tmp, "none")), /--data .*none: it does not exist/);
});

for (const [name, m] of Object.entries(EXPECTED.models)) {
  for (const [file, f] of Object.entries(m.files)) {
    test(`PyTorch ${file}: perplexity and first logits as PyTorch's`, async () => {
      const opened = await openLm(rt, join(FIXTURES, file), { data: CORPUS });
      const c = opened.checkpoint.config;
      assert.deepEqual(c, { cell: m.cell.toLowerCase(), vocab: m.vocab_size, emb: m.emb, hidden: m.hidden, layers: m.layers, tied: m.tied }, name);
      assert.match(opened.checkpoint.format, new RegExp(`PyTorch state_dict \\(safetensors, ${f.dtype}\\)`));

      // First positions: test ids 0..2 from a zero state, logits before log-softmax.
      const positions = f.first_positions_f64 ?? m.first_positions_f32; // the F16/BF16 files have their own (float64)
      opened.lm.reset();
      for (const p of positions) {
        const logits = opened.lm.step(p.input_id);
        for (let i = 0; i < 8; i++) assert.ok(Math.abs(logits[i] - p.logits_first8[i]) <= 1e-4 * (1 + Math.abs(p.logits_first8[i])), `${file} logit ${i}`);
        assert.ok(Math.abs(logits[p.target_id] - p.logit_target) <= 1e-4 * (1 + Math.abs(p.logit_target)));
      }

      const r = perplexity(opened.lm, opened.lm.stack, opened.corpus.test);
      assert.equal(r.predictions, m.test_predictions);
      const d32 = relative(r.ppl, f.ppl_f32), d64 = relative(r.ppl, f.ppl_f64);
      console.log(`# ${file}: ppl ${r.ppl} vs PyTorch f32 ${f.ppl_f32} (rel ${d32.toExponential(2)}), f64 ${f.ppl_f64} (rel ${d64.toExponential(2)})`);
      assert.ok(d32 <= 1e-4 && d64 <= 1e-4, `${file}: ppl ${r.ppl}, PyTorch ${f.ppl_f32} (f32) ${f.ppl_f64} (f64)`);
    });
  }
}

test("PyTorch import: a tied model is told apart from an untied one with equal shapes", async () => {
  const path = join(FIXTURES, "lm-lstm-1layer-tied.f32.safetensors");
  const file = decodeSafetensors(await readFile(path), path);
  const tensors = Object.fromEntries(file.tensors) as Record<string, TensorData>;
  const dec = (tensors["decoder.weight"].data as Float32Array).slice();
  dec[5] += 1e-3;
  const untied = join(tmp, "untied.safetensors");
  await writeFile(untied, encodeSafetensors({ ...tensors, "decoder.weight": { dtype: "F32", shape: tensors["decoder.weight"].shape, data: dec } }));
  assert.equal((await loadLanguageModel(untied)).config.tied, false);
  assert.equal((await loadLanguageModel(path)).config.tied, true);
  await assert.rejects(loadLanguageModel(path, { cell: "gru" }), /holds a LSTM, not the GRU that --cell asks for/);

  // safetensors' save_model keeps the first name of a shared tensor in sorted order: decoder.weight.
  const onlyDecoder = { ...tensors };
  delete onlyDecoder["encoder.weight"];
  const saved = join(tmp, "save-model.safetensors");
  await writeFile(saved, encodeSafetensors(onlyDecoder));
  const a = await loadLanguageModel(saved), b = await loadLanguageModel(path);
  assert.equal(a.config.tied, true);
  assert.deepEqual(a.params, b.params);
});

test("PyTorch import: each bad file gives one line naming the file, the tensor and what was expected", async () => {
  const path = join(FIXTURES, "lm-lstm-2layer.f32.safetensors");
  const bytes = await readFile(path);
  const file = decodeSafetensors(bytes, path);
  const tensors = Object.fromEntries(file.tensors) as Record<string, TensorData>;
  const write = async (name: string, data: Uint8Array) => { const p = join(tmp, name); await writeFile(p, data); return p; };
  const oneLine = async (p: string, pattern: RegExp) => {
    const e = await loadLanguageModel(p).then(() => null, (err: Error) => err);
    assert.ok(e, `${p} should fail`);
    assert.match(e!.message, pattern);
    assert.ok(!e!.message.includes("\n"), e!.message);
    assert.ok(e!.message.includes(p), e!.message);
  };

  await oneLine(join(FIXTURES, "lm-lstm-1layer-tied.pt"), /PyTorch pickle .*never loads.*save_model\(model, "lm\.safetensors"\)/);
  await oneLine(await write("old.pt", Uint8Array.of(0x80, 0x02, 0x8a, 0x0a)), /PyTorch pickle/);
  await oneLine(await write("truncated.safetensors", bytes.subarray(0, bytes.length - 1000)), /go beyond the .*data section; the file is truncated/);

  const without = { ...tensors };
  delete without["rnn.bias_hh_l1"];
  await oneLine(await write("missing.safetensors", encodeSafetensors(without)), /tensor "rnn\.bias_hh_l1" is missing/);

  const wrong = { ...tensors, "rnn.weight_ih_l1": { dtype: "F32", shape: [192, 47], data: new Float32Array(192 * 47) } } as Record<string, TensorData>;
  await oneLine(await write("shape.safetensors", encodeSafetensors(wrong)), /tensor "rnn\.weight_ih_l1" has shape \[192, 47\], expected \[192, 48\]/);

  const ints = { ...tensors, "decoder.bias": { dtype: "I32", shape: [553], data: new Int32Array(553) } } as Record<string, TensorData>;
  await oneLine(await write("int.safetensors", encodeSafetensors(ints)), /tensor "decoder\.bias" has dtype I32, expected F32/);

  // An unknown dtype in the header: rename F32 to Q7 in place (same length).
  const q7 = Uint8Array.from(bytes);
  const header = new TextDecoder().decode(q7.subarray(8, 8 + Number(new DataView(q7.buffer).getBigUint64(0, true))));
  const at = 8 + header.indexOf('"F32"', header.indexOf('"decoder.bias"'));
  q7.set(new TextEncoder().encode('"Q7" '), at);
  await oneLine(await write("q7.safetensors", q7), /tensor "decoder\.bias" has unknown dtype "Q7"/);

  const rnn = { ...tensors, "rnn.weight_hh_l0": { dtype: "F32", shape: [96, 48], data: new Float32Array(96 * 48) } } as Record<string, TensorData>;
  await oneLine(await write("rnn.safetensors", encodeSafetensors(rnn)), /"rnn\.weight_hh_l0" has shape \[96, 48\]: 96 rows are not 4 × 48 \(LSTM\) or 3 × 48 \(GRU\)/);
});

test("PyTorch import: a corpus of another vocabulary size is refused naming both sizes", async () => {
  const dir = join(tmp, "small-corpus");
  await mkdir(dir);
  for (const s of ["train", "valid", "test"]) await writeFile(join(dir, `${s}.txt`), "a b c\n");
  await assert.rejects(openLm(rt, join(FIXTURES, "lm-gru-1layer-tied.f32.safetensors"), { data: dir }),
    /has a vocabulary of 553 words, corpus small-corpus one of 4/);
  await assert.rejects(openLm(rt, join(FIXTURES, "lm-gru-1layer-tied.f32.safetensors")), /carries no vocabulary: pass --data DIR/);
});

// ---------------------------------------------------------------------------------------------------
// ONNX exports of the same models

for (const [name, m] of Object.entries(EXPECTED.models)) {
  test(`ONNX ${m.onnx.file}: perplexity as PyTorch's`, async () => {
    const opened = await openLm(rt, join(FIXTURES, m.onnx.file), { data: CORPUS });
    assert.equal(opened.checkpoint.format, "ONNX");
    assert.deepEqual(opened.checkpoint.config, { cell: m.cell.toLowerCase(), vocab: m.vocab_size, emb: m.emb, hidden: m.hidden, layers: m.layers, tied: m.tied }, name);
    opened.lm.reset();
    for (const p of m.first_positions_f32) {
      const logits = opened.lm.step(p.input_id);
      for (let i = 0; i < 8; i++) assert.ok(Math.abs(logits[i] - p.logits_first8[i]) <= 1e-4 * (1 + Math.abs(p.logits_first8[i])), `${name} logit ${i}`);
    }
    const r = perplexity(opened.lm, opened.lm.stack, opened.corpus.test);
    const d32 = relative(r.ppl, m.ppl_f32);
    console.log(`# ${m.onnx.file}: ppl ${r.ppl} vs PyTorch f32 ${m.ppl_f32} (rel ${d32.toExponential(2)})`);
    assert.ok(d32 <= 1e-4 && relative(r.ppl, m.ppl_f64) <= 1e-4, `${m.onnx.file}: ppl ${r.ppl}, PyTorch ${m.ppl_f32}`);
  });
}

test("ONNX import: unsupported attributes, GRU linear_before_reset 0, gates in MatMul nodes, a truncated file", async () => {
  const { onnx } = onnxProto;
  const edit = async (file: string, out: string, change: (g: onnxProto.onnx.IGraphProto) => void) => {
    const model = onnx.ModelProto.decode(await readFile(join(FIXTURES, file)));
    change(model.graph!);
    const p = join(tmp, out);
    await writeFile(p, onnx.ModelProto.encode(model).finish());
    return p;
  };
  const rnn = (g: onnxProto.onnx.IGraphProto) => g.node!.find((n) => n.opType === "LSTM" || n.opType === "GRU")!;
  const STRING = onnx.AttributeProto.AttributeType.STRING, INT = onnx.AttributeProto.AttributeType.INT;

  const reverse = await edit("lm-lstm-1layer-tied.onnx", "reverse.onnx", (g) => {
    rnn(g).attribute!.push(onnx.AttributeProto.create({ name: "direction", type: STRING, s: new TextEncoder().encode("reverse") }));
  });
  await assert.rejects(loadLanguageModel(reverse), /reverse\.onnx: node ".*" \(LSTM\) has attribute direction = "reverse"; only "forward" is supported/);
  const clip = await edit("lm-lstm-1layer-tied.onnx", "clip.onnx", (g) => {
    rnn(g).attribute!.push(onnx.AttributeProto.create({ name: "clip", type: onnx.AttributeProto.AttributeType.FLOAT, f: 3 }));
  });
  await assert.rejects(loadLanguageModel(clip), /node ".*" \(LSTM\) has attribute clip = 3, which is not supported/);
  const lbr0 = await edit("lm-gru-1layer-tied.onnx", "lbr0.onnx", (g) => {
    const n = rnn(g);
    n.attribute = n.attribute!.filter((a) => a.name !== "linear_before_reset");
    n.attribute.push(onnx.AttributeProto.create({ name: "linear_before_reset", type: INT, i: 0 }));
  });
  await assert.rejects(loadLanguageModel(lbr0), /node ".*" \(GRU\) has attribute linear_before_reset = 0; only 1 \(PyTorch's GRU/);
  const spelled = await edit("lm-lstm-1layer-tied.onnx", "spelled.onnx", (g) => {
    const n = rnn(g);
    n.opType = "MatMul";
    n.attribute = [];
  });
  await assert.rejects(loadLanguageModel(spelled), /spelled\.onnx: it has no ONNX LSTM or GRU node; a graph that spells the gates out in MatMul nodes is not supported/);
  const bytes = await readFile(join(FIXTURES, "lm-lstm-2layer.onnx"));
  const cut = join(tmp, "cut.onnx");
  await writeFile(cut, bytes.subarray(0, bytes.length >> 1));
  await assert.rejects(loadLanguageModel(cut), /ONNX model .*cut\.onnx: not a valid ONNX protobuf .*truncated/);
});

test("sampling from an imported model ends sentences on its own <eos>, which is not id 1", async () => {
  const opened = await openLm(rt, join(FIXTURES, "lm-lstm-1layer-tied.f32.safetensors"), { data: CORPUS });
  const { vocab } = opened.corpus;
  assert.notEqual(vocab.eosId, 1, "the fixture corpus numbers <eos> by first appearance");
  const sentences = generate(opened.lm, opened.lm.stack, vocab, new Rng(3), { sentences: 20, maxWords: 60, temperature: 1 });
  assert.ok(sentences.every((s) => !s.split(" ").includes("<eos>")), sentences.join("\n"));
  assert.ok(sentences.some((s) => s.split(" ").length < 60), "some sentence ends before the word limit");
});
