/**
 * The hint of an "unknown name" error (an option, a key, a command): the closest known name when
 * one is near enough to be a typo, then every known name. A tired user reads "did you mean
 * 'compression'?" before a list of fifty names (walk-30 F10).
 *
 * Invariant: a suggestion is only ever a known name, and only one within a typo's reach: at most
 * one edit for names up to 5 characters, two above (an edit: a character added, dropped, changed,
 * or two neighbours swapped), or the same name in another case or with - and _ dropped.
 */

/** The known name `name` is most likely a typo of, or null when none is near. */
export function closestName(name: string, known: Iterable<string>): string | null {
  const folded = fold(name);
  let best: { name: string; distance: number } | null = null;
  for (const candidate of known) {
    if (candidate === name) return null;
    const distance = fold(candidate) === folded ? 0 : editDistance(name, candidate);
    if (distance <= (name.length <= 5 ? 1 : 2) && (best === null || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name ?? null;
}

/** "Did you mean 'x'? Known: a, b, c" (`label` in place of "Known"), or the list alone. */
export function knownHint(name: string, known: readonly string[], label = 'Known', shown: (n: string) => string = (n) => n): string {
  const near = closestName(name, known);
  return `${near === null ? '' : `Did you mean '${shown(near)}'? `}${label}: ${known.map(shown).join(', ')}`;
}

const fold = (s: string) => s.toLowerCase().replace(/[-_]/g, '');

/** Optimal string alignment distance (Levenshtein with adjacent swaps). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3; // (more than any suggestion allows)
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
