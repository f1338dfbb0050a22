// Aligned text tables, the commands' console output.

/** An aligned text table: the first `left` columns left-aligned, the rest right-aligned. */
export function formatTable(header: string[], rows: (string | number)[][], left = 3): string {
  const cells = rows.map((r) => r.map(String));
  const width = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i < left ? c.padEnd(width[i]) : c.padStart(width[i]))).join("  ");
  return [line(header), line(width.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}
