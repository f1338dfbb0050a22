// The word tokenizer for language modelling, in the style of the Penn Treebank as Mikolov prepared
// it (lower case, numbers as "N", "<eos>" after each sentence), except that punctuation is kept as
// tokens of its own (as WikiText does) rather than deleted. Pure and deterministic: the same text
// gives the same tokens on every runtime (no locale-dependent calls).
//
// Rules, in the order they apply:
// 1. Normalisation. NFKC, so compatibility forms read as plain ones ("…" → "...", ligatures and
//    full-width letters → letters). Curly and doubled quotes (“ ” „ `` '') → '"'; curly single
//    quotes and backticks (‘ ’ `) → "'". Em dash, figure dash, horizontal bar and minus sign → "--",
//    the Treebank's dash; en dash → "-" (it mostly joins ranges: 1990–91). Invisible format
//    characters (soft hyphen, zero-width space, byte-order mark) are deleted; other control
//    characters are spaces.
// 2. Words: runs of letters, marks and digits, joined by inner hyphens and apostrophes
//    ("hard-fought", "o'clock", "don't"). Within a word that starts with a digit, "." "," ":" "/"
//    between digits stay inside (3.5, 1,000, 10:30, 9/11).
//    - Clitics split off as the Treebank does: "n't" ("don't" → do n't, "can't" → ca n't) and
//      's 'm 're 've 'll 'd ("it's" → it 's, "states'" → states ').
//    - Numbers: each hyphen-separated part made of digits (with the separators above and an
//      optional st/nd/rd/th/d/s suffix: 100th, 3d, 1990s) becomes "N"; a word made only of such
//      parts is a single "N" ("1990-91" → N, "20-year-old" → N-year-old, "b-52" → b-N).
// 3. Abbreviations keep their period: letters separated by periods ("u.s.", "e.g.", "a.m."), single
//    letters (initials: "john f. kennedy"), the titles and short forms in ABBREVIATIONS ("mr.",
//    "st.", "gen.", "jan.", "etc."), and the words in NUMBERED when a number follows ("no. 5").
// 4. Every other character that is not a space is a token of its own: . , ; : ? ! ( ) [ ] { } "
//    ' $ % & / * + # @ and the rest; runs of two or more periods are "...", of hyphens "--", and
//    of underscores, asterisks or equals signs (blanks and rules in forms and tables) their one
//    character. Splitting each one off keeps the vocabulary free of "end." next to "end".
// 5. Sentences (tokenize only): a sentence ends after "." "?" or "!" (a run of them counts as one),
//    together with the closing quotes and brackets written right after it with no space
//    (' " ) ] }), unless the next token starts with a lower-case letter or is , ; : (as in
//    `"why?" he asked`). A blank line also ends a sentence; so does the end of the text. An
//    abbreviation's period never ends a sentence: "... in the U.S. The next" stays one sentence,
//    the price of a rule simple enough to state.

/** The token that ends every sentence. */
export const EOS = "<eos>";

/** Short forms that keep their period (lower case, without the period). */
const ABBREVIATIONS = new Set([
  "mr", "mrs", "ms", "messrs", "dr", "jr", "sr", "st", "mt", "ft", "hon", "rev", "prof",
  "gen", "col", "lt", "capt", "maj", "sgt", "adm", "cmdr", "gov", "sen", "rep", "pres", "supt",
  "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
  "co", "corp", "inc", "ltd", "bros", "dept", "assn", "etc", "vs", "viz", "cf", "approx",
]);
/** Short forms that keep their period only when a number follows ("no. 5" but "the answer is no."). */
const NUMBERED = new Set(["no", "nos", "art", "sec", "vol", "pp", "fig"]);

const TERMINATORS = new Set([".", "?", "!"]);
const CLOSERS = new Set(['"', "'", ")", "]", "}"]);
const CONTINUERS = new Set([",", ";", ":"]);

// One scanner for rules 2–4: each match is the spaces before a token (group 1), then the token in
// the group of its kind. Sticky, so each match starts exactly where the previous one ended.
const L = String.raw`\p{L}\p{M}`, LN = String.raw`\p{L}\p{M}\p{Nd}`;
const PIECE = String.raw`(?:\p{Nd}+(?:[.,:/]\p{Nd}+)*[${LN}]*|[${LN}]+)`;
const SCAN = new RegExp(String.raw`(\s*)(?:` + [
  // "u.s.", "e.g.": single letters with periods, not the start of a longer word.
  String.raw`([${L}](?:\.[${L}])+\.?(?![${LN}]))`,
  String.raw`(${PIECE}(?:[-']${PIECE})*)`,
  String.raw`(\.{2,})`,
  String.raw`(-{2,})`,
  String.raw`(_{2,}|\*{2,}|={2,})`,
  String.raw`(\S)`,
].join("|") + ")", "uy");
const enum Group { Space = 1, Dotted, Word, Dots, Dashes, Rule }

const NUMBER = /^\p{Nd}+(?:[.,:/]\p{Nd}+)*(?:st|nd|rd|th|d|s)?$/u;
const CLITIC = /^(.+)('s|'m|'d|'re|'ve|'ll)$/u;
const LOWER_START = /^\p{Ll}/u;

interface RawToken {
  text: string;          // normalised, original case
  spaceBefore: boolean;
  paragraphBefore: boolean; // a blank line precedes it
  abbreviation: boolean; // its period belongs to it (rule 3)
  word: boolean;         // letters and digits, for rule 2
}

function normalise(text: string): string {
  return text.normalize("NFKC")
    .replace(/``|''|[“”„‟″]/gu, '"')
    .replace(/[‘’‚‛′`]/gu, "'")
    .replace(/[\u2012\u2014\u2015\u2212]/gu, "--")
    .replace(/\u2013/gu, "-")
    .replace(/\p{Cf}/gu, "")
    .replace(/(?![\t\n\v\f\r])\p{Cc}/gu, " ");
}

/** Rules 1–4: the tokens of `text` with the spacing the sentence rule needs. */
function scan(text: string): RawToken[] {
  const s = normalise(text);
  const out: RawToken[] = [];
  SCAN.lastIndex = 0;
  for (let m = SCAN.exec(s); m !== null; m = SCAN.exec(s)) {
    const space = m[Group.Space];
    const spaceBefore = space.length > 0 || m.index === 0;
    const paragraphBefore = space.includes("\n") && /\n[^\S\n]*\n/u.test(space);
    const word = m[Group.Word] !== undefined, dotted = m[Group.Dotted] !== undefined;
    let text = m[0].slice(space.length), abbreviation = dotted;
    if (m[Group.Dots] !== undefined) text = "...";
    else if (m[Group.Dashes] !== undefined) text = "--";
    else if (m[Group.Rule] !== undefined) text = text[0];
    else if (word && s[SCAN.lastIndex] === "." && s[SCAN.lastIndex + 1] !== "." && keepsPeriod(text, s, SCAN.lastIndex + 1)) {
      text += ".";
      SCAN.lastIndex++;
      abbreviation = true;
    }
    out.push({ text, spaceBefore, paragraphBefore, abbreviation, word: word || dotted });
  }
  return out;
}

// Rule 3 for a word followed by a period; `after` is the index just past that period.
function keepsPeriod(word: string, s: string, after: number): boolean {
  const w = word.toLowerCase();
  if (/^[\p{L}\p{M}]$/u.test(w) || ABBREVIATIONS.has(w)) return true;
  return NUMBERED.has(w) && /^ ?\p{Nd}/u.test(s.slice(after, after + 2));
}

/** Rule 2 on one scanned token: lower case, clitics split off, numbers as "N". */
function wordTokens(raw: string, out: string[]): void {
  let w = raw.toLowerCase();
  if (!/['\-\p{Nd}]/u.test(w)) {
    out.push(w); // the common case: letters only
    return;
  }
  const clitics: string[] = [];
  for (;;) {
    if (w.length > 3 && w.endsWith("n't")) {
      clitics.push("n't");
      w = w.slice(0, -3);
      continue;
    }
    const m = CLITIC.exec(w);
    if (m === null) break;
    clitics.push(m[2]);
    w = m[1];
  }
  const parts = w.split("-");
  const mapped = parts.map((p) => (NUMBER.test(p) ? "N" : p));
  out.push(mapped.every((p) => p === "N") ? "N" : mapped.join("-"));
  for (let i = clitics.length - 1; i >= 0; i--) out.push(clitics[i]);
}

function emit(t: RawToken, out: string[]): void {
  if (t.word) wordTokens(t.text, out);
  else out.push(t.text);
}

/**
 * The tokens of one sentence (or any span that needs no segmentation, such as a pre-split line):
 * rules 1–4 of the header, no "<eos>".
 */
export function tokenizeSentence(text: string): string[] {
  const out: string[] = [];
  for (const t of scan(text)) emit(t, out);
  return out;
}

/** The tokens of running text, with "<eos>" after every sentence (rules 1–5 of the header). */
export function tokenize(text: string): string[] {
  const raw = scan(text);
  const out: string[] = [];
  let open = false; // a sentence has tokens and no "<eos>" yet
  const end = () => {
    if (open) out.push(EOS);
    open = false;
  };
  for (let i = 0; i < raw.length;) {
    if (raw[i].paragraphBefore) end();
    const t = raw[i++];
    emit(t, out);
    open = true;
    if (t.abbreviation || !TERMINATORS.has(t.text)) continue;
    while (i < raw.length && !raw[i].spaceBefore && (TERMINATORS.has(raw[i].text) || CLOSERS.has(raw[i].text))) emit(raw[i++], out);
    const next = raw[i];
    if (next === undefined || next.paragraphBefore || !(LOWER_START.test(next.text) || CONTINUERS.has(next.text))) end();
  }
  end();
  return out;
}
