// Building a tokenizer from a user's own text, as Hugging Face's `tokenizers` trainers do:
// - word level: every word (runs of letters, digits and "_", in any script, and runs of other
//   symbols, between whitespace) seen at least minFrequency times, plus special tokens and an
//   unknown token;
// - byte-level BPE (GPT-2's scheme): text pre-tokenized with GPT-2's pattern, each piece's UTF-8
//   bytes as 256 base symbols, then the most frequent adjacent pair merged, again and again, until
//   the vocabulary has vocabSize tokens (ties broken by the pair's text, so the result is the same
//   on every run). It can encode any text: no unknown token.
import { type TokenizerJSON, TokenizerError, byteLevelBpeJSON, wordLevelTokenizerJSON } from './tokenizer.js';

/** GPT-2's pre-tokenization pattern (its contractions, letters, digits, other symbols, whitespace). */
const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's bytes_to_unicode: each byte as a printable character (so that a token is a string). */
function byteSymbols(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  return out;
}

/** Words: runs of letters, digits and "_" (any script), and runs of other non-space symbols. */
const WORD_PATTERN = '[\\p{L}\\p{N}_]+|[^\\p{L}\\p{N}_\\s]+';

/**
 * The word-level pre-tokenizer, as tokenizer.json states it: split on whitespace, then into
 * WORD_PATTERN's pieces (the `Whitespace` pre-tokenizer's idea, with letters of every script: its
 * \w means ASCII in JavaScript and Unicode in Rust, which would make the two disagree).
 */
export const WORD_PRE_TOKENIZER = {
  type: 'Sequence',
  pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Split', pattern: { Regex: WORD_PATTERN }, behavior: 'Isolated', invert: false }],
};

/** A text's words, as WORD_PRE_TOKENIZER splits it. */
export function wordPieces(text: string): string[] {
  return text.match(new RegExp(WORD_PATTERN, 'gu')) ?? [];
}

export interface WordLevelTrainOptions {
  /** words seen fewer times become the unknown token (default 1: every word) */
  minFrequency?: number;
  /** special tokens, ids 0.. in this order (the unknown token among them) */
  specials: readonly string[];
  unkToken: string;
  /** words every tokenizer built here must have (a template's) */
  alwaysWords?: readonly string[];
}

/** A word-level tokenizer.json over `texts` (WORD_PRE_TOKENIZER); words sorted by count, then text. */
export function trainWordLevel(texts: Iterable<string>, opts: WordLevelTrainOptions): { json: TokenizerJSON; words: number; dropped: number } {
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of wordPieces(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const min = opts.minFrequency ?? 1;
  const specials = new Set(opts.specials);
  const kept = [...counts].filter(([w, n]) => n >= min && !specials.has(w));
  kept.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const words = kept.map(([w]) => w);
  for (const w of new Set(opts.alwaysWords ?? [])) if (!specials.has(w) && !counts.has(w)) words.push(w);
  const json = wordLevelTokenizerJSON(words, opts.specials, { unkToken: opts.unkToken });
  json.pre_tokenizer = WORD_PRE_TOKENIZER;
  return { json, words: words.length, dropped: counts.size - kept.length - [...counts.keys()].filter((w) => specials.has(w)).length };
}

export interface BpeTrainOptions {
  /** the whole vocabulary: 256 bytes, the merges and the special tokens */
  vocabSize: number;
  /** a pair seen fewer times is not merged (default 2) */
  minFrequency?: number;
  specials: readonly string[];
}

/** A byte-level BPE tokenizer.json trained on `texts` (GPT-2's layout: ByteLevel pre-tokenizer and decoder). */
export function trainByteLevelBPE(texts: Iterable<string>, opts: BpeTrainOptions): { json: TokenizerJSON; merges: number } {
  const symbols = byteSymbols();
  const minTokens = 256 + opts.specials.length;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < minTokens)
    throw new TokenizerError(`vocabSize must be an integer of at least ${minTokens} (256 bytes and ${opts.specials.length} special tokens), got ${opts.vocabSize}`);
  const minFrequency = opts.minFrequency ?? 2;
  const encoder = new TextEncoder();
  // each distinct pre-tokenized piece, as symbols, with its count
  const pieceCounts = new Map<string, number>();
  for (const t of texts)
    for (const m of t.matchAll(GPT2_PATTERN)) {
      const piece = Array.from(encoder.encode(m[0]), (b) => symbols[b]).join('');
      pieceCounts.set(piece, (pieceCounts.get(piece) ?? 0) + 1);
    }
  const words = [...pieceCounts.keys()].map((p) => Array.from(p));
  const freq = [...pieceCounts.values()];
  // pair -> count, and pair -> the words holding it
  const SEP = '\u0000';
  const pairCount = new Map<string, number>();
  const where = new Map<string, Set<number>>();
  const addPairs = (w: number, sign: 1 | -1) => {
    const s = words[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] + SEP + s[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + sign * freq[w]);
      if (sign > 0) {
        let set = where.get(key);
        if (!set) where.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  words.forEach((_, w) => addPairs(w, 1));
  const merges: string[] = [];
  const vocab: Record<string, number> = Object.create(null);
  symbols.forEach((s, i) => (vocab[s] = i));
  const budget = opts.vocabSize - opts.specials.length;
  while (Object.keys(vocab).length < budget) {
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, n] of pairCount)
      if (n > bestCount || (n === bestCount && n > 0 && best !== undefined && key < best)) {
        best = key;
        bestCount = n;
      }
    if (best === undefined || bestCount < minFrequency) break;
    const [a, b] = best.split(SEP);
    const merged = a + b;
    merges.push(`${a} ${b}`);
    if (!(merged in vocab)) vocab[merged] = Object.keys(vocab).length;
    for (const w of where.get(best) ?? []) {
      const s = words[w];
      if (!s.some((x, i) => x === a && s[i + 1] === b)) continue;
      addPairs(w, -1);
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(s[i]);
      }
      words[w] = next;
      addPairs(w, 1);
    }
    pairCount.delete(best);
    where.delete(best);
  }
  const specialIds = opts.specials.map((content) => {
    if (content in vocab) throw new TokenizerError(`special token ${JSON.stringify(content)} is also a learned token`);
    vocab[content] = Object.keys(vocab).length;
    return { id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  return { merges: merges.length, json: byteLevelBpeJSON({ ...vocab }, merges, specialIds) };
}
