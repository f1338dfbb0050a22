// User-supplied text (a file to evaluate or continue) as token ids of a corpus's vocabulary, with
// the same tokenizer as the corpora. Input that is empty or not text fails with a message saying
// so, rather than giving a model a stream of "<unk>".
import { readFileChecked } from "../io/files.js";
import { tokenize } from "./tokenize.js";
import type { Vocabulary } from "./vocabulary.js";

/** Control characters (other than tab, newlines, form feed) allowed per character of text. */
const MAX_CONTROL_FRACTION = 0.01;

/**
 * `bytes` as a string, checked to be UTF-8 text; `source` names the input in errors. A NUL byte,
 * invalid UTF-8, or more than 1 % control characters mean a binary file.
 */
export function decodeText(bytes: Uint8Array, source: string): string {
  if (bytes.length === 0) throw new Error(`${source} is empty: give it some English text`);
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new Error(`${source} is not text: it has a NUL byte at offset ${nul} (a binary file?)`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${source} is not UTF-8 text (invalid byte sequence): a binary file, or text in another encoding to convert to UTF-8`);
  }
  return checkText(text, source);
}

/** Token ids of `text` (a string, or bytes checked by decodeText); unknown words are "<unk>". */
export function encodeText(text: string | Uint8Array, vocab: Vocabulary, source = "input"): Int32Array {
  const s = typeof text === "string" ? checkText(text, source) : decodeText(text, source);
  const tokens = tokenize(s);
  if (tokens.length === 0) throw new Error(`${source} has no words: it holds only whitespace or invisible characters`);
  return vocab.encode(tokens);
}

/** Token ids of the text file at `path`. */
export async function encodeFile(path: string, vocab: Vocabulary): Promise<Int32Array> {
  return encodeText(await readFileChecked(path, "text file"), vocab, `text file ${path}`);
}

function checkText(text: string, source: string): string {
  if (text.length === 0) throw new Error(`${source} is empty: give it some English text`);
  const nul = text.indexOf("\0");
  if (nul >= 0) throw new Error(`${source} is not text: it has a NUL character at index ${nul} (binary data?)`);
  const control = text.match(/(?![\t\n\v\f\r])\p{Cc}/gu)?.length ?? 0;
  if (control > MAX_CONTROL_FRACTION * text.length) {
    throw new Error(`${source} is not text: ${control} of its ${text.length} characters are control characters (binary data?)`);
  }
  return text;
}
