// Figures: Vega-Lite specifications rendered to PNG in Node (Vega-Lite → Vega → SVG → resvg), with
// the DejaVu fonts of the dejavu-fonts-ttf package, so that text renders the same on every machine,
// whatever fonts it has installed.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { Resvg } from "@resvg/resvg-js";
import { writeFileAtomic } from "../io/files.js";

const FONT = "DejaVu Sans";

function fontFiles(): string[] {
  const dir = join(dirname(createRequire(import.meta.url).resolve("dejavu-fonts-ttf/package.json")), "ttf");
  return ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"].map((f) => join(dir, f));
}

/** The SVG of a Vega-Lite specification, in the project's font. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const withFont = { ...spec, config: { font: FONT, ...spec.config } } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(withFont).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders a Vega-Lite specification to a PNG file at `scale` pixels per SVG unit (written atomically). */
export async function renderPng(spec: TopLevelSpec, path: string, scale = 2): Promise<void> {
  const svg = await renderSvg(spec);
  const png = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: scale },
    font: { fontFiles: fontFiles(), loadSystemFonts: false, defaultFontFamily: FONT },
  }).render().asPng();
  await writeFileAtomic(path, png);
}
