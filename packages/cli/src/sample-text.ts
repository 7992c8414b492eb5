// A small English-like text generated from a tiny grammar, deterministic by seed: something a
// small model can visibly learn in seconds, with a known lexicon to check its samples against.
import { Random } from '@s2s/core';

const ADJECTIVES = ['small', 'red', 'quiet', 'old', 'bright', 'green', 'happy', 'cold'];
const NOUNS = ['fox', 'cat', 'river', 'garden', 'child', 'boat', 'apple', 'house', 'bird', 'tree'];
const VERBS = ['sees', 'finds', 'likes', 'follows', 'paints', 'watches', 'carries', 'visits'];
const PLACES = ['near the hill', 'in the morning', 'by the sea', 'after the rain', 'at night'];

/** Every word the grammar can produce. */
export const LEXICON: ReadonlySet<string> = new Set(
  ['the', 'a', 'and', ...ADJECTIVES, ...NOUNS, ...VERBS, ...PLACES.flatMap((p) => p.split(' '))],
);

export function sampleText(opts: { sentences?: number; seed?: number } = {}): string {
  const rng = new Random(opts.seed ?? 1);
  const pick = <T>(xs: readonly T[]): T => rng.pick(xs);
  const phrase = () => (rng.chance(0.5) ? `the ${pick(NOUNS)}` : `a ${pick(ADJECTIVES)} ${pick(NOUNS)}`);
  const out: string[] = [];
  for (let i = 0; i < (opts.sentences ?? 2000); i++) {
    let s = `${phrase()} ${pick(VERBS)} ${phrase()}`;
    if (rng.chance(0.4)) s += ` ${pick(PLACES)}`;
    if (rng.chance(0.2)) s += ` and ${pick(VERBS)} ${phrase()}`;
    out.push(`${s}.`);
  }
  return out.join('\n') + '\n';
}
