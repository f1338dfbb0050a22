// BLEU held to sacreBLEU's own golden numbers. Source: github.com/mjpost/sacrebleu at tag v2.6.0
// (commit f615c7286d4d813370efb824d94fc2bfcd3a6b94): test/test_bleu.py, test/test_sentence_bleu.py
// and the Python examples of README.md ("Using SacreBLEU from Python"). Tolerances are theirs:
// 1e-8 in test_bleu.py, 1e-3 in test_sentence_bleu.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bleuFromStatistics, corpusBleu, formatBleu, SACREBLEU_VERSION, tokenize13a, type BleuOptions } from "../src/seq2seq/bleu.js";

const near = (got: number, want: number, eps: number, what: string) =>
  assert.ok(Math.abs(got - want) < eps, `${what}: got ${got}, want ${want} (±${eps})`);

// test_bleu.py's _hyps and _refs (two reference streams), also README.md's example.
const HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];
const REFS = [
  ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
];

// raw_corpus_bleu(hyps, refs, v) in sacrebleu/compat.py: no tokenization, floor smoothing, effective order.
const raw = (v: number): BleuOptions => ({ tokenize: "none", smoothMethod: "floor", smoothValue: v, effectiveOrder: true });

test("corpus BLEU: test_bleu.py test_corpus_bleu_cases", () => {
  const cases: [readonly string[], BleuOptions, number][] = [
    [HYPS, {}, 48.530827],
    [["", "", ""], {}, 0.0],
    [HYPS, { tokenize: "none" }, 49.1919566],
    [HYPS, { tokenize: "13a" }, 48.530827],
    [HYPS, { smoothMethod: "none" }, 48.530827],
    // ({tokenize: 'intl'}, 43.91623493) is left out: no intl tokenizer here.
  ];
  for (const [hyps, options, want] of cases) near(corpusBleu(hyps, REFS, options).score, want, 1e-8, JSON.stringify(options));
});

test("corpus BLEU: test_bleu.py raw, effective-order, statistics, offset cases (floor smoothing, no tokenizer)", () => {
  const cases: [string[], string[][], number, number][] = [
    [["this is a test", "another test"], [["ref1", "ref2"]], 0.01, 0.0],
    [["this is a test"], [["this is a test"]], 0.01, 1.0],
    [["this is a fest"], [["this is a test"]], 0.01, 0.223606797749979],
    [["test"], [["a test"]], 0.01, 0.3678794411714425],
    [["a test"], [["a test"]], 0.01, 1.0],
    [["a little test"], [["a test"]], 0.01, 0.03218297948685433],
    // test_offset: with offset 0 and with BLEU's default of 0.1
    [["am I am a character sequence"], [["I am a symbol string sequence a a"]], 0.0, 0],
    [["am I am a character sequence"], [["I am a symbol string sequence a a"]], 0.1, 0.1555722182],
  ];
  for (const [hyps, refs, v, want] of cases) near(corpusBleu(hyps, refs, raw(v)).score / 100, want, 1e-8, `${hyps} | ${refs}`);
  const s = corpusBleu(["am I am a character sequence"], [["I am a symbol string sequence a a"]], raw(0.01));
  assert.deepEqual([s.counts, s.totals], [[4, 2, 1, 0], [6, 5, 4, 3]]);
});

test("BLEU from statistics: test_bleu.py test_case_scoring and the degenerate statistics", () => {
  near(bleuFromStatistics([9, 7, 5, 3], [10, 8, 6, 4], 11, 11).score / 100, 0.8375922397, 1e-8, "scoring");
  const degenerate: [number[], number[], number, number, number][] = [
    [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0.0],
    [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.0],
    [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.1],
    [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
  ];
  for (const [c, t, sys, ref, offset] of degenerate) {
    assert.equal(bleuFromStatistics(c, t, sys, ref, { smoothMethod: "floor", smoothValue: offset }).score, 0, `${c} ${t} ${offset}`);
  }
});

test("corpus BLEU: test_bleu.py test_max_ngram_order (score to two decimals)", () => {
  const want = ["77.65", "60.50", "53.93", "48.53", "46.14", "43.28"];
  for (const [i, w] of want.entries()) assert.equal(corpusBleu(HYPS, REFS, { maxOrder: i + 1 }).score.toFixed(2), w, `order ${i + 1}`);
});

test("sentence BLEU: test_sentence_bleu.py (effective order, ±1e-3)", () => {
  const REF = "producţia de zahăr brut se exprimă în zahăr alb;";
  const SYS = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
  const cases: [BleuOptions, number][] = [
    [{ smoothMethod: "exp" }, 8.493],
    [{ smoothMethod: "none" }, 0.0],
    [{ smoothMethod: "floor" }, 4.51688],
    [{ smoothMethod: "floor", smoothValue: 0.1 }, 4.51688],
    [{ smoothMethod: "floor", smoothValue: 0.5 }, 10.10],
    [{ smoothMethod: "add-k" }, 14.882],
    [{ smoothMethod: "add-k", smoothValue: 1 }, 14.882],
    [{ smoothMethod: "add-k", smoothValue: 2 }, 21.389],
    [{ smoothMethod: "exp", tokenize: "none" }, 7.347],
    [{ smoothMethod: "exp", tokenize: "char" }, 40.8759],
    [{ smoothMethod: "exp", tokenize: "char", lowercase: true }, 42.0267],
  ];
  for (const [options, want] of cases) near(corpusBleu([SYS], [[REF]], { ...options, effectiveOrder: true }).score, want, 1e-3, JSON.stringify(options));
  // test_cases_zero_bleu (#141): no match at all is 0 whatever the smoothing.
  for (const smoothMethod of ["exp", "none", "floor", "add-k"] as const) {
    assert.equal(corpusBleu(["this is a cat"], [["okay thanks"]], { smoothMethod, effectiveOrder: true }).score, 0, smoothMethod);
  }
});

test("README.md's example: the score line and the signature, with two and with a variable number of references", () => {
  const s = corpusBleu(HYPS, REFS);
  assert.equal(formatBleu(s, 2, false), "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)");
  // README.md shows version:2.0.0, the release it was written for; the BLEU computation is unchanged since.
  assert.equal(s.signature, `nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:${SACREBLEU_VERSION}`);
  assert.equal(SACREBLEU_VERSION, "2.6.0");
  const v = corpusBleu(HYPS, [[null, REFS[0][1], REFS[0][2]], REFS[1]]);
  assert.equal(formatBleu(v, 2, false), "BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)");
  assert.equal(v.signature, `nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:${SACREBLEU_VERSION}`);
  // The command line's text format (`-f text`, width 1), and one reference per sentence.
  const one = corpusBleu(HYPS, [REFS[0]]);
  assert.match(formatBleu(one), /^BLEU\|nrefs:1\|case:mixed\|eff:no\|tok:13a\|smooth:exp\|version:2\.6\.0 = \d+\.\d \d+\.\d\/.* \(BP = \d\.\d{3} ratio = \d\.\d{3} hyp_len = 17 ref_len = \d+\)$/);
  assert.match(corpusBleu(HYPS, REFS, { smoothMethod: "floor", lowercase: true }).signature, /\|case:lc\|.*\|smooth:floor\[0\.10\]\|/);
});

test("13a tokenizer: mteval-v13a's rules, traced by hand through tokenizer_re.py", () => {
  const cases: [string, string][] = [
    ["Hello, world.", "Hello , world ."],
    // a period or comma between digits stays; a final period after a digit is split by the padding space
    ["It costs $3,000.50 today.", "It costs $ 3,000.50 today ."],
    ["In 1990-91 the well-known rate was 3.5.", "In 1990 - 91 the well-known rate was 3.5 ."],
    // the apostrophe (0x27) is not in the symbol class; ASCII ? is, the Spanish ¿ is not
    ["It wasn't. ¿Quién?", "It wasn't . ¿Quién ?"],
    ["(end.)", "( end . )"],
    ["Tokyo.Japan", "Tokyo . Japan"],
    ["&quot;Hi&quot; &amp; bye &lt;3", '" Hi " & bye < 3'],
    ["a <skipped> b-\nc\nd", "a bc d"],  // "-\n" joins a hyphenated line break
    ["  many   spaces\there  ", "many spaces here"],
    ["x=1;y:2@z{w}|v~u^t_s`r[q]\\p", "x = 1 ; y : 2 @ z { w } | v ~ u ^ t _ s ` r [ q ] \\ p"],
    ["", ""],
  ];
  for (const [line, want] of cases) assert.equal(tokenize13a(line), want, JSON.stringify(line));
});

test("corpusBleu: mismatched stream lengths and unknown options are errors that say so", () => {
  assert.throws(() => corpusBleu(["a", "b"], [["a"]]), /reference stream 0 has 1 sentences, but there are 2 hypotheses/);
  assert.throws(() => corpusBleu(["a"], []), /no reference stream/);
  assert.throws(() => corpusBleu(["a"], [["a"]], { tokenize: "intl" as "13a" }), /unknown tokenizer "intl"/);
});
