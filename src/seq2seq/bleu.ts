// Corpus-level BLEU as sacreBLEU computes it (Post, 2018; github.com/mjpost/sacrebleu, release
// v2.6.0, sacrebleu/metrics/bleu.py and tokenizers/tokenizer_13a.py, tokenizer_re.py): its default
// is the mteval-v13a tokenizer, exponential smoothing, mixed case, n-grams up to 4 and the brevity
// penalty against the closest reference length, and every score goes out with its signature
// (`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`), so that a number printed here can
// be compared with one printed by sacreBLEU. The computation has not changed since sacreBLEU 2.0.0.
//
// Inputs are detokenized text (what a translation system prints), never subword or 13a tokens.
// Not here: chrF, TER, bootstrap resampling, the intl / zh / ja tokenizers.

/** The sacreBLEU release whose behaviour (and signature) this file reproduces. */
export const SACREBLEU_VERSION = "2.6.0";

export type BleuTokenizer = "13a" | "none" | "char";
export type SmoothMethod = "exp" | "none" | "floor" | "add-k";

export interface BleuOptions {
  /** "13a" (default, mteval-v13a), "none" (split on whitespace only) or "char" (every character). */
  tokenize?: BleuTokenizer;
  /** "exp" (default; mteval's: the k-th order with no match counts 1 / 2^k), "none", "floor", "add-k". */
  smoothMethod?: SmoothMethod;
  /** For "floor" (default 0.1) and "add-k" (default 1). */
  smoothValue?: number;
  /** Lower-case hypotheses and references first (default false: mixed case). */
  lowercase?: boolean;
  /** Highest n-gram order (default 4). */
  maxOrder?: number;
  /** Leave out the orders from the first with no n-gram at all (for sentence-level BLEU; default false). */
  effectiveOrder?: boolean;
}

/** What sacreBLEU's BLEUScore holds: the score (0–100) and its sufficient statistics. */
export interface BleuScore {
  score: number;
  /** Matched n-grams per order (1..maxOrder), clipped by the reference counts. */
  counts: number[];
  /** Hypothesis n-grams per order. */
  totals: number[];
  /** Precisions in percent, smoothed as the options say. */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  sysLen: number;
  refLen: number;
  /** The signature string, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0". */
  signature: string;
}

const SMOOTH_DEFAULTS: Record<SmoothMethod, number | undefined> = { none: undefined, floor: 0.1, "add-k": 1, exp: undefined };

// ---------------------------------------------------------------------------------------------------
// Tokenizers

// Python's str.split() / str.rstrip() whitespace, which differs from JavaScript's \s (\x1c–\x1f and
// \x85 are in, U+FEFF is out).
const PY_WHITESPACE = /[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const PY_TRAILING_WHITESPACE = /[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u;

/** `' '.join(s.split())`: words separated by single spaces. */
function pyJoinSplit(s: string): string {
  return s.split(PY_WHITESPACE).filter((w) => w !== "").join(" ");
}

// tokenizer_re.py's rules, in order (Python's re.sub and JavaScript's replace with /g both replace
// non-overlapping matches left to right).
const RULES_13A: [RegExp, string][] = [
  // punctuation and symbols of the ASCII range: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
  [/([{-~[-` -&(-+:-@/])/gu, " $1 "],
  // period and comma unless preceded by a digit
  [/([^0-9])([.,])/gu, "$1 $2 "],
  // period and comma unless followed by a digit
  [/([.,])([^0-9])/gu, " $1 $2"],
  // dash when preceded by a digit
  [/([0-9])(-)/gu, "$1 $2 "],
];

/** sacreBLEU's "13a" tokenizer (mteval-v13a.pl's, as Tokenizer13a implements it). */
export function tokenize13a(line: string): string {
  let s = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (s.includes("&")) s = s.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">");
  s = ` ${s} `;
  for (const [re, to] of RULES_13A) s = s.replace(re, to);
  return pyJoinSplit(s);
}

const TOKENIZERS: Record<BleuTokenizer, (line: string) => string> = {
  "13a": tokenize13a,
  none: (line) => line,
  // Python iterates code points, as does a string's iterator here.
  char: (line) => [...line].join(" "),
};

// ---------------------------------------------------------------------------------------------------
// Statistics

// An n-gram as a key: its words joined by a separator no tokenized word contains (13a and "none"
// words hold no whitespace; "char" words are single characters, and a space is never one of them).
const SEP = " ";

/** Counts of all n-grams of orders 1..maxOrder of the words of `line`, and the number of words. */
function ngrams(line: string, maxOrder: number): { counts: Map<string, number>; length: number } {
  const words = line.split(PY_WHITESPACE).filter((w) => w !== "");
  const counts = new Map<string, number>();
  for (let n = 1; n <= maxOrder; n++) {
    for (let i = 0; i + n <= words.length; i++) {
      const key = `${n}${SEP}${words.slice(i, i + n).join(SEP)}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return { counts, length: words.length };
}

/** The reference length closest to the hypothesis length; ties go to the shorter reference. */
function closestRefLen(hypLen: number, refLens: number[]): number {
  let bestDiff = -1, best = -1;
  for (const r of refLens) {
    const diff = Math.abs(hypLen - r);
    if (bestDiff === -1 || diff < bestDiff) { bestDiff = diff; best = r; }
    else if (diff === bestDiff && r < best) best = r;
  }
  return best;
}

/**
 * Corpus BLEU of `hypotheses` against `references`, given as sacreBLEU takes them: a list of
 * reference streams, each as long as the hypotheses (`[refs]` for one reference per sentence). A
 * reference may be null where a sentence has fewer references; the signature then says nrefs:var.
 */
export function corpusBleu(hypotheses: readonly string[], references: readonly (readonly (string | null)[])[], options: BleuOptions = {}): BleuScore {
  const tokenizer = options.tokenize ?? "13a";
  const smoothMethod = options.smoothMethod ?? "exp";
  const maxOrder = options.maxOrder ?? 4;
  const lowercase = options.lowercase ?? false;
  if (!Object.hasOwn(TOKENIZERS, tokenizer)) throw new Error(`corpusBleu: unknown tokenizer ${JSON.stringify(tokenizer)}; known: ${Object.keys(TOKENIZERS).join(", ")}`);
  if (!Object.hasOwn(SMOOTH_DEFAULTS, smoothMethod)) throw new Error(`corpusBleu: unknown smoothing ${JSON.stringify(smoothMethod)}; known: ${Object.keys(SMOOTH_DEFAULTS).join(", ")}`);
  if (!Number.isSafeInteger(maxOrder) || maxOrder < 1) throw new Error(`corpusBleu: maxOrder must be an integer ≥ 1, got ${maxOrder}`);
  if (references.length === 0) throw new Error("corpusBleu: no reference stream given (pass [refs] for one reference per sentence)");
  for (const [k, stream] of references.entries()) {
    if (stream.length !== hypotheses.length) {
      throw new Error(`corpusBleu: reference stream ${k} has ${stream.length} sentences, but there are ${hypotheses.length} hypotheses`);
    }
  }
  const prepare = (s: string) => TOKENIZERS[tokenizer]((lowercase ? s.toLowerCase() : s).replace(PY_TRAILING_WHITESPACE, ""));

  const correct = new Array<number>(maxOrder).fill(0), total = new Array<number>(maxOrder).fill(0);
  let sysLen = 0, refLen = 0;
  const nrefs = new Set<number>();
  for (let i = 0; i < hypotheses.length; i++) {
    // The reference n-gram counts: the most of each n-gram in any one reference.
    const refCounts = new Map<string, number>();
    const refLens: number[] = [];
    for (const stream of references) {
      const ref = stream[i];
      if (ref === null || ref === undefined) continue;
      const { counts, length } = ngrams(prepare(ref), maxOrder);
      refLens.push(length);
      for (const [g, c] of counts) if (c > (refCounts.get(g) ?? 0)) refCounts.set(g, c);
    }
    nrefs.add(refLens.length);
    const hyp = ngrams(prepare(hypotheses[i]), maxOrder);
    sysLen += hyp.length;
    refLen += closestRefLen(hyp.length, refLens);
    for (const [g, c] of hyp.counts) {
      const n = Number(g.slice(0, g.indexOf(SEP))) - 1;
      total[n] += c;
      correct[n] += Math.min(c, refCounts.get(g) ?? 0);
    }
  }
  const score = bleuFromStatistics(correct, total, sysLen, refLen, { ...options, smoothMethod, maxOrder });
  const smoothDefault = SMOOTH_DEFAULTS[smoothMethod];
  const smooth = smoothDefault === undefined ? smoothMethod : `${smoothMethod}[${(options.smoothValue ?? smoothDefault).toFixed(2)}]`;
  const signature = [
    `nrefs:${nrefs.size === 1 ? [...nrefs][0] : "var"}`, `case:${lowercase ? "lc" : "mixed"}`,
    `eff:${options.effectiveOrder ? "yes" : "no"}`, `tok:${tokenizer}`, `smooth:${smooth}`, `version:${SACREBLEU_VERSION}`,
  ].join("|");
  return { ...score, signature };
}

/**
 * BLEU from its sufficient statistics (sacreBLEU's BLEU.compute_bleu): matched and total n-grams per
 * order, hypothesis and reference lengths. Its defaults are compute_bleu's: no smoothing.
 */
export function bleuFromStatistics(correct: readonly number[], total: readonly number[], sysLen: number, refLen: number,
                                   options: BleuOptions = {}): Omit<BleuScore, "signature"> {
  const method = options.smoothMethod ?? "none";
  const value = options.smoothValue ?? SMOOTH_DEFAULTS[method] ?? 0;
  const maxOrder = options.maxOrder ?? 4;
  const counts = [...correct], totals = [...total];
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0) : 1;
  const precisions = new Array<number>(maxOrder).fill(0);
  const result = { counts: [...correct], totals: [...total], precisions, bp, sysLen, refLen };
  // No match at all scores 0, whatever the smoothing (sacreBLEU #141).
  if (!counts.some((c) => c !== 0)) return { score: 0, ...result };

  let smoothMteval = 1, effOrder = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    if (method === "add-k" && n > 1) { counts[n - 1] += value; totals[n - 1] += value; }
    if (totals[n - 1] === 0) break;
    if (options.effectiveOrder) effOrder = n;
    if (counts[n - 1] === 0) {
      if (method === "exp") { smoothMteval *= 2; precisions[n - 1] = 100 / (smoothMteval * totals[n - 1]); }
      else if (method === "floor") precisions[n - 1] = (100 * value) / totals[n - 1];
    } else {
      precisions[n - 1] = (100 * counts[n - 1]) / totals[n - 1];
    }
  }
  // sacreBLEU's my_log: log(0) is floored to -9999999999, so a zero precision gives a score of 0.
  let logSum = 0;
  for (let n = 0; n < effOrder; n++) logSum += precisions[n] === 0 ? -9999999999 : Math.log(precisions[n]);
  return { score: bp * Math.exp(logSum / effOrder), ...result };
}

/**
 * The line sacreBLEU prints in its text format (`-f text`), e.g.
 * `BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 20.8 54.4/26.6/14.9/8.7 (BP = 1.000 ratio = 1.026 hyp_len = 62880 ref_len = 61287)`;
 * `width` is the score's decimals (sacreBLEU's --width, 1 by default on its command line; its Python
 * API's repr uses 2 and leaves the signature out).
 */
export function formatBleu(s: BleuScore, width = 1, withSignature = true): string {
  const ratio = s.refLen ? s.sysLen / s.refLen : 0;
  return `BLEU${withSignature ? `|${s.signature}` : ""} = ${s.score.toFixed(width)} ${s.precisions.map((p) => p.toFixed(1)).join("/")} ` +
    `(BP = ${s.bp.toFixed(3)} ratio = ${ratio.toFixed(3)} hyp_len = ${s.sysLen} ref_len = ${s.refLen})`;
}
