// Per-layer insensitive ratios for a network-wide budget: each layer's damage curve (a measured
// loss of accuracy against its ratio, that layer alone dual) and its multiply-adds give a greedy
// allocation that removes the most big-module operations per unit of damage, until a target of
// remaining operations is met or a damage budget is spent. Damages are summed across layers (an
// approximation, checked end to end by the caller). Not here: measuring the curves (DualResNet.sensitivity).

/** One layer: its dense multiply-adds and its damage at ascending ratios (ratios[0] = 0, damage[0] = 0). */
export interface LayerCurve { macs: number; ratios: number[]; damage: number[] }

export interface AllocationTarget {
  /** Stop once the big module's multiply-adds Σ (1 − r_l)·macs_l are at most this. */
  macs?: number;
  /** Never let the summed damage exceed this. */
  damage?: number;
}

export interface Allocation { ratios: number[]; macs: number; damage: number }

function checkCurves(curves: LayerCurve[]): void {
  const f = "allocateRatios";
  if (curves.length === 0) throw new RangeError(`${f}: no layers`);
  curves.forEach((c, l) => {
    if (!(c.macs >= 0)) throw new RangeError(`${f}: layer ${l} has macs ${c.macs}; it must be ≥ 0`);
    if (c.ratios.length === 0 || c.ratios.length !== c.damage.length) throw new RangeError(`${f}: layer ${l} needs as many damages as ratios (at least one), got ${c.ratios.length} and ${c.damage.length}`);
    if (c.ratios[0] !== 0 || c.damage[0] !== 0) throw new RangeError(`${f}: layer ${l}'s curve must start at ratio 0 with damage 0`);
    for (let j = 1; j < c.ratios.length; j++) {
      if (!(c.ratios[j] > c.ratios[j - 1] && c.ratios[j] < 1)) throw new RangeError(`${f}: layer ${l}'s ratios must ascend within [0, 1), got ${c.ratios.join(", ")}`);
      if (!Number.isFinite(c.damage[j])) throw new RangeError(`${f}: layer ${l}'s damage at ratio ${c.ratios[j]} is ${c.damage[j]}`);
    }
  });
}

/**
 * Greedy allocation: from every layer at ratio 0, repeatedly moves the one layer to a higher point
 * of its curve that saves the most multiply-adds per unit of added damage (any higher point, not
 * only the next, so a bump in a curve does not stop the search; a damage that falls counts as
 * free), until the target's macs are met; a move that would pass the damage budget is not taken.
 * The result may save more than asked for (the last move's step).
 */
export function allocateRatios(curves: LayerCurve[], target: AllocationTarget): Allocation {
  checkCurves(curves);
  if (target.macs === undefined && target.damage === undefined) throw new RangeError("allocateRatios: give a target (macs, damage or both)");
  const at = curves.map(() => 0);
  let macs = curves.reduce((s, c) => s + c.macs, 0), damage = 0;
  const EPS = 1e-12;
  while (target.macs === undefined || macs > target.macs) {
    let best: { l: number; j: number; value: number } | null = null;
    curves.forEach((c, l) => {
      for (let j = at[l] + 1; j < c.ratios.length; j++) {
        const saved = (c.ratios[j] - c.ratios[at[l]]) * c.macs, added = c.damage[j] - c.damage[at[l]];
        if (target.damage !== undefined && damage + added > target.damage) continue;
        const value = saved / Math.max(added, EPS);
        if (saved > 0 && (!best || value > best.value)) best = { l, j, value };
      }
    });
    if (!best) break;
    const { l, j } = best as { l: number; j: number }, c = curves[l];
    macs -= (c.ratios[j] - c.ratios[at[l]]) * c.macs;
    damage += c.damage[j] - c.damage[at[l]];
    at[l] = j;
  }
  return { ratios: at.map((j, l) => curves[l].ratios[j]), macs, damage };
}
