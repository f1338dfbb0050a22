// Makes every bin of package.json executable after tsc writes it (tsc writes mode 644). npx links a
// project's bin once per path and sets its mode only then, so a rebuilt dist/ must do it itself.
import { chmodSync, readFileSync } from "node:fs";

const { bin } = JSON.parse(readFileSync("package.json", "utf8"));
for (const file of Object.values(bin)) chmodSync(file, 0o755);
