// Error messages that quote a file's contents (tensor and node names, JSON excerpts) stay on one
// line: control characters and line separators are written as \u escapes ("\u000a", "\u2028").

/** `message` with every control character and line or paragraph separator escaped. */
export function oneLine(message: string): string {
  return message.replace(/[\x00-\x1f\x7f\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
