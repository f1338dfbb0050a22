// The fuzzing harness for every file parser (issue 21): each target decodes one kind of file from
// bytes; fast-check generates mutations of a few valid seed files (byte flips, truncation, splices,
// random bytes, a rewritten header length, edits of the safetensors JSON header and of the JSON held
// in its metadata), and every input must either load or be refused with a plain Error whose message
// is one line naming the file. A TypeError, RangeError or WebAssembly trap from deep inside, or an
// input that takes longer than the time bound, counts as a defect.
// Used by test/fuzz.test.ts (a few hundred inputs per parser) and scripts/fuzz.mjs (the benchmark).
// Not a coverage-guided fuzzer: the mutations are structure-aware instead.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { decodeTensor, encodeTensor } from "../src/onnx/proto.js";
import { decodeOnnxGraph } from "../src/onnx/model.js";
import { decodeIdx } from "../src/data/idx.js";
import { decodeText, encodeText } from "../src/data/text.js";
import { lineWords, pythonLines, wordCorpus } from "../src/data/word-corpus.js";
import { parsePairs } from "../src/data/pairs.js";
import { decodeCorpusCache, encodeCorpusCache, type CacheKey } from "../src/data/cache.js";
import { Vocabulary } from "../src/data/vocabulary.js";
import { initParams, lmFromSafetensors, paramCount, paramTable, saveLm, type LmConfig } from "../src/recurrent/lm.js";
import { lmFromStateDict } from "../src/recurrent/import.js";
import { lmFromOnnx } from "../src/recurrent/import-onnx.js";
import { loadDualModel, saveDualModel } from "../src/recurrent/dual-checkpoint.js";
import { Stack } from "../src/recurrent/stack.js";
import { fitLittleModules } from "../src/recurrent/fit.js";
import { DualModel } from "../src/recurrent/dual.js";
import { decodeResNet, encodeResNet } from "../src/conv/checkpoint.js";
import { decodeDualResNet, saveDualResNet } from "../src/conv/dual-checkpoint.js";
import { DualResNet } from "../src/conv/dual.js";
import { randomResNetWeights, resnet18Small } from "../src/conv/resnet.js";
import { referenceDualBackend } from "../src/conv/dual-conv.js";
import { randomModel } from "../src/bench/models.js";
import { Runtime } from "../src/runtime/runtime.js";
import { Rng } from "../src/util/random.js";

/** One parser under test: valid seed files, and how to decode bytes named `source`. */
export interface Target {
  parser: string;
  seeds: Uint8Array[];
  /** Whether the file is safetensors: header edits apply. */
  safetensors: boolean;
  /** Whether the file is text: text edits (tabs, newlines, NUL, invalid UTF-8) apply. */
  text?: boolean;
  /** The name errors must mention. */
  source: string;
  parse(bytes: Uint8Array, source: string): unknown;
}

export interface FuzzRow { parser: string; runs: number; crashes: number; hangs: number; ms: number; examples: string[] }

const FIXTURES = fileURLToPath(new URL("../../test/fixtures/", import.meta.url));

// ---------------------------------------------------------------------------------------------------
// Seeds and targets

export interface Targets { targets: Target[]; close(): Promise<void> }

/** Every target with its seeds; dual-module RNN loading needs a (one-thread) runtime, renewed now and then. */
export async function makeTargets(): Promise<Targets> {
  const dir = mkdtempSync(join(tmpdir(), "dmi-fuzz-"));
  const file = (name: string) => join(dir, name);
  let rt = await Runtime.create({ threads: 1, simd: "simd" });
  const targets: Target[] = [];
  const add = (t: Omit<Target, "source">) => targets.push({ source: file(`${t.parser}.bin`), ...t });

  // safetensors: every dtype, a scalar, an empty tensor, metadata.
  add({
    parser: "safetensors", safetensors: true,
    seeds: [encodeSafetensors({
      a: { dtype: "F32", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
      b: { dtype: "F16", shape: [4], data: Uint16Array.of(1, 2, 3, 4) },
      c: { dtype: "BF16", shape: [0, 5], data: new Uint16Array(0) },
      d: { dtype: "I8", shape: [3], data: Int8Array.of(-1, 0, 1) },
      e: { dtype: "U8", shape: [], data: Uint8Array.of(7) },
      f: { dtype: "I32", shape: [2, 1], data: Int32Array.of(-5, 5) },
    }, { note: "seed", config: JSON.stringify({ a: 1, b: [1, 2] }) })],
    parse(bytes, source) { return decodeSafetensors(bytes, source); },
  });

  add({
    parser: "onnx-tensor", safetensors: false,
    seeds: [encodeTensor({ name: "x", dims: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }),
      encodeTensor({ name: "q", dims: [4], data: Uint8Array.of(0, 1, 2, 255) })],
    parse(bytes, source) { return decodeTensor(bytes, source); },
  });

  // ONNX models: the smallest fixture, read by the model reader and by the language-model importer.
  const onnxSeeds = [readFileSync(join(FIXTURES, "lm-gru-1layer-tied.onnx"))].map((b) => new Uint8Array(b));
  add({ parser: "onnx-model", safetensors: false, seeds: onnxSeeds, parse(bytes, source) { return decodeOnnxGraph(bytes, source); } });
  add({ parser: "import-onnx", safetensors: false, seeds: onnxSeeds, parse(bytes, source) { return lmFromOnnx(bytes, source); } });

  const idx = new Uint8Array(4 + 12 + 24);
  idx.set([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
  idx.fill(9, 16);
  add({ parser: "idx", safetensors: false, seeds: [idx, new Uint8Array(gzipSync(idx))], parse(bytes, source) { return decodeIdx(bytes, source); } });

  const english = "The quick brown fox jumps over the lazy dog.\nIt was the best of times, it was the worst of times.\n";
  const vocab = new Vocabulary(["<unk>", "<eos>", "the", "quick", "fox", "of", "times", ",", "."]);
  add({
    parser: "text", safetensors: false, text: true, seeds: [new TextEncoder().encode(english)],
    parse(bytes, source) { return encodeText(bytes, vocab, source); },
  });
  add({
    parser: "word-corpus", safetensors: false, text: true, seeds: [new TextEncoder().encode(english + "a  b\tc\r\nd\u3000e\n")],
    parse(bytes, source) {
      const words = lineWords(pythonLines(decodeText(bytes, source)));
      return wordCorpus("fuzz", source, { train: words, valid: words.slice(0, 3), test: words.slice(3) });
    },
  });
  add({
    parser: "pairs", safetensors: false, text: true, seeds: [new TextEncoder().encode("In the beginning\tEn el principio\nAnd God said\tY dijo Dios\r\n")],
    parse(bytes, source) { return parsePairs(decodeText(bytes, source), source); },
  });

  // The processed-corpus cache.
  const key: CacheKey = { corpus: "fuzz", source: "fuzz@1", vocabSize: 8 };
  const cacheVocab = new Vocabulary(["<unk>", "<eos>", "a", "b", "c"]);
  add({
    parser: "cache", safetensors: true,
    seeds: [encodeCorpusCache(key, {
      vocab: cacheVocab, ids: { train: Int32Array.of(2, 3, 4, 1), valid: Int32Array.of(2, 1), test: Int32Array.of(0, 1) },
      documents: { train: ["d1", "d2"], valid: ["d3"], test: ["d4"] },
    })],
    parse(bytes, source) { return decodeCorpusCache(bytes, source, key); },
  });

  // Language-model checkpoints (one with a resume state), and the same weights as a plain state_dict.
  const lmSeeds: Uint8Array[] = [], stateDicts: Uint8Array[] = [];
  const configs: LmConfig[] = [
    { cell: "lstm", vocab: 11, emb: 5, hidden: 6, layers: 2, tied: false },
    { cell: "gru", vocab: 9, emb: 4, hidden: 4, layers: 1, tied: true },
  ];
  for (const [i, config] of configs.entries()) {
    const params = new Float32Array(paramCount(config));
    initParams(config, params, i + 1);
    const training = { corpus: "fuzz", seed: 1, epoch: 1, lr: 20, bestValidLoss: 5.5, dropout: 0.2, clip: 0.25, bptt: 5, batch: 2, epochs: 3 };
    const resume = i === 1 ? { batch: 3, state: [new Float32Array(1 * 2 * config.hidden).fill(0.5)], lossSum: 4, lossTokens: 2 } : undefined;
    await saveLm(file("lm.seed"), { config, params, training, resume, vocabDigest: "ab".repeat(32) });
    lmSeeds.push(new Uint8Array(readFileSync(file("lm.seed"))));
    stateDicts.push(encodeSafetensors(Object.fromEntries(paramTable(config).map((s) => [s.name,
      { dtype: "F32" as const, shape: s.shape, data: params.slice(s.offset, s.offset + s.size) }]))));
  }
  add({ parser: "lm-checkpoint", safetensors: true, seeds: lmSeeds, parse(bytes, source) { return lmFromSafetensors(decodeSafetensors(bytes, source)); } });
  add({ parser: "import-state-dict", safetensors: true, seeds: stateDicts, parse(bytes, source) { return lmFromStateDict(decodeSafetensors(bytes, source)); } });

  // Dual-module RNN checkpoints: random and reduced-rank projections.
  const dualSeeds: Uint8Array[] = [];
  for (const projection of ["random", "rrr"] as const) {
    const shape = { cell: "lstm" as const, config: { kind: "lstm" as const, input: 6, hidden: 5, layers: 2, context: 0, residualFrom: 2 } };
    const { weights, sequence } = randomModel(shape);
    const stack = new Stack(rt, shape.config, weights);
    const seqs = Array.from({ length: 6 }, () => sequence(8));
    const { littles } = fitLittleModules(rt, stack, seqs, { k: 3, projection });
    const model = new DualModel(rt, stack, littles);
    model.calibrate(seqs, 0.5);
    await saveDualModel(file("dual.seed"), model);
    dualSeeds.push(new Uint8Array(readFileSync(file("dual.seed"))));
  }
  let dualLoads = 0;
  add({
    parser: "dual-checkpoint", safetensors: true, seeds: dualSeeds,
    async parse(bytes, source) {
      // Successful loads keep their arrays in the runtime's heap: start a fresh runtime now and then.
      if (++dualLoads % 500 === 0) { await rt.close(); rt = await Runtime.create({ threads: 1, simd: "simd" }); }
      writeFileSync(source, bytes);
      return loadDualModel(rt, source);
    },
  });

  // ResNet and dual-module ResNet (width 2: the mechanics, not accuracy).
  const cnn = resnet18Small(2), cnnWeights = randomResNetWeights(cnn, 1);
  add({ parser: "resnet-checkpoint", safetensors: true, seeds: [encodeResNet(cnn, cnnWeights, { notes: { made: "fuzz" } })],
    parse(bytes, source) { return decodeResNet(bytes, source); } });
  const rng = new Rng(3), images = Array.from({ length: 4 }, () => Float32Array.from({ length: 28 * 28 }, () => rng.uniform()));
  const net = new DualResNet(referenceDualBackend, cnn, cnnWeights, { k: 4 });
  net.fit(images);
  net.calibrate(images, 0.5);
  await saveDualResNet(file("dual-resnet.seed"), net, cnnWeights, 0.5, { dtype: "F16" });
  add({ parser: "dual-resnet-checkpoint", safetensors: true, seeds: [new Uint8Array(readFileSync(file("dual-resnet.seed")))],
    parse(bytes, source) { return decodeDualResNet(referenceDualBackend, bytes, source); } });

  return { targets, async close() { await rt.close(); rmSync(dir, { recursive: true, force: true }); } };
}

// ---------------------------------------------------------------------------------------------------
// Mutations

// Values that find edge cases in numbers and shapes, as raw JSON text (some are not valid JSON, and
// one nests so deep that a recursive walk overflows the stack).
const RAW_VALUES = ["0", "-1", "1", "2", "3", "255", "256", "65535", "2147483647", "2147483648", "4294967296", "9007199254740991",
  "9007199254740993", "1e308", "-1e308", "1e999", "0.5", "-0", "1e-320", "null", "true", "false", "\"\"", "\"F32\"", "\"F16\"",
  "\"BF16\"", "\"I8\"", "\"I64\"", "\"lstm\"", "\"gru\"", "\"random\"", "\"rrr\"", "\"Infinity\"", "\"NaN\"", "[]", "{}", "[0]",
  "[0, 0]", "[1, 2]", "[2, 1]", "[0, 9007199254740991]", "[1e9, 1e9]", "[4294967296, 4294967296]", "[65536, 65536, 65536]",
  "{\"lo\": 0, \"hi\": 1}", "\"{}\"", "\"[]\"", "\"null\"", "\"1\"", "\"x\"", "\"__proto__\"", "{\"__proto__\": 1}",
  "[".repeat(100_000) + "]".repeat(100_000), "\"" + "x".repeat(100_000) + "\""];

type Mutation =
  | { kind: "flip"; edits: { at: number; value: number }[] }
  | { kind: "truncate"; at: number }
  | { kind: "splice"; at: number; remove: number; insert: Uint8Array }
  | { kind: "random"; bytes: Uint8Array }
  | { kind: "length"; value: bigint }
  | { kind: "header"; path: number[]; op: "set" | "delete" | "nudge" | "rename"; raw: string; delta: number; keepLength: boolean }
  | { kind: "text"; at: number; insert: string };

function mutationArb(target: Target): fc.Arbitrary<Mutation> {
  const bytes = (max: number) => fc.uint8Array({ maxLength: max });
  const options: fc.Arbitrary<Mutation>[] = [
    fc.record({ kind: fc.constant("flip" as const), edits: fc.array(fc.record({ at: fc.nat(), value: fc.nat(255) }), { minLength: 1, maxLength: 8 }) }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("splice" as const), at: fc.nat(), remove: fc.nat(64), insert: bytes(32) }),
    fc.record({ kind: fc.constant("random" as const), bytes: bytes(300) }),
  ];
  if (target.safetensors) {
    const header = fc.record({
      kind: fc.constant("header" as const), path: fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
      op: fc.constantFrom("set" as const, "delete" as const, "nudge" as const, "rename" as const),
      raw: fc.oneof(fc.constantFrom(...RAW_VALUES), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? "null")),
      delta: fc.oneof(fc.integer({ min: -8, max: 8 }), fc.constantFrom(2 ** 20, 2 ** 31, 2 ** 32, -(2 ** 31), 2 ** 53)),
      keepLength: fc.boolean(),
    });
    const length = fc.record({ kind: fc.constant("length" as const),
      value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 7n, 8n, 100_000_000n, 100_000_001n, 2n ** 53n, 2n ** 63n)) });
    // Header edits are where the structure is: give them most of the runs.
    options.push(header, header, header, header, length);
  }
  if (target.text) {
    const piece = fc.oneof(fc.constantFrom("\t", "\n", "\r", "\r\n", "\0", "\x01", "\u3000", "\ufeff", "\u2028", "<eos>", " ", "\t\t"),
      fc.string({ unit: "binary", maxLength: 16 }));
    const text = fc.record({ kind: fc.constant("text" as const), at: fc.nat(), insert: piece });
    options.push(text, text, fc.string({ unit: "binary", maxLength: 200 }).map((s): Mutation => ({ kind: "random", bytes: new TextEncoder().encode(s) })));
  }
  return fc.array(fc.oneof(...options), { minLength: 1, maxLength: 3 }).map((ms) => ms.length === 1 ? ms[0] : ({ kind: "many", ms } as unknown as Mutation));
}

/** `m` applied to `seed` (a fresh array; the seed is never changed). */
export function mutate(seed: Uint8Array, m: Mutation | { kind: "many"; ms: Mutation[] }): Uint8Array {
  switch (m.kind) {
    case "many": return m.ms.reduce(mutate, seed);
    case "flip": {
      const out = seed.slice();
      if (out.length > 0) for (const { at, value } of m.edits) out[at % out.length] = value;
      return out;
    }
    case "truncate": return seed.slice(0, m.at % (seed.length + 1));
    case "splice": {
      const at = m.at % (seed.length + 1);
      const out = new Uint8Array(seed.length - Math.min(m.remove, seed.length - at) + m.insert.length);
      out.set(seed.subarray(0, at));
      out.set(m.insert, at);
      out.set(seed.subarray(at + m.remove), at + m.insert.length);
      return out;
    }
    case "random": return m.bytes;
    case "length": {
      const out = seed.slice();
      if (out.length >= 8) new DataView(out.buffer).setBigUint64(0, m.value, true);
      return out;
    }
    case "text": {
      const s = new TextDecoder().decode(seed), at = m.at % (s.length + 1);
      return new TextEncoder().encode(s.slice(0, at) + m.insert + s.slice(at));
    }
    case "header": return editHeader(seed, m);
  }
}

const PLACEHOLDER = "\u0000fuzz-placeholder\u0000";

// Walks `path` into the header (descending into metadata strings that hold JSON), applies the edit,
// and writes the header back with its new length (or, if `keepLength`, the old one).
function editHeader(seed: Uint8Array, m: Extract<Mutation, { kind: "header" }>): Uint8Array {
  if (seed.length < 8) return seed;
  const view = new DataView(seed.buffer, seed.byteOffset, seed.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > seed.length) return seed;
  let header: unknown;
  try { header = JSON.parse(new TextDecoder().decode(seed.subarray(8, 8 + n))); } catch { return seed; }

  const root = { value: header };
  // Each level: the container and the key inside it; a JSON string on the way is parsed and put back later.
  const levels: { holder: Record<string, unknown> | unknown[]; key: string | number; wasString: boolean }[] = [];
  let holder: Record<string, unknown> | unknown[] = root as unknown as Record<string, unknown>, key: string | number = "value";
  for (const step of m.path) {
    if (step % 5 === 4) break; // edit this level (a metadata string as a whole, say) rather than inside it
    let value = (holder as Record<string | number, unknown>)[key];
    let wasString = false;
    if (typeof value === "string" && /^[[{]/.test(value)) {
      try { value = JSON.parse(value); wasString = true; } catch { /* a plain string: stop here */ }
    }
    if (typeof value !== "object" || value === null) break;
    const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
    if (keys.length === 0) break;
    if (wasString) (holder as Record<string | number, unknown>)[key] = value;
    levels.push({ holder, key, wasString });
    holder = value as Record<string, unknown>;
    key = keys[step % keys.length];
  }
  const target = holder as Record<string | number, unknown>;
  const raw = m.raw;
  let inString = false; // the raw text goes into a JSON string held in metadata: spliced in as text
  for (const l of levels) if (l.wasString) inString = true;
  if (m.op === "delete") {
    if (Array.isArray(target)) target.splice(key as number, 1); else delete target[key];
  } else if (m.op === "nudge" && typeof target[key] === "number") {
    target[key] = (target[key] as number) + m.delta;
  } else if (m.op === "rename" && !Array.isArray(target)) {
    const v = target[key];
    delete target[key];
    target[String(key) + (m.delta & 1 ? "_" : "")] = v;
    target[m.raw.slice(0, 12)] = v;
  } else {
    target[key] = inString && raw.length > 1000 ? raw.slice(0, 1000) : PLACEHOLDER;
  }
  // Re-serialise from the innermost JSON string outwards.
  try {
    for (let i = levels.length - 1; i >= 0; i--) {
    const l = levels[i];
    if (l.wasString) {
      const h = l.holder as Record<string | number, unknown>;
      h[l.key] = JSON.stringify(h[l.key]).replace(JSON.stringify(PLACEHOLDER), raw);
    }
  }
  } catch {
    return seed;
  }
  let text: string;
  try {
    text = JSON.stringify(root.value).replace(JSON.stringify(PLACEHOLDER), raw);
  } catch {
    return seed; // an earlier edit nested the header too deeply to serialise again
  }
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + seed.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(m.keepLength ? n : json.length), true);
  out.set(json, 8);
  out.set(seed.subarray(8 + n), 8 + json.length);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Running

/** What happened to one input: loaded, refused properly, or a defect (with what it was). */
export async function check(target: Target, bytes: Uint8Array, timeBoundMs: number): Promise<{ defect?: "crash" | "hang"; detail?: string }> {
  const t0 = performance.now();
  let detail: string | undefined;
  try {
    await target.parse(bytes, target.source);
  } catch (e) {
    const err = e as Error;
    const message = String(err?.message);
    if (!(err instanceof Error) || err.constructor !== Error) detail = `${err?.constructor?.name ?? typeof err}: ${message}`;
    else if (message.includes("\n")) detail = `a message of several lines: ${message}`;
    else if (!message.includes(target.source)) detail = `a message that does not name the file: ${message}`;
  }
  const ms = performance.now() - t0;
  if (detail) return { defect: "crash", detail: detail.slice(0, 300) };
  if (ms > timeBoundMs) return { defect: "hang", detail: `${ms.toFixed(0)} ms` };
  return {};
}

export interface FuzzOptions { runs: number; seed?: number; timeBoundMs?: number; examples?: number }

/** Runs `runs` mutated inputs through `target`, counting crashes and hangs (fast-check generates them). */
export async function fuzzTarget(target: Target, options: FuzzOptions): Promise<FuzzRow> {
  const arb = fc.tuple(fc.nat(target.seeds.length - 1), mutationArb(target));
  const row: FuzzRow = { parser: target.parser, runs: 0, crashes: 0, hangs: 0, ms: 0, examples: [] };
  const t0 = performance.now(), chunk = 1000;
  for (let done = 0; done < options.runs; done += chunk) {
    const inputs = fc.sample(arb, { numRuns: Math.min(chunk, options.runs - done), seed: (options.seed ?? 1) * 1_000_003 + done });
    for (const [s, m] of inputs) {
      const r = await check(target, mutate(target.seeds[s], m), options.timeBoundMs ?? 2000);
      row.runs++;
      if (r.defect === "crash") row.crashes++;
      if (r.defect === "hang") row.hangs++;
      if (r.defect && row.examples.length < (options.examples ?? 5)) row.examples.push(`${r.defect}: ${r.detail}`);
    }
  }
  row.ms = performance.now() - t0;
  return row;
}

/** fast-check's own runner over `target` (shrinks a failing input): for tests. */
export async function assertTarget(target: Target, runs: number, seed = 1, timeBoundMs = 5000): Promise<void> {
  await fc.assert(fc.asyncProperty(fc.tuple(fc.nat(target.seeds.length - 1), mutationArb(target)), async ([s, m]) => {
    const r = await check(target, mutate(target.seeds[s], m), timeBoundMs);
    if (r.defect) throw new Error(`${target.parser}: ${r.defect}: ${r.detail}`);
  }), { numRuns: runs, seed, endOnFailure: true });
}
